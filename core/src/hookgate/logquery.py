"""The log query interface: how a plugin reads request records that another plugin stores.

The store that keeps request records (the logging plugin's SQLite file, a PostgreSQL table)
answers two hooks, :func:`~hookgate.hookspecs.query_logs` and
:func:`~hookgate.hookspecs.aggregate_logs`; a reader (the console, a report) calls them
through :class:`~hookgate.plugins.Hooks` and never learns which store answered. Both take and
return the plain types below, so any store can implement them:

- :class:`LogFilter`: which records (every field given must match).
- :class:`LogQuery` / :class:`LogPage`: records newest first, ``limit`` at a time; a page's
  ``next_cursor`` (opaque text, only meaningful to the store that made it) asks for the next
  page: keyset pagination, so page 1000 costs what page 1 costs.
- :class:`AggregateQuery` / :class:`Aggregates`: counts, latency, cache, errors, tokens and
  cost over a time range, in ``bucket_s`` buckets, for monitoring.

Records are the logging plugin's dicts (``trace_id``, ``ts``, ``model``, ``model_answered``,
``provider``, ``target``, ``status``, ``latency_ms``, ``ttft_ms``, ``attempts``,
``cache_status``, ``cache_similarity``, ``prompt_tokens``, ``completion_tokens``,
``total_tokens``, ``cost_usd``, ``cost_saved_usd``, ``error_type``, ``config_id``,
``config_version``, ``workspace``, ``metadata``, and with body logging ``request_body`` and
``response_body``), already redacted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "LATENCY_EDGES_MS",
    "AggregateQuery",
    "Aggregates",
    "LogFilter",
    "LogPage",
    "LogQuery",
    "latency_bucket",
    "percentile_from_histogram",
]

# Upper edges of the latency histogram's buckets (1-2-3-5-7 steps, 1 ms to 2 min; the last
# bucket is everything slower). Stores that pre-aggregate count into these buckets, and
# percentiles are read from them: a p99 is exact to its bucket (within about 30 %).
LATENCY_EDGES_MS: tuple[float, ...] = (
    1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, 150, 200, 300, 500, 700,
    1000, 1500, 2000, 3000, 5000, 7000, 10000, 15000, 20000, 30000, 60000, 120000,
)  # fmt: skip

CACHE_HIT_STATUSES = ("HIT", "SEMANTIC HIT")


def latency_bucket(latency_ms: float | None) -> int | None:
    """The index of the histogram bucket ``latency_ms`` falls in (``len(edges)``: slower)."""
    if latency_ms is None or math.isnan(latency_ms):
        return None
    lo, hi = 0, len(LATENCY_EDGES_MS)
    while lo < hi:  # the first edge above the value
        mid = (lo + hi) // 2
        if latency_ms < LATENCY_EDGES_MS[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo


def percentile_from_histogram(counts: list[int] | tuple[int, ...], p: float) -> float | None:
    """The ``p``-th percentile (nearest rank) read off histogram ``counts``, interpolated
    linearly inside its bucket. None for an empty histogram."""
    total = sum(counts)
    if total <= 0:
        return None
    rank = max(1, math.ceil(p / 100 * total))
    seen = 0
    for index, n in enumerate(counts):
        if n and seen + n >= rank:
            low = LATENCY_EDGES_MS[index - 1] if index > 0 else 0.0
            high = (
                LATENCY_EDGES_MS[index] if index < len(LATENCY_EDGES_MS) else LATENCY_EDGES_MS[-1]
            )
            return low + (high - low) * (rank - seen) / n
        seen += n
    return float(LATENCY_EDGES_MS[-1])


@dataclass(frozen=True, slots=True, kw_only=True)
class LogFilter:
    """Which records: every field that is not None (or empty) must match."""

    since: float | None = None
    """Epoch seconds, inclusive."""
    until: float | None = None
    """Epoch seconds, exclusive."""
    trace_id: str | None = None
    status: int | None = None
    """An exact HTTP status (200, 429, ...)."""
    status_class: int | None = None
    """The hundreds digit: 2 for 2xx, 4 for 4xx, 5 for 5xx."""
    provider: str | None = None
    model: str | None = None
    """The model requested or answered."""
    cache_status: str | None = None
    """``HIT``, ``SEMANTIC HIT``, ``MISS``, ``SEMANTIC MISS``, ``DISABLED``, ``REFRESH``."""
    config_id: str | None = None
    """The stored config the request named (its slug)."""
    config_version: int | None = None
    workspace: str | None = None
    """Only this workspace's records (access control: a workspace sees only its own)."""
    metadata: tuple[tuple[str, str], ...] = ()
    """``x-portkey-metadata`` pairs the record must carry, each key with that value."""
    error_type: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LogQuery:
    filter: LogFilter = field(default_factory=LogFilter)
    limit: int = 50
    cursor: str | None = None
    """A page's ``next_cursor``: the records after it. None: the newest."""


@dataclass(frozen=True, slots=True)
class LogPage:
    records: list[dict[str, Any]]
    """Newest first."""
    next_cursor: str | None
    """Pass it as ``LogQuery.cursor`` for the next (older) page; None: this was the last."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AggregateQuery:
    filter: LogFilter = field(default_factory=LogFilter)
    """``since`` and ``until`` are required: aggregates are over a time range."""
    bucket_s: float = 60.0
    """Width of a time-series bucket, seconds."""
    metadata_key: str | None = None
    """Also group requests, tokens and cost by this metadata key's values."""


@dataclass(slots=True, kw_only=True)
class Aggregates:
    """What monitoring shows for a time range. Money in US dollars, latency in ms.

    ``series`` has one dict per non-empty time bucket, oldest first: ``t`` (bucket start,
    epoch seconds), ``requests``, ``errors``, ``p50``, ``p90``, ``p99``, ``exact_hits``,
    ``semantic_hits``, ``lookups`` (requests that went through a cache), ``total_tokens``,
    ``cost_usd``, ``cost_saved_usd``.
    ``errors`` has ``t``, ``error_type``, ``status`` and ``n`` per bucket and kind.
    ``by_model`` and ``by_metadata`` have ``model`` (or ``value``), ``requests``,
    ``prompt_tokens``, ``completion_tokens``, ``total_tokens``, ``cost_usd``,
    ``cost_saved_usd``; biggest first.
    """

    since: float
    until: float
    bucket_s: float
    requests: int = 0
    errors: int = 0
    latency_ms: dict[str, float | None] = field(default_factory=dict)
    """``p50``, ``p90``, ``p99`` over the whole range."""
    histogram: list[int] = field(default_factory=list)
    """Counts per :data:`LATENCY_EDGES_MS` bucket (one more for slower)."""
    exact_hits: int = 0
    semantic_hits: int = 0
    lookups: int = 0
    total_tokens: int = 0
    cost_usd: float = 0.0
    cost_saved_usd: float = 0.0
    series: list[dict[str, Any]] = field(default_factory=list)
    error_series: list[dict[str, Any]] = field(default_factory=list)
    by_model: list[dict[str, Any]] = field(default_factory=list)
    metadata_key: str | None = None
    by_metadata: list[dict[str, Any]] = field(default_factory=list)

    @property
    def hit_rate(self) -> float | None:
        hits = self.exact_hits + self.semantic_hits
        return hits / self.lookups if self.lookups else None

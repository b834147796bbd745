"""Prometheus metrics, counted by the background writer from each finished record.

Under ``hookgate serve --workers N`` (N > 1) every worker writes its numbers to files in the
server's shared folder (``$HOOKGATE_SERVER_DIR``, made by ``hookgate serve`` and removed when it
stops), and ``/metrics`` on any worker adds up the whole process group (prometheus-client's
multiprocess mode), with no setting. ``metrics_multiprocess_dir`` (or ``PROMETHEUS_MULTIPROC_DIR``)
names another folder; an embedded gateway or a one-worker server counts in its own registry.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hookgate.errors import SettingsError

if TYPE_CHECKING:
    from hookgate.observe import Gauge

__all__ = ["Metrics", "enable_multiprocess", "render_gauges"]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_ENV = "PROMETHEUS_MULTIPROC_DIR"


def enable_multiprocess(directory: str | None) -> str | None:
    """Switch prometheus-client to multiprocess mode (must happen before it is imported);
    returns the directory in use, or None for per-process metrics."""
    if directory is None:
        if os.environ.get(_ENV):
            return os.environ[_ENV]
        server_dir = os.environ.get("HOOKGATE_SERVER_DIR")  # hookgate serve with N workers
        if not server_dir or not os.path.isdir(server_dir):
            return None
        directory = os.path.join(server_dir, "metrics")
    os.makedirs(directory, exist_ok=True)
    current = os.environ.get(_ENV)
    if current and os.path.abspath(current) != os.path.abspath(directory):
        raise SettingsError(
            f"[plugins.logging] metrics_multiprocess_dir is {directory!r} but "
            f"{_ENV} is {current!r}; set one of them"
        )
    values = sys.modules.get("prometheus_client.values")
    if values is not None and not getattr(values.ValueClass, "_multiprocess", False):
        raise SettingsError(
            "[plugins.logging] metrics_multiprocess_dir needs prometheus-client in multiprocess "
            f"mode, but it was imported before; set {_ENV}={directory} in the environment"
        )
    os.environ[_ENV] = directory
    return directory


class Metrics:
    """The gateway's counters and histograms."""

    def __init__(self, multiprocess_dir: str | None = None, max_models: int = 100) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.multiprocess_dir = multiprocess_dir
        self.max_models = max_models
        self._models: set[str] = set()
        self._children: dict[tuple[Any, ...], Any] = {}
        # In multiprocess mode the values live in files; the registry is only for this process.
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "hookgate_requests",
            "Requests answered, by provider, model and status.",
            ["provider", "model", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "hookgate_request_duration_seconds",
            "Total time from arrival to the last byte.",
            ["provider", "model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream = Histogram(
            "hookgate_upstream_duration_seconds",
            "Time spent waiting on upstream calls (all attempts).",
            ["provider"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "hookgate_time_to_first_token_seconds",
            "Streams: time until the first event.",
            ["provider", "model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.attempts = Counter(
            "hookgate_upstream_attempts",
            "Calls to upstream targets, by provider and status (none: no answer).",
            ["provider", "status"],
            registry=r,
        )
        self.tokens = Counter(
            "hookgate_tokens",
            "Tokens, by provider, model and kind (prompt, completion).",
            ["provider", "model", "kind"],
            registry=r,
        )
        self.cost = Counter(
            "hookgate_cost_usd",
            "Cost in US dollars of answered requests with a known price.",
            ["provider", "model"],
            registry=r,
        )
        self.saved = Counter(
            "hookgate_cost_saved_usd",
            "Cost in US dollars that cache hits saved.",
            ["model"],
            registry=r,
        )
        self.cache = Counter(
            "hookgate_cache_lookups",
            "Cache lookups by result (hit, miss, semantic_hit, semantic_miss, refresh).",
            ["result"],
            registry=r,
        )
        self.retries = Counter("hookgate_retries", "Retries of a target.", ["provider"], registry=r)
        self.fallbacks = Counter(
            "hookgate_fallbacks",
            "Moves to another target of the plan after a failure.",
            registry=r,
        )
        self.dropped = Counter(
            "hookgate_log_records_dropped",
            "Records dropped because the writer's queue was full.",
            registry=r,
        )
        self.store_errors = Counter(
            "hookgate_log_store_errors", "Failed writes to the log store.", registry=r
        )
        self.store_dropped = Counter(
            "hookgate_log_store_dropped",
            "Records the log store never wrote: its backlog was full while the database was "
            "slow or down, or it was still down at shutdown.",
            registry=r,
        )

    def _model(self, model: str | None) -> str:
        if model is None:
            return "none"
        if model in self._models:
            return model
        if len(self._models) >= self.max_models:
            return "other"  # bounded label cardinality: clients choose model names
        self._models.add(model)
        return model

    def _child(self, metric: Any, *labels: str) -> Any:
        # prometheus-client validates and locks on every labels() call; children are stable
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def count(self, record: dict[str, Any]) -> None:
        provider = record["provider"] or "none"
        model = self._model(record["model_answered"] or record["model_sent"] or record["model"])
        self._child(self.requests, provider, model, str(record["status"])).inc()
        if record["latency_ms"] is not None:
            self._child(self.latency, provider, model).observe(record["latency_ms"] / 1000)
        if record["upstream_ms"] is not None:
            self._child(self.upstream, provider).observe(record["upstream_ms"] / 1000)
        if record["ttft_ms"] is not None:
            self._child(self.ttft, provider, model).observe(record["ttft_ms"] / 1000)
        for attempt in record["attempts"]:
            status = attempt["status"]
            self._child(
                self.attempts, attempt["provider"], "none" if status is None else str(status)
            ).inc()
        if record["prompt_tokens"]:
            self._child(self.tokens, provider, model, "prompt").inc(record["prompt_tokens"])
        if record["completion_tokens"]:
            self._child(self.tokens, provider, model, "completion").inc(record["completion_tokens"])
        if record["cost_usd"]:
            self._child(self.cost, provider, model).inc(record["cost_usd"])
        if record["cost_saved_usd"]:
            self._child(self.saved, model).inc(record["cost_saved_usd"])
        cache = record["cache_status"]
        if cache and cache != "DISABLED":
            self._child(self.cache, cache.lower().replace(" ", "_")).inc()
        if record["retries"]:
            self._child(self.retries, provider).inc(record["retries"])
        if record["fallbacks"]:
            self.fallbacks.inc(record["fallbacks"])

    def exposition(self) -> tuple[bytes, str]:
        """The body and content type of a ``/metrics`` answer."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if self.multiprocess_dir is None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self.multiprocess_dir)
        return generate_latest(registry), CONTENT_TYPE_LATEST


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render_gauges(gauges: Sequence[Gauge]) -> bytes:
    """Other plugins' gauges (the ``metrics`` hook) in Prometheus' text format."""
    lines: list[str] = []
    for gauge in gauges:
        lines.append(f"# HELP {gauge.name} {gauge.help}")
        lines.append(f"# TYPE {gauge.name} gauge")
        for labels, value in gauge.values:
            inner = ",".join(f'{k}="{_label(str(v))}"' for k, v in labels.items())
            series = f"{gauge.name}{{{inner}}}" if inner else gauge.name
            lines.append(f"{series} {float(value)!r}")
    return ("\n".join(lines) + "\n").encode() if lines else b""

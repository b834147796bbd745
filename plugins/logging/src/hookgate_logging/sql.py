"""What the SQLite and the PostgreSQL log stores share: columns, rows, rollups and SQL.

Both stores keep the same ``requests`` columns (the full record as JSON beside them) and the
same rollup tables, and both answer the log query hooks with the same statements
(:mod:`.query`). A :class:`Dialect` carries the few places where the two databases differ:
the parameter marker, the table names, how a metadata value is read out of the JSON and how
an epoch second becomes a minute. Statements are written once, with ``?`` markers, and
:meth:`Dialect.sql` turns them into the database's own.

Rollups (added up per batch, in the batch's transaction, by both stores):

- ``rollup``: per 1, 5, 15 and 60 minutes, workspace, model answered (the requested one when
  none did), cache status, status and error type: counts, tokens, cost and a latency
  histogram over :data:`hookgate.logquery.LATENCY_EDGES_MS`.
- ``rollup_meta``: the same periods, per workspace and metadata key and value: counts,
  tokens and cost (``by_metadata``).
- ``rollup_dim``: ``rollup``'s keys and sums once more for each value of a dimension a
  monitoring filter may name that ``rollup`` does not keep: the provider, the config, the
  config and its version, and each metadata key and value. So a day's aggregates filtered by
  one of them read a few thousand rows, not the day's records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from operator import add
from typing import Any, Literal

import orjson
from hookgate.logquery import LATENCY_EDGES_MS, LogFilter, latency_bucket

__all__ = [
    "COLUMNS",
    "DIM_KEYS",
    "HIST",
    "LEVELS",
    "META_KEYS",
    "META_SUMS",
    "POSTGRES",
    "ROLLUP_KEYS",
    "ROLLUP_SUMS",
    "SQLITE",
    "Dialect",
    "dimension",
    "record_filters",
    "record_row",
    "rollups",
    "upsert",
]

COLUMNS = (
    "ts",
    "trace_id",
    "endpoint",
    "provider",
    "model",
    "model_answered",
    "target",
    "status",
    "stream",
    "cache_status",
    "cache_similarity",
    "latency_ms",
    "upstream_ms",
    "ttft_ms",
    "attempts",
    "retries",
    "fallbacks",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "usage_source",
    "cost_usd",
    "cost_saved_usd",
    "error_type",
    "error_code",
    "config_id",
    "config_version",
    "workspace",
)
"""The ``requests`` columns filled from a record (then ``metadata`` and ``record``)."""

HIST = len(LATENCY_EDGES_MS) + 1
HIST_COLUMNS = tuple(f"h{i}" for i in range(HIST))
LEVELS = (1, 5, 15, 60)
"""Rollup granularities in minutes: a query reads the coarsest that divides its bucket."""
USAGE_SUMS = (
    "n",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cost_usd",
    "cost_saved_usd",
)
_KIND = ("workspace", "model", "cache_status", "status", "error_type")
ROLLUP_KEYS = ("level", "minute", *_KIND)
ROLLUP_SUMS = (*USAGE_SUMS, *HIST_COLUMNS)
META_KEYS = ("level", "minute", "workspace", "key", "value")
META_SUMS = USAGE_SUMS
DIM_KEYS = ("dim", "value", "level", "minute", *_KIND)
"""``rollup_dim``: the dimension first, so a filtered query reads one contiguous range."""
_VALUE_CHARS = 200


@dataclass(frozen=True, slots=True)
class Dialect:
    """Where SQLite and PostgreSQL differ, for the statements both stores run."""

    name: str
    marker: str
    requests: str
    rollup: str
    rollup_meta: str
    rollup_dim: str
    minute: str
    """SQL for the minute (epoch seconds // 60) of a record's ``ts``."""
    meta: str
    """SQL for one metadata value (a marker for its parameter, see :meth:`meta_param`)."""
    real: str
    integer: str
    text: str

    def sql(self, statement: str) -> str:
        return statement if self.marker == "?" else statement.replace("?", self.marker)

    def meta_param(self, key: str) -> str:
        return '$."' + key.replace('"', "") + '"' if self.name == "sqlite" else key

    def table(self, name: str) -> str:
        return {
            "rollup": self.rollup,
            "rollup_meta": self.rollup_meta,
            "rollup_dim": self.rollup_dim,
        }[name]

    def rollup_schema(self) -> str:
        """``CREATE TABLE IF NOT EXISTS`` for the three rollup tables."""

        def columns(keys: Sequence[str], sums: Sequence[str]) -> str:
            kinds = {
                "level": self.integer, "minute": self.integer, "status": self.integer,
                "cost_usd": self.real, "cost_saved_usd": self.real,
            }  # fmt: skip
            return ", ".join(
                f"{c} {kinds.get(c, self.text if c in keys else self.integer)} NOT NULL"
                for c in (*keys, *sums)
            )

        tail = " WITHOUT ROWID" if self.name == "sqlite" else ""
        return "".join(
            f"CREATE TABLE IF NOT EXISTS {table} ({columns(keys, sums)}, "
            f"PRIMARY KEY ({', '.join(pk)})){tail};\n"
            for table, keys, sums, pk in (
                (self.rollup, ROLLUP_KEYS, ROLLUP_SUMS, ROLLUP_KEYS),
                (self.rollup_meta, META_KEYS, META_SUMS, ("key", "level", "minute", "workspace", "value")),
                (self.rollup_dim, DIM_KEYS, ROLLUP_SUMS, DIM_KEYS),
            )
        )  # fmt: skip


SQLITE = Dialect(
    name="sqlite",
    marker="?",
    requests="requests",
    rollup="rollup",
    rollup_meta="rollup_meta",
    rollup_dim="rollup_dim",
    minute="CAST(ts / 60 AS INTEGER)",
    meta="json_extract(metadata, ?)",
    real="REAL",
    integer="INTEGER",
    text="TEXT",
)
POSTGRES = Dialect(
    name="postgresql",
    marker="%s",
    requests="hookgate_requests",
    rollup="hookgate_rollup",
    rollup_meta="hookgate_rollup_meta",
    rollup_dim="hookgate_rollup_dim",
    minute="CAST(floor(ts / 60) AS BIGINT)",
    meta="metadata ->> ?",
    real="double precision",
    integer="bigint",
    text="text",
)


def upsert(dialect: Dialect, name: str) -> str:
    """The statement that adds one row of sums into rollup table ``name``."""
    keys, sums = {
        "rollup": (ROLLUP_KEYS, ROLLUP_SUMS),
        "rollup_meta": (META_KEYS, META_SUMS),
        "rollup_dim": (DIM_KEYS, ROLLUP_SUMS),
    }[name]
    table = dialect.table(name)
    columns = (*keys, *sums)
    return dialect.sql(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)}) "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET "
        + ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in sums)
    )


def record_row(record: dict[str, Any], text: str, *, stream_as_bool: bool) -> tuple[Any, ...]:
    """The values of :data:`COLUMNS`, ``metadata`` and ``record`` for one record."""
    values: list[Any] = []
    for column in COLUMNS:
        value = record.get(column)
        if column == "attempts":
            value = len(value or ())
        elif column == "stream":
            value = bool(value) if stream_as_bool else int(bool(value))
        values.append(value)
    values.append(orjson.dumps(record.get("metadata") or {}).decode())
    values.append(text)
    return tuple(values)


def _num(value: Any) -> float:
    kind = type(value)
    return value if kind is int or kind is float else 0


def dimensions(record: dict[str, Any]) -> list[tuple[str, str]]:
    """The ``rollup_dim`` dimensions and values of one record."""
    get = record.get
    out: list[tuple[str, str]] = []
    provider = get("provider")
    if provider:
        out.append(("provider", str(provider)[:_VALUE_CHARS]))
    config = get("config_id")
    if config:
        out.append(("config", str(config)[:_VALUE_CHARS]))
        version = get("config_version")
        if version is not None:
            out.append(("config@version", f"{config}@{version}"[:_VALUE_CHARS]))
    metadata = get("metadata")
    if metadata:
        for name, value in metadata.items():
            out.append((f"meta:{str(name)[:_VALUE_CHARS]}", str(value)[:_VALUE_CHARS]))
    return out


def dimension(f: LogFilter) -> tuple[str, str] | Literal["rollup", "records"]:
    """The one ``rollup_dim`` dimension and value that answer ``f``'s filters which
    ``rollup`` cannot; ``"rollup"`` when ``rollup`` answers all of them; ``"records"`` when
    no rollup can (a trace id, a version without its config, two such filters at once)."""
    if f.trace_id is not None or (f.config_version is not None and f.config_id is None):
        return "records"
    found: list[tuple[str, str]] = []
    if f.provider is not None:
        found.append(("provider", f.provider))
    if f.config_id is not None:
        if f.config_version is not None:
            found.append(("config@version", f"{f.config_id}@{f.config_version}"))
        else:
            found.append(("config", f.config_id))
    found += [(f"meta:{key}", value) for key, value in f.metadata]
    if not found:
        return "rollup"
    return found[0] if len(found) == 1 else "records"


def rollups(
    records: Sequence[dict[str, Any]],
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """What ``records`` add to ``rollup``, ``rollup_meta`` and ``rollup_dim``, summed per key
    and level, each list sorted by key (so concurrent writers lock rows in one order).

    Runs on the writer's thread for every batch, so it is kept lean: each record is added
    once, into its minute; the coarser periods are then added up from the minutes.
    """
    width = 6 + HIST
    sums: dict[tuple[Any, ...], list[Any]] = {}
    meta: dict[tuple[Any, ...], list[Any]] = {}
    dims: dict[tuple[Any, ...], list[Any]] = {}
    for record in records:
        ts = record.get("ts")
        if not isinstance(ts, int | float):
            continue
        get = record.get
        workspace = get("workspace") or ""
        status = get("status")
        key = (
            int(ts // 60),
            workspace,
            get("model_answered") or get("model") or "",
            get("cache_status") or "",
            status if type(status) is int else 0,
            get("error_type") or "",
        )
        prompt, completion, total = (
            _num(get("prompt_tokens")),
            _num(get("completion_tokens")),
            _num(get("total_tokens")),
        )
        cost, saved = _num(get("cost_usd")), _num(get("cost_saved_usd"))
        bucket = latency_bucket(get("latency_ms"))
        adds = (prompt, completion, total, cost, saved)
        _add(sums, key, width, adds, bucket)
        for dim, value in dimensions(record):
            _add(dims, (dim, value, *key), width, adds, bucket)
            if dim.startswith("meta:"):
                _add(meta, (key[0], workspace, dim[5:], value), 6, adds, None)
    return _levels(sums, 0), _levels(meta, 0), _levels(dims, 2)


def _add(
    into: dict[tuple[Any, ...], list[Any]],
    key: tuple[Any, ...],
    width: int,
    adds: tuple[float, float, float, float, float],
    bucket: int | None,
) -> None:
    row = into.get(key)
    if row is None:
        row = into[key] = [0] * width
    row[0] += 1
    row[1] += adds[0]
    row[2] += adds[1]
    row[3] += adds[2]
    row[4] += adds[3]
    row[5] += adds[4]
    if bucket is not None:
        row[6 + bucket] += 1


def _levels(minutes: dict[tuple[Any, ...], list[Any]], at: int) -> list[tuple[Any, ...]]:
    """Rows for every level from per-minute sums keyed ``(*head, minute, *rest)``, the
    minute at index ``at``; the level goes just before the minute. Each level is added up
    from the one below it (5 from 1, 15 from 5, 60 from 15): fewer rows each time."""
    out: list[tuple[Any, ...]] = []
    finer = minutes
    for level in LEVELS:
        coarse: dict[tuple[Any, ...], list[Any]] = {}
        if level == 1:
            coarse = minutes
        else:
            for key, values in finer.items():
                minute = key[at]
                ckey = (*key[:at], minute - minute % level, *key[at + 1 :])
                found = coarse.get(ckey)
                coarse[ckey] = values[:] if found is None else list(map(add, found, values))
        out.extend((*key[:at], level, *key[at:], *values) for key, values in coarse.items())
        finer = coarse
    out.sort(key=lambda row: row[: at + 7])
    return out


# Records grouped into rollup rows by the database (a filter no rollup answers; the rollups of
# a store from before them): the kind, the sums and the latency histogram, as SQL.
GROUPED_KIND = (
    "COALESCE(workspace, ''), COALESCE(NULLIF(model_answered, ''), NULLIF(model, ''), ''), "
    "COALESCE(cache_status, ''), COALESCE(status, 0), COALESCE(error_type, '')"
)
GROUPED_USAGE = (
    "COUNT(*), CAST(COALESCE(SUM(prompt_tokens), 0) AS BIGINT), "
    "CAST(COALESCE(SUM(completion_tokens), 0) AS BIGINT), "
    "CAST(COALESCE(SUM(total_tokens), 0) AS BIGINT), "
    "COALESCE(SUM(cost_usd), 0), COALESCE(SUM(cost_saved_usd), 0)"
)
_EDGES = [float(e) for e in LATENCY_EDGES_MS]
GROUPED_HIST = ", ".join(
    "SUM(CASE WHEN "
    + " AND ".join(
        ([f"latency_ms >= {low!r}"] if low is not None else [])
        + ([f"latency_ms < {high!r}"] if high is not None else [])
    )
    + " THEN 1 ELSE 0 END)"
    for low, high in [(None, _EDGES[0]), *pairwise(_EDGES), (_EDGES[-1], None)]
)


def backfill(d: Dialect, names: Sequence[str]) -> list[str]:
    """Statements that add every record into the rollup tables ``names`` (empty ones, of a
    store from before them), grouped by the database: the minutes from the records, then
    each coarser level from the minutes."""
    pairs = (
        f"json_each({d.requests}.metadata) AS j"
        if d is SQLITE
        else "jsonb_each_text(metadata) AS j(key, value)"
    )
    value = f"substr(CAST(j.value AS {d.text}), 1, {_VALUE_CHARS})"
    name = f"substr(j.key, 1, {_VALUE_CHARS})"
    kind = f"{d.minute}, {GROUPED_KIND}"
    minutes = {
        "rollup": [
            f"SELECT 1, {kind}, {GROUPED_USAGE}, {GROUPED_HIST} FROM {d.requests} "
            "GROUP BY 2, 3, 4, 5, 6, 7"
        ],
        "rollup_meta": [
            f"SELECT 1, {d.minute}, COALESCE(workspace, ''), {name}, {value}, {GROUPED_USAGE} "
            f"FROM {d.requests}, {pairs} GROUP BY 2, 3, 4, 5"
        ],
        "rollup_dim": [
            f"SELECT {dim}, {val}, 1, {kind}, {GROUPED_USAGE}, {GROUPED_HIST} "
            f"FROM {source} WHERE {cond} GROUP BY 1, 2, 4, 5, 6, 7, 8, 9"
            for dim, val, source, cond in (
                ("'provider'", f"substr(provider, 1, {_VALUE_CHARS})", d.requests,
                 "provider IS NOT NULL AND provider != ''"),
                ("'config'", f"substr(config_id, 1, {_VALUE_CHARS})", d.requests,
                 "config_id IS NOT NULL AND config_id != ''"),
                ("'config@version'",
                 f"substr(config_id || '@' || CAST(config_version AS {d.text}), 1, {_VALUE_CHARS})",
                 d.requests,
                 "config_id IS NOT NULL AND config_id != '' AND config_version IS NOT NULL"),
                (f"'meta:' || {name}", value, f"{d.requests}, {pairs}", "1 = 1"),
            )
        ],
    }  # fmt: skip
    layout = {
        "rollup": (ROLLUP_KEYS, ROLLUP_SUMS),
        "rollup_meta": (META_KEYS, META_SUMS),
        "rollup_dim": (DIM_KEYS, ROLLUP_SUMS),
    }
    out: list[str] = []
    for table in names:
        keys, sums = layout[table]
        columns = ", ".join((*keys, *sums))
        target = d.table(table)
        out += [f"INSERT INTO {target} ({columns}) {select}" for select in minutes[table]]
        rest = [k for k in keys if k not in ("level", "minute")]
        for level in LEVELS[1:]:
            picked = [
                str(level) if k == "level" else f"minute - minute % {level}" if k == "minute" else k
                for k in keys
            ]
            out.append(
                f"INSERT INTO {target} ({columns}) SELECT {', '.join(picked)}, "
                + ", ".join(f"SUM({c})" for c in sums)
                + f" FROM {target} WHERE level = 1 GROUP BY minute - minute % {level}, "
                + ", ".join(rest)
            )
    return out


def record_filters(dialect: Dialect, f: LogFilter) -> tuple[list[str], list[Any]]:
    """SQL conditions (with ``?`` markers) on the ``requests`` table for ``f``."""
    clauses: list[str] = []
    params: list[Any] = []

    def eq(column: str, value: Any) -> None:
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)

    if f.since is not None:
        clauses.append("ts >= ?")
        params.append(f.since)
    if f.until is not None:
        clauses.append("ts < ?")
        params.append(f.until)
    eq("trace_id", f.trace_id)
    eq("status", f.status)
    if f.status_class is not None:
        clauses.append("status >= ? AND status < ?")
        params += [f.status_class * 100, f.status_class * 100 + 100]
    if (f.status is not None and f.status >= 400) or (
        f.status_class is not None and f.status_class >= 4
    ):
        # Implied already; said in the very words of the partial index of failed requests,
        # so that the planner may use it (SQLite proves an index's WHERE only by its terms).
        clauses.append("status >= 400")
    eq("provider", f.provider)
    if f.model is not None:
        clauses.append("(model = ? OR model_answered = ?)")
        params += [f.model, f.model]
    eq("cache_status", f.cache_status)
    eq("config_id", f.config_id)
    eq("config_version", f.config_version)
    eq("workspace", f.workspace)
    eq("error_type", f.error_type)
    for key, value in f.metadata:
        clauses.append(f"{dialect.meta} = ?")
        params += [dialect.meta_param(key), value]
    return clauses, params


def where(clauses: list[str]) -> str:
    return " WHERE " + " AND ".join(clauses) if clauses else ""

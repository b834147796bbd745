"""The log query hooks (:mod:`hookgate.logquery`) answered from the SQLite store.

Queries run on a small pool of their own threads, each with its own read-only connection, so
a console full of charts neither blocks the event loop nor waits behind the request path:
SQLite in WAL mode lets them read while the writer's thread writes.

- Pages of records: ``ORDER BY ts DESC, id DESC`` with a ``(ts, id) < (?, ?)`` cursor, on the
  ``ts`` index (or the trace id's, a workspace's, a config's): page 1000 costs what page 1
  costs.
- Aggregates: added up from the per-minute ``rollup`` tables (see :mod:`.store`), so the time
  range, not the number of records, sets the cost. A filter the rollups cannot answer (a trace
  id, a config version, metadata) is answered from the records themselves, in the same shape.
"""

from __future__ import annotations

import base64
import binascii
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import orjson
from hookgate.errors import BadRequestError
from hookgate.logquery import (
    AggregateQuery,
    Aggregates,
    LogFilter,
    LogPage,
    LogQuery,
    percentile_from_histogram,
)

from .store import HIST, META_SUMS, ROLLUP_KEYS, ROLLUP_SUMS, LogStore, rollups

__all__ = ["LogReader"]

T = TypeVar("T")
MAX_LIMIT = 1000


def encode_cursor(ts: float, row_id: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([ts, row_id])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, int]:
    try:
        ts, row_id = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(ts, int | float) or not isinstance(row_id, int):
            raise ValueError
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError) as exc:
        raise BadRequestError(
            "the log cursor is not one this store made", code="invalid_cursor"
        ) from exc
    return float(ts), row_id


def record_filters(f: LogFilter) -> tuple[list[str], list[Any]]:
    """SQL conditions on the ``requests`` table for ``f``."""
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
        clauses.append("json_extract(metadata, ?) = ?")
        params += ['$."' + key.replace('"', "") + '"', value]
    return clauses, params


def _rollup_filters(f: LogFilter) -> tuple[list[str], list[Any]] | None:
    """SQL conditions on ``rollup`` for ``f``; None when the rollups cannot answer it."""
    if f.trace_id is not None or f.config_version is not None or f.metadata:
        return None
    clauses: list[str] = ["minute >= ?", "minute < ?"]
    assert f.since is not None and f.until is not None
    params: list[Any] = [int(f.since // 60), -int(-f.until // 60)]
    for column, value in (
        ("workspace", f.workspace),
        ("provider", f.provider),
        ("config_id", f.config_id),
        ("cache_status", f.cache_status),
        ("status", f.status),
        ("error_type", f.error_type),
    ):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if f.status_class is not None:
        clauses.append("status >= ? AND status < ?")
        params += [f.status_class * 100, f.status_class * 100 + 100]
    if f.model is not None:
        clauses.append("(model = ? OR model_answered = ?)")
        params += [f.model, f.model]
    return clauses, params


class LogReader:
    """Reads one store file for the log query hooks."""

    def __init__(self, store: LogStore, threads: int = 2) -> None:
        self.store = store
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="hookgate-logs-query")
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        return self.store.path

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()

    def _conn(self) -> sqlite3.Connection | None:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if not self.store.path.exists():
                return None  # nothing logged yet
            conn = self.store.connect(create=True)
            conn.execute("PRAGMA query_only = 1")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    async def run(self, work: Callable[[sqlite3.Connection | None], T]) -> T:
        import asyncio

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: work(self._conn()))

    # ---- pages ------------------------------------------------------------------------

    def page(self, conn: sqlite3.Connection | None, query: LogQuery) -> LogPage:
        if conn is None:
            return LogPage([], None)
        clauses, params = record_filters(query.filter)
        if query.cursor:
            ts, row_id = decode_cursor(query.cursor)
            clauses.append("(ts, id) < (?, ?)")
            params += [ts, row_id]
        limit = max(1, min(int(query.limit), MAX_LIMIT))
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        rows = conn.execute(
            f"SELECT id, ts, record FROM requests{where} ORDER BY ts DESC, id DESC LIMIT ?",
            [*params, limit + 1],
        ).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        records = [orjson.loads(row[2]) for row in rows]
        cursor = encode_cursor(rows[-1][1], rows[-1][0]) if more else None
        return LogPage(records, cursor)

    # ---- aggregates ---------------------------------------------------------------------

    def aggregate(self, conn: sqlite3.Connection | None, query: AggregateQuery) -> Aggregates:
        f = query.filter
        if f.since is None or f.until is None:
            raise BadRequestError("aggregates need a time range (since and until)")
        bucket_min = max(1, round(query.bucket_s / 60))
        out = Aggregates(
            since=f.since,
            until=f.until,
            bucket_s=bucket_min * 60.0,
            metadata_key=query.metadata_key,
        )
        if conn is None:
            out.histogram = [0] * HIST
            out.latency_ms = {"p50": None, "p90": None, "p99": None}
            return out
        rollup = _rollup_filters(f)
        if rollup is not None:
            rows = self._rollup_rows(conn, rollup, bucket_min)
            meta = (
                self._meta_rows(conn, f, query.metadata_key)
                if query.metadata_key is not None
                else []
            )
        else:
            rows, meta = self._raw_rows(conn, f, bucket_min, query.metadata_key)
        _fill(out, rows, meta, bucket_min)
        return out

    def _rollup_rows(
        self, conn: sqlite3.Connection, rollup: tuple[list[str], list[Any]], bucket_min: int
    ) -> list[tuple[Any, ...]]:
        clauses, params = rollup
        sums = ", ".join(f"SUM({c})" for c in ROLLUP_SUMS)
        return conn.execute(
            f"SELECT minute / {bucket_min} AS b, "
            "CASE WHEN model_answered != '' THEN model_answered ELSE model END AS m, "
            f"cache_status, status, error_type, {sums} FROM rollup "
            f"WHERE {' AND '.join(clauses)} GROUP BY b, m, cache_status, status, error_type",
            params,
        ).fetchall()

    def _meta_rows(self, conn: sqlite3.Connection, f: LogFilter, key: str) -> list[tuple[Any, ...]]:
        assert f.since is not None and f.until is not None
        clauses = ["key = ?", "minute >= ?", "minute < ?"]
        params: list[Any] = [key, int(f.since // 60), -int(-f.until // 60)]
        if f.workspace is not None:
            clauses.append("workspace = ?")
            params.append(f.workspace)
        sums = ", ".join(f"SUM({c})" for c in META_SUMS)
        return conn.execute(
            f"SELECT value, {sums} FROM rollup_meta WHERE {' AND '.join(clauses)} GROUP BY value",
            params,
        ).fetchall()

    def _raw_rows(
        self, conn: sqlite3.Connection, f: LogFilter, bucket_min: int, key: str | None
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        clauses, params = record_filters(f)
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        columns = (
            "ts", "workspace", "provider", "model", "model_answered", "config_id",
            "cache_status", "status", "error_type", "prompt_tokens", "completion_tokens",
            "total_tokens", "cost_usd", "cost_saved_usd", "latency_ms",
        )  # fmt: skip
        select = ", ".join(columns)
        if key is not None:
            select += ", json_extract(metadata, ?)"
            params = ['$."' + key.replace('"', "") + '"', *params]
        records = []
        for row in conn.execute(f"SELECT {select} FROM requests{where}", params):
            record = dict(zip(columns, row, strict=False))
            if key is not None and row[-1] is not None:
                record["metadata"] = {key: row[-1]}
            records.append(record)
        sums, meta = rollups(records)
        grouped: dict[tuple[Any, ...], list[Any]] = {}
        keys = len(ROLLUP_KEYS)
        for row in sums:
            minute, _ws, _provider, model, answered, _config, cache, status, error = row[:keys]
            group = (minute // bucket_min, answered or model, cache, status, error)
            values = grouped.setdefault(group, [0] * len(ROLLUP_SUMS))
            for i, value in enumerate(row[keys:]):
                values[i] += value
        meta_grouped: dict[str, list[Any]] = {}
        for row in meta:
            values = meta_grouped.setdefault(row[3], [0] * len(META_SUMS))
            for i, value in enumerate(row[4:]):
                values[i] += value
        return (
            [(*k, *v) for k, v in grouped.items()],
            [(k, *v) for k, v in meta_grouped.items()],
        )


def _usage(name: str, value: Any, sums: list[Any]) -> dict[str, Any]:
    return {
        name: value,
        "requests": sums[0],
        "prompt_tokens": sums[1],
        "completion_tokens": sums[2],
        "total_tokens": sums[3],
        "cost_usd": sums[4],
        "cost_saved_usd": sums[5],
    }


def _fill(
    out: Aggregates,
    rows: list[tuple[Any, ...]],
    meta: list[tuple[Any, ...]],
    bucket_min: int,
) -> None:
    """Adds grouped rollup rows ``(bucket, model, cache, status, error, *sums)`` into ``out``."""
    histogram = [0] * HIST
    buckets: dict[int, dict[str, Any]] = {}
    errors: dict[tuple[int, str, int], int] = {}
    models: dict[str, list[Any]] = {}
    for row in rows:
        bucket, model, cache, status, error = row[:5]
        n, prompt, completion, total, cost, saved = row[5:11]
        hist = row[11:]
        entry = buckets.get(bucket)
        if entry is None:
            entry = buckets[bucket] = {
                "t": bucket * bucket_min * 60,
                "requests": 0,
                "errors": 0,
                "exact_hits": 0,
                "semantic_hits": 0,
                "lookups": 0,
                "total_tokens": 0,
                "cost_usd": 0.0,
                "cost_saved_usd": 0.0,
                "_hist": [0] * HIST,
            }
        entry["requests"] += n
        entry["total_tokens"] += total
        entry["cost_usd"] += cost
        entry["cost_saved_usd"] += saved
        if status >= 400:
            entry["errors"] += n
            out.errors += n
        if error or status >= 400:
            kind = (bucket, error or f"HTTP {status}", status)
            errors[kind] = errors.get(kind, 0) + n
        if cache == "HIT":
            entry["exact_hits"] += n
            out.exact_hits += n
        elif cache == "SEMANTIC HIT":
            entry["semantic_hits"] += n
            out.semantic_hits += n
        if cache not in ("", "DISABLED"):
            entry["lookups"] += n
            out.lookups += n
        for i, count in enumerate(hist):
            entry["_hist"][i] += count
            histogram[i] += count
        out.requests += n
        out.total_tokens += total
        out.cost_usd += cost
        out.cost_saved_usd += saved
        sums = models.setdefault(model or "(none)", [0, 0, 0, 0, 0.0, 0.0])
        for i, value in enumerate((n, prompt, completion, total, cost, saved)):
            sums[i] += value
    series = []
    for bucket in sorted(buckets):
        entry = buckets[bucket]
        hist = entry.pop("_hist")
        for p in (50, 90, 99):
            entry[f"p{p}"] = percentile_from_histogram(hist, p)
        series.append(entry)
    out.series = series
    out.histogram = histogram
    out.latency_ms = {f"p{p}": percentile_from_histogram(histogram, p) for p in (50, 90, 99)}
    out.error_series = [
        {"t": b * bucket_min * 60, "error_type": e, "status": s, "n": n}
        for (b, e, s), n in sorted(errors.items())
    ]
    out.by_model = sorted(
        (_usage("model", m, v) for m, v in models.items()),
        key=lambda u: (-u["requests"], u["model"]),
    )
    out.by_metadata = sorted(
        (_usage("value", row[0], list(row[1:])) for row in meta),
        key=lambda u: (-u["requests"], str(u["value"])),
    )

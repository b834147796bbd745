"""The log query hooks (:mod:`hookgate.logquery`) answered from the SQLite store.

Queries run on a small pool of their own threads, each with its own read-only connection, so
a console full of charts neither blocks the event loop nor waits behind the request path:
SQLite in WAL mode lets them read while the writer's thread writes.

- Pages of records: ``ORDER BY ts DESC, id DESC`` with a ``(ts, id) < (?, ?)`` cursor, on the
  ``ts`` index (or the trace id's, a workspace's, a config's): page 1000 costs what page 1
  costs.
- Aggregates: added up from the ``rollup`` tables (see :mod:`.store`) at the coarsest period
  that divides the bucket, so the time range, not the number of records, sets the cost. A
  filter the rollups cannot answer (a trace id, provider, config or version, metadata) is
  answered from the records themselves, in the same shape. The rollups' model is the model
  that answered (the requested one when none did).
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

from .store import (
    _META_UPSERT,
    _ROLLUP_SCHEMA,
    _ROLLUP_UPSERT,
    HIST,
    LEVELS,
    LogStore,
    rollups,
)

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


def _level(bucket_min: int) -> int:
    """The coarsest rollup period that divides the bucket."""
    return max(level for level in LEVELS if bucket_min % level == 0)


def _rollup_filters(f: LogFilter, level: int) -> tuple[list[str], list[Any]] | None:
    """SQL conditions on ``rollup`` for ``f``; None when the rollups cannot answer it (they
    keep workspace, model answered, cache status, status and error type, not the rest)."""
    if (
        f.trace_id is not None
        or f.config_version is not None
        or f.metadata
        or f.provider is not None
        or f.config_id is not None
    ):
        return None
    assert f.since is not None and f.until is not None
    first = int(f.since // 60)
    clauses: list[str] = ["level = ?", "minute >= ?", "minute < ?"]
    params: list[Any] = [level, first - first % level, -int(-f.until // 60)]
    for column, value in (
        ("workspace", f.workspace),
        ("model", f.model),
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
        # Ids first, then their records: a filter's index (and the sort, when it needs one)
        # carries only (ts, id), never the records' text.
        rows = conn.execute(
            f"SELECT id, ts FROM requests{where} ORDER BY ts DESC, id DESC LIMIT ?",
            [*params, limit + 1],
        ).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        texts = (
            dict(
                conn.execute(
                    f"SELECT id, record FROM requests WHERE id IN ({', '.join('?' for _ in rows)})",
                    [row[0] for row in rows],
                ).fetchall()
            )
            if rows
            else {}
        )
        records = [orjson.loads(texts[row[0]]) for row in rows if row[0] in texts]
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
        level = _level(bucket_min)
        rollup = _rollup_filters(f, level)
        if rollup is not None:
            _fill(out, conn, rollup, bucket_min, query.metadata_key, self._meta_filters(f, level))
            return out
        # From the records: their rollups into a table in memory, then the same queries.
        scratch = sqlite3.connect(":memory:")
        try:
            scratch.executescript(_ROLLUP_SCHEMA)
            sums, meta = self._raw_rollups(conn, f, query.metadata_key)
            scratch.executemany(_ROLLUP_UPSERT, [r for r in sums if r[0] == 1])
            scratch.executemany(_META_UPSERT, [r for r in meta if r[0] == 1])
            everything = LogFilter(since=f.since, until=f.until)
            _fill(
                out,
                scratch,
                _rollup_filters(everything, 1) or ([], []),
                bucket_min,
                query.metadata_key,
                self._meta_filters(everything, 1),
            )
        finally:
            scratch.close()
        return out

    @staticmethod
    def _meta_filters(f: LogFilter, level: int) -> tuple[list[str], list[Any]]:
        assert f.since is not None and f.until is not None
        first = int(f.since // 60)
        clauses = ["level = ?", "minute >= ?", "minute < ?"]
        params: list[Any] = [level, first - first % level, -int(-f.until // 60)]
        if f.workspace is not None:
            clauses.append("workspace = ?")
            params.append(f.workspace)
        return clauses, params

    def _raw_rollups(
        self, conn: sqlite3.Connection, f: LogFilter, key: str | None
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        clauses, params = record_filters(f)
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        columns = (
            "ts", "workspace", "model", "model_answered", "cache_status", "status", "error_type",
            "prompt_tokens", "completion_tokens", "total_tokens", "cost_usd", "cost_saved_usd",
            "latency_ms",
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
        return rollups(records)


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
    conn: sqlite3.Connection,
    rollup: tuple[list[str], list[Any]],
    bucket_min: int,
    metadata_key: str | None,
    meta: tuple[list[str], list[Any]],
) -> None:
    """Adds up ``rollup`` rows matching the filter into ``out``: three narrow queries (per
    bucket, per model, per kind of error), so SQLite does the adding and Python gets a few
    hundred rows, whatever the number of records."""
    clauses, params = rollup
    where = " AND ".join(clauses) if clauses else "1"
    hist = ", ".join(f"SUM(h{i})" for i in range(HIST))
    series = conn.execute(
        f"SELECT minute / {bucket_min} AS b, SUM(n), "
        "SUM(CASE WHEN status >= 400 THEN n ELSE 0 END), "
        "SUM(CASE WHEN cache_status = 'HIT' THEN n ELSE 0 END), "
        "SUM(CASE WHEN cache_status = 'SEMANTIC HIT' THEN n ELSE 0 END), "
        "SUM(CASE WHEN cache_status NOT IN ('', 'DISABLED') THEN n ELSE 0 END), "
        f"SUM(total_tokens), SUM(cost_usd), SUM(cost_saved_usd), {hist} "
        f"FROM rollup WHERE {where} GROUP BY b ORDER BY b",
        params,
    ).fetchall()
    histogram = [0] * HIST
    entries = []
    for row in series:
        bucket, n, errors, exact, semantic, lookups, total, cost, saved = row[:9]
        counts = row[9:]
        for i, count in enumerate(counts):
            histogram[i] += count
        entries.append(
            {
                "t": bucket * bucket_min * 60,
                "requests": n,
                "errors": errors,
                "exact_hits": exact,
                "semantic_hits": semantic,
                "lookups": lookups,
                "total_tokens": total,
                "cost_usd": cost,
                "cost_saved_usd": saved,
                **{f"p{p}": percentile_from_histogram(counts, p) for p in (50, 90, 99)},
            }
        )
        out.requests += n
        out.errors += errors
        out.exact_hits += exact
        out.semantic_hits += semantic
        out.lookups += lookups
        out.total_tokens += total
        out.cost_usd += cost
        out.cost_saved_usd += saved
    out.series = entries
    out.histogram = histogram
    out.latency_ms = {f"p{p}": percentile_from_histogram(histogram, p) for p in (50, 90, 99)}
    usage = (
        "SUM(n), SUM(prompt_tokens), SUM(completion_tokens), SUM(total_tokens), "
        "SUM(cost_usd), SUM(cost_saved_usd)"
    )
    out.by_model = [
        _usage("model", row[0] or "(none)", list(row[1:]))
        for row in conn.execute(
            f"SELECT model, {usage} FROM rollup WHERE {where} GROUP BY model "
            "ORDER BY SUM(n) DESC, model",
            params,
        )
    ]
    out.error_series = [
        {"t": b * bucket_min * 60, "error_type": e or f"HTTP {s}", "status": s, "n": n}
        for b, e, s, n in conn.execute(
            f"SELECT minute / {bucket_min} AS b, error_type, status, SUM(n) FROM rollup "
            f"WHERE {where} AND (status >= 400 OR error_type != '') "
            "GROUP BY b, error_type, status ORDER BY b, error_type, status",
            params,
        )
    ]
    if metadata_key is not None:
        mclauses, mparams = meta
        out.by_metadata = [
            _usage("value", row[0], list(row[1:]))
            for row in conn.execute(
                f"SELECT value, {usage} FROM rollup_meta WHERE key = ? AND "
                f"{' AND '.join(mclauses)} GROUP BY value ORDER BY SUM(n) DESC, value",
                [metadata_key, *mparams],
            )
        ]

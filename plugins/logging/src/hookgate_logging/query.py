"""The log query hooks (:mod:`hookgate.logquery`) answered from either store.

The same statements serve SQLite and PostgreSQL (:mod:`.sql` says where they differ). Queries
run on a small pool of their own threads, each with its own connection, so a console full of
charts neither blocks the event loop nor waits behind the request path (SQLite in WAL mode
and PostgreSQL both let readers read while the writer writes).

- Pages of records: ``ORDER BY ts DESC, id DESC`` with a ``(ts, id) < (?, ?)`` cursor, on the
  ``ts`` index (or the trace id's, a workspace's, a config's, or the partial index of failed
  requests): page 1000 costs what page 1 costs. Ids first, then the records of those ids.
- Aggregates: added up from the rollup tables (see :mod:`.sql`) at the coarsest period that
  divides the bucket, so the time range, not the number of records, sets the cost. A filter
  on one provider, config (and version) or metadata pair reads ``rollup_dim``; anything else
  (a trace id, two such filters at once) is grouped from the records by the database, once,
  into rows of the same shape, and added up the same way. The rollups' model is the model
  that answered (the requested one when none did).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Any, Protocol, TypeVar

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

from .sql import (
    GROUPED_HIST,
    GROUPED_KIND,
    GROUPED_USAGE,
    HIST,
    LEVELS,
    SQLITE,
    Dialect,
    dimension,
    record_filters,
    upsert,
    where,
)

__all__ = ["LogReader", "ReadableStore", "read_records"]

T = TypeVar("T")
MAX_LIMIT = 1000


class ReadableStore(Protocol):
    """What :class:`LogReader` needs of a store (``LogStore``, ``PostgresLogStore``)."""

    @property
    def dialect(self) -> Dialect: ...

    def reading(self) -> AbstractContextManager[Any]:
        """A connection for one reader outside the pool (``hookgate logs``, the bench)."""

    def reader_connection(self) -> Any:
        """A connection for one query thread (None while there is nothing to read)."""

    def reader_failed(self, exc: Exception) -> Exception | None:
        """What a failed query raises instead (None: itself); the thread's connection is
        dropped either way."""


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


def _level(bucket_min: int) -> int:
    """The coarsest rollup period that divides the bucket."""
    return max(level for level in LEVELS if bucket_min % level == 0)


def _minutes(f: LogFilter, level: int) -> tuple[list[str], list[Any]]:
    assert f.since is not None and f.until is not None
    first = int(f.since // 60)
    return ["level = ?", "minute >= ?", "minute < ?"], [
        level,
        first - first % level,
        -int(-f.until // 60),
    ]


def _rollup_filters(f: LogFilter, level: int) -> tuple[list[str], list[Any]]:
    """SQL conditions on ``rollup`` (or ``rollup_dim``) for what they keep of ``f``."""
    clauses, params = _minutes(f, level)
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


def _meta_filters(f: LogFilter, level: int) -> tuple[list[str], list[Any]]:
    clauses, params = _minutes(f, level)
    if f.workspace is not None:
        clauses.append("workspace = ?")
        params.append(f.workspace)
    return clauses, params


def _grouped(d: Dialect, f: LogFilter, key: str | None) -> tuple[str, list[Any], str, list[Any]]:
    """Statements that group the records matching ``f`` into per-minute ``rollup`` rows (and
    ``rollup_meta`` rows for metadata ``key``), in the database: one pass over the records."""
    clauses, params = record_filters(d, f)
    rollup = (
        f"SELECT 1, {d.minute}, {GROUPED_KIND}, {GROUPED_USAGE}, {GROUPED_HIST} "
        f"FROM {d.requests}{where(clauses)} GROUP BY 2, 3, 4, 5, 6, 7"
    )
    meta, meta_params = "", []
    if key is not None:
        value = f"CAST({d.meta} AS {d.text})"
        meta = (
            f"SELECT 1, {d.minute}, COALESCE(workspace, ''), CAST(? AS {d.text}), {value}, {GROUPED_USAGE} "
            f"FROM {d.requests}{where([*clauses, f'{d.meta} IS NOT NULL'])} GROUP BY 2, 3, 5"
        )
        meta_params = [key, d.meta_param(key), *params, d.meta_param(key)]
    return d.sql(rollup), params, d.sql(meta), meta_params


def read_records(
    conn: Any, d: Dialect, f: LogFilter, limit: int | None = 50
) -> list[dict[str, Any]]:
    """Records matching ``f``, newest first, all in one statement (``hookgate logs``)."""
    clauses, params = record_filters(d, f)
    sql = f"SELECT record FROM {d.requests}{where(clauses)} ORDER BY ts DESC, id DESC"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [orjson.loads(row[0]) for row in conn.execute(d.sql(sql), params)]


class LogReader:
    """Reads one store for the log query hooks, on threads of its own."""

    def __init__(self, store: ReadableStore, threads: int = 2) -> None:
        self.store = store
        self.dialect: Dialect = store.dialect
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="hookgate-logs-query")
        self._connections: list[Any] = []
        self._lock = threading.Lock()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self.store.reader_connection()
            if conn is None:
                return None  # nothing logged yet
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def _forget(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with self._lock:
                if conn in self._connections:
                    self._connections.remove(conn)
            with contextlib.suppress(Exception):  # a broken connection: nothing to close
                conn.close()

    def _work(self, work: Callable[[Any], T]) -> T:
        try:
            return work(self._conn())
        except BadRequestError:
            raise
        except Exception as exc:
            if isinstance(exc, sqlite3.Error) and self.dialect is SQLITE:
                raise
            self._forget()
            replaced = self.store.reader_failed(exc)
            if replaced is None:
                raise
            raise replaced from exc

    async def run(self, work: Callable[[Any], T]) -> T:
        import asyncio

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: self._work(work))

    # ---- pages ------------------------------------------------------------------------

    def page(self, conn: Any, query: LogQuery) -> LogPage:
        if conn is None:
            return LogPage([], None)
        d = self.dialect
        clauses, params = record_filters(d, query.filter)
        if query.cursor:
            ts, row_id = decode_cursor(query.cursor)
            clauses.append("(ts, id) < (?, ?)")
            params += [ts, row_id]
        limit = max(1, min(int(query.limit), MAX_LIMIT))
        # Ids first, then their records: a filter's index (and the sort, when it needs one)
        # carries only (ts, id), never the records' text.
        rows = conn.execute(
            d.sql(
                f"SELECT id, ts FROM {d.requests}{where(clauses)} ORDER BY ts DESC, id DESC LIMIT ?"
            ),
            [*params, limit + 1],
        ).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        texts: dict[int, str] = {}
        if rows:
            # The time range as well as the ids: PostgreSQL finds them on the (ts, id) index
            # of the day partitions they are in.
            texts = dict(
                conn.execute(
                    d.sql(
                        f"SELECT id, record FROM {d.requests} WHERE ts >= ? AND ts <= ? "
                        f"AND id IN ({', '.join('?' for _ in rows)})"
                    ),
                    [rows[-1][1], rows[0][1], *[row[0] for row in rows]],
                ).fetchall()
            )
        records = [orjson.loads(texts[row[0]]) for row in rows if row[0] in texts]
        cursor = encode_cursor(rows[-1][1], rows[-1][0]) if more else None
        return LogPage(records, cursor)

    # ---- aggregates ---------------------------------------------------------------------

    def aggregate(self, conn: Any, query: AggregateQuery) -> Aggregates:
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
        d = self.dialect
        level = _level(bucket_min)
        dim = dimension(f)
        key = query.metadata_key
        if dim == "rollup":
            _fill(
                out, conn, d, d.rollup, _rollup_filters(f, level), bucket_min, key,
                _meta_filters(f, level),
            )  # fmt: skip
            return out
        if not isinstance(dim, str) and key is None:
            clauses, params = _rollup_filters(f, level)
            _fill(
                out, conn, d, d.rollup_dim,
                (["dim = ?", "value = ?", *clauses], [dim[0], dim[1], *params]),
                bucket_min, None, ([], []),
            )  # fmt: skip
            return out
        # From the records: grouped per minute by the database, then added up the same way
        # in a table in memory.
        rollup_sql, rollup_params, meta_sql, meta_params = _grouped(d, f, key)
        scratch = sqlite3.connect(":memory:")
        try:
            scratch.executescript(SQLITE.rollup_schema())
            scratch.executemany(
                upsert(SQLITE, "rollup"), conn.execute(rollup_sql, rollup_params).fetchall()
            )
            if key is not None:
                scratch.executemany(
                    upsert(SQLITE, "rollup_meta"), conn.execute(meta_sql, meta_params).fetchall()
                )
            everything = LogFilter(since=f.since, until=f.until)
            _fill(
                out, scratch, SQLITE, SQLITE.rollup, _rollup_filters(everything, 1), bucket_min,
                key, _meta_filters(everything, 1),
            )  # fmt: skip
        finally:
            scratch.close()
        return out


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
    conn: Any,
    d: Dialect,
    table: str,
    rollup: tuple[list[str], list[Any]],
    bucket_min: int,
    metadata_key: str | None,
    meta: tuple[list[str], list[Any]],
) -> None:
    """Adds up rollup rows of ``table`` matching the filter into ``out``: three narrow queries
    (per bucket, per model, per kind of error), so the database does the adding and Python
    gets a few hundred rows, whatever the number of records."""
    clauses, params = rollup
    cond = " AND ".join(clauses) if clauses else "1 = 1"
    big = "CAST(SUM({}) AS BIGINT)".format
    hist = ", ".join(big(f"h{i}") for i in range(HIST))
    exact_sql = big("CASE WHEN cache_status = 'HIT' THEN n ELSE 0 END")
    semantic_sql = big("CASE WHEN cache_status = 'SEMANTIC HIT' THEN n ELSE 0 END")
    lookups_sql = big("CASE WHEN cache_status NOT IN ('', 'DISABLED') THEN n ELSE 0 END")
    series = conn.execute(
        d.sql(
            f"SELECT minute / {bucket_min} AS b, {big('n')}, "
            f"{big('CASE WHEN status >= 400 THEN n ELSE 0 END')}, "
            f"{exact_sql}, {semantic_sql}, {lookups_sql}, "
            f"{big('total_tokens')}, SUM(cost_usd), SUM(cost_saved_usd), {hist} "
            f"FROM {table} WHERE {cond} GROUP BY minute / {bucket_min} ORDER BY b"
        ),
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
        f"{big('n')}, {big('prompt_tokens')}, {big('completion_tokens')}, "
        f"{big('total_tokens')}, SUM(cost_usd), SUM(cost_saved_usd)"
    )
    out.by_model = [
        _usage("model", row[0] or "(none)", list(row[1:]))
        for row in conn.execute(
            d.sql(
                f"SELECT model, {usage} FROM {table} WHERE {cond} GROUP BY model "
                "ORDER BY SUM(n) DESC, model"
            ),
            params,
        )
    ]
    out.error_series = [
        {"t": b * bucket_min * 60, "error_type": e or f"HTTP {s}", "status": s, "n": n}
        for b, e, s, n in conn.execute(
            d.sql(
                f"SELECT minute / {bucket_min} AS b, error_type, status, {big('n')} "
                f"FROM {table} WHERE {cond} AND (status >= 400 OR error_type != '') "
                f"GROUP BY minute / {bucket_min}, error_type, status ORDER BY b, error_type, status"
            ),
            params,
        )
    ]
    if metadata_key is not None:
        mclauses, mparams = meta
        out.by_metadata = [
            _usage("value", row[0], list(row[1:]))
            for row in conn.execute(
                d.sql(
                    f"SELECT value, {usage} FROM {d.rollup_meta} "
                    f"WHERE key = ? AND {' AND '.join(mclauses)} GROUP BY value "
                    "ORDER BY SUM(n) DESC, value"
                ),
                [metadata_key, *mparams],
            )
        ]

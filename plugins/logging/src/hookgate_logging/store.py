"""The SQLite log store: one row per request, written in batches by the background writer.

Several gateway processes may write the same file at once: the database runs in WAL mode,
every connection waits on a lock (``busy_timeout``) instead of failing, and a batch is one
``BEGIN IMMEDIATE`` transaction, retried if the lock stayed busy for longer than that.
The full record is kept as JSON in ``record``; the columns that queries filter and aggregate
on are stored beside it.

Monitoring reads pre-aggregated rows, not the records: each batch also adds its records into
``rollup`` (per 1, 5, 15 and 60 minutes, and per workspace, model answered, cache status,
status and error type: counts, tokens, cost and a latency histogram) and ``rollup_meta`` (the
same periods, per metadata key and value), in the same transaction. A day of a million records
is then a few thousand rows to add up. :mod:`hookgate_logging.query` reads both for the log query hooks.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import orjson
from hookgate.logquery import LATENCY_EDGES_MS, latency_bucket

__all__ = ["COLUMNS", "LogStore"]

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
)
# Columns added after the first release (SQLite only): an older file gets them with ALTER TABLE.
_ADDED = {"config_id": "TEXT", "config_version": "INTEGER", "workspace": "TEXT"}
_SQLITE_COLUMNS = (*COLUMNS, *_ADDED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    trace_id TEXT,
    endpoint TEXT,
    provider TEXT,
    model TEXT,
    model_answered TEXT,
    target TEXT,
    status INTEGER,
    stream INTEGER,
    cache_status TEXT,
    cache_similarity REAL,
    latency_ms REAL,
    upstream_ms REAL,
    ttft_ms REAL,
    attempts INTEGER,
    retries INTEGER,
    fallbacks INTEGER,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    total_tokens INTEGER,
    usage_source TEXT,
    cost_usd REAL,
    cost_saved_usd REAL,
    error_type TEXT,
    error_code TEXT,
    metadata TEXT,
    record TEXT NOT NULL
);
"""
_INDEXES = """
CREATE INDEX IF NOT EXISTS requests_ts ON requests (ts);
CREATE INDEX IF NOT EXISTS requests_trace_id ON requests (trace_id);
CREATE INDEX IF NOT EXISTS requests_model_ts ON requests (model, ts);
CREATE INDEX IF NOT EXISTS requests_workspace_ts ON requests (workspace, ts);
CREATE INDEX IF NOT EXISTS requests_config_ts ON requests (config_id, ts);
CREATE INDEX IF NOT EXISTS requests_status_ts ON requests (status, ts);
"""
HIST = len(LATENCY_EDGES_MS) + 1
_HIST_COLUMNS = [f"h{i}" for i in range(HIST)]
LEVELS = (1, 5, 15, 60)
"""Rollup granularities in minutes: a query reads the coarsest that divides its bucket."""
ROLLUP_KEYS = ("level", "minute", "workspace", "model", "cache_status", "status", "error_type")
ROLLUP_SUMS = (
    "n",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cost_usd",
    "cost_saved_usd",
    *_HIST_COLUMNS,
)
META_KEYS = ("level", "minute", "workspace", "key", "value")
META_SUMS = (
    "n",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cost_usd",
    "cost_saved_usd",
)
_ROLLUP_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS rollup (
    level INTEGER NOT NULL, minute INTEGER NOT NULL,
    workspace TEXT NOT NULL, model TEXT NOT NULL, cache_status TEXT NOT NULL,
    status INTEGER NOT NULL, error_type TEXT NOT NULL,
    n INTEGER NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
    total_tokens INTEGER NOT NULL, cost_usd REAL NOT NULL, cost_saved_usd REAL NOT NULL,
    {", ".join(f"{c} INTEGER NOT NULL" for c in _HIST_COLUMNS)},
    PRIMARY KEY ({", ".join(ROLLUP_KEYS)})
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup_meta (
    level INTEGER NOT NULL, minute INTEGER NOT NULL, workspace TEXT NOT NULL,
    key TEXT NOT NULL, value TEXT NOT NULL,
    n INTEGER NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
    total_tokens INTEGER NOT NULL, cost_usd REAL NOT NULL, cost_saved_usd REAL NOT NULL,
    PRIMARY KEY (key, level, minute, workspace, value)
) WITHOUT ROWID;
"""


def _upsert(table: str, keys: tuple[str, ...], sums: tuple[str, ...]) -> str:
    columns = (*keys, *sums)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)}) "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET "
        + ", ".join(f"{c} = {c} + excluded.{c}" for c in sums)
    )


_ROLLUP_UPSERT = _upsert("rollup", ROLLUP_KEYS, ROLLUP_SUMS)
_META_UPSERT = _upsert("rollup_meta", META_KEYS, META_SUMS)
_META_VALUE_CHARS = 200
_INSERT = (
    f"INSERT INTO requests ({', '.join(_SQLITE_COLUMNS)}, metadata, record) "
    f"VALUES ({', '.join('?' for _ in _SQLITE_COLUMNS)}, ?, ?)"
)
_LOCK_RETRIES = 20


def _row(record: dict[str, Any], text: str) -> tuple[Any, ...]:
    values: list[Any] = []
    for column in _SQLITE_COLUMNS:
        value = record.get(column)
        if column == "attempts":
            value = len(value or ())
        elif column == "stream":
            value = int(bool(value))
        values.append(value)
    values.append(orjson.dumps(record.get("metadata") or {}).decode())
    values.append(text)
    return tuple(values)


def _num(value: Any) -> float:
    kind = type(value)
    return value if kind is int or kind is float else 0


def rollups(
    records: Sequence[dict[str, Any]],
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """What ``records`` add to ``rollup`` and ``rollup_meta``, summed per key and level.

    Runs on the writer's thread for every batch, so it is kept lean: each record is added
    once, into its minute; the coarser periods are then added up from the minutes.
    """
    width = 6 + HIST
    sums: dict[tuple[Any, ...], list[Any]] = {}
    meta: dict[tuple[Any, ...], list[Any]] = {}
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
        row = sums.get(key)
        if row is None:
            row = sums[key] = [0] * width
        row[0] += 1
        prompt, completion, total = (
            get("prompt_tokens"),
            get("completion_tokens"),
            get("total_tokens"),
        )
        cost, saved = get("cost_usd"), get("cost_saved_usd")
        if prompt is not None:
            row[1] += _num(prompt)
        if completion is not None:
            row[2] += _num(completion)
        if total is not None:
            row[3] += _num(total)
        if cost is not None:
            row[4] += _num(cost)
        if saved is not None:
            row[5] += _num(saved)
        bucket = latency_bucket(get("latency_ms"))
        if bucket is not None:
            row[6 + bucket] += 1
        metadata = get("metadata")
        if metadata:
            adds = (1, _num(prompt), _num(completion), _num(total), _num(cost), _num(saved))
            for name, value in metadata.items():
                mkey = (
                    key[0],
                    workspace,
                    str(name)[:_META_VALUE_CHARS],
                    str(value)[:_META_VALUE_CHARS],
                )
                mrow = meta.get(mkey)
                if mrow is None:
                    meta[mkey] = list(adds)
                else:
                    mrow[0] += 1
                    mrow[1] += adds[1]
                    mrow[2] += adds[2]
                    mrow[3] += adds[3]
                    mrow[4] += adds[4]
                    mrow[5] += adds[5]
    return _levels(sums), _levels(meta)


def _levels(minutes: dict[tuple[Any, ...], list[Any]]) -> list[tuple[Any, ...]]:
    """Rows for every level from per-minute sums keyed ``(minute, *rest)``."""
    out = [(1, *key, *values) for key, values in minutes.items()]
    for level in LEVELS[1:]:
        coarse: dict[tuple[Any, ...], list[Any]] = {}
        for key, values in minutes.items():
            ckey = (key[0] - key[0] % level, *key[1:])
            found = coarse.get(ckey)
            if found is None:
                coarse[ckey] = list(values)
            else:
                for i, value in enumerate(values):
                    found[i] += value
        out.extend((level, *key, *values) for key, values in coarse.items())
    return out


class LogStore:
    """A SQLite file of request records."""

    def __init__(self, path: str | Path, busy_timeout: float = 10.0) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout

    def connect(self, *, create: bool = True) -> sqlite3.Connection:
        """A connection with WAL and a busy timeout; creates the schema when asked."""
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif not self.path.exists():
            raise FileNotFoundError(f"no log store at {self.path}")
        conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            if create:
                self._locked(lambda: conn.execute("PRAGMA journal_mode = WAL"))
                self._locked(lambda: self._migrate(conn))
            conn.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        conn.executescript(_SCHEMA)
        have = {row[1] for row in conn.execute("PRAGMA table_info(requests)")}
        missing = [(c, t) for c, t in _ADDED.items() if c not in have]
        has_rollup = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'rollup'"
        ).fetchone()
        if not missing and has_rollup:
            conn.executescript(_INDEXES)  # no-ops when present: cheap
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            have = {row[1] for row in conn.execute("PRAGMA table_info(requests)")}
            for column, kind in _ADDED.items():
                if column not in have:
                    conn.execute(f"ALTER TABLE requests ADD COLUMN {column} {kind}")
            for statement in (_INDEXES + _ROLLUP_SCHEMA).split(";"):
                if statement.strip():
                    conn.execute(statement)
            if not has_rollup:  # a file from before the rollups: add up what it holds
                cursor = conn.execute("SELECT record FROM requests ORDER BY id")
                while batch := cursor.fetchmany(5000):
                    sums, meta = rollups([orjson.loads(row[0]) for row in batch])
                    conn.executemany(_ROLLUP_UPSERT, sums)
                    conn.executemany(_META_UPSERT, meta)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @staticmethod
    def _locked(action: Any) -> Any:
        # A second process creating the schema at the same moment can hold the lock for
        # longer than the busy handler waits on some file systems: try again.
        for attempt in range(_LOCK_RETRIES):
            try:
                return action()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if attempt == _LOCK_RETRIES - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))
        return None

    def write(
        self, conn: sqlite3.Connection, records: Sequence[tuple[dict[str, Any], str]]
    ) -> None:
        """Insert ``records`` (each a record and its JSON text) in one transaction."""
        rows = [_row(record, text) for record, text in records]
        sums, meta = rollups([record for record, _ in records])

        def insert() -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(_INSERT, rows)
                conn.executemany(_ROLLUP_UPSERT, sums)
                conn.executemany(_META_UPSERT, meta)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

        self._locked(insert)

    def delete_older_than(self, conn: sqlite3.Connection, days: float) -> int:
        """Retention: drop records older than ``days``; returns how many went."""
        cutoff = time.time() - days * 86400
        minute = int(cutoff // 60)

        def delete() -> int:
            conn.execute("BEGIN IMMEDIATE")
            try:
                gone = conn.execute("DELETE FROM requests WHERE ts < ?", (cutoff,)).rowcount
                conn.execute("DELETE FROM rollup WHERE minute < ?", (minute,))
                conn.execute("DELETE FROM rollup_meta WHERE minute < ?", (minute,))
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return gone

        return self._locked(delete) or 0

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        with closing(self.connect(create=False)) as conn:
            yield conn

    def query(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        model: str | None = None,
        status: int | None = None,
        trace_id: str | None = None,
        limit: int | None = 50,
    ) -> list[dict[str, Any]]:
        """Records, newest first, matching every filter given."""
        where, params = _filters(since, until, model, status, trace_id)
        sql = f"SELECT record FROM requests{where} ORDER BY ts DESC, id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self.reading() as conn:
            return [orjson.loads(row[0]) for row in conn.execute(sql, params)]


def _filters(
    since: float | None,
    until: float | None,
    model: str | None = None,
    status: int | None = None,
    trace_id: str | None = None,
) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if since is not None:
        clauses.append("ts >= ?")
        params.append(since)
    if until is not None:
        clauses.append("ts < ?")
        params.append(until)
    if model is not None:
        clauses.append("(model = ? OR model_answered = ?)")
        params += [model, model]
    if status is not None:
        clauses.append("status = ?")
        params.append(status)
    if trace_id is not None:
        clauses.append("trace_id = ?")
        params.append(trace_id)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params

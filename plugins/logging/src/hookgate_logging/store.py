"""The SQLite log store: one row per request, written in batches by the background writer.

Several gateway processes may write the same file at once: the database runs in WAL mode,
every connection waits on a lock (``busy_timeout``) instead of failing, and a batch is one
``BEGIN IMMEDIATE`` transaction, retried if the lock stayed busy for longer than that.
The full record is kept as JSON in ``record``; the columns that queries filter and aggregate
on are stored beside it.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import orjson

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
CREATE INDEX IF NOT EXISTS requests_ts ON requests (ts);
CREATE INDEX IF NOT EXISTS requests_trace_id ON requests (trace_id);
CREATE INDEX IF NOT EXISTS requests_model_ts ON requests (model, ts);
"""
_INSERT = (
    f"INSERT INTO requests ({', '.join(COLUMNS)}, metadata, record) "
    f"VALUES ({', '.join('?' for _ in COLUMNS)}, ?, ?)"
)
_LOCK_RETRIES = 20


def _row(record: dict[str, Any], text: str) -> tuple[Any, ...]:
    values: list[Any] = []
    for column in COLUMNS:
        value = record.get(column)
        if column == "attempts":
            value = len(value or ())
        elif column == "stream":
            value = int(bool(value))
        values.append(value)
    values.append(orjson.dumps(record.get("metadata") or {}).decode())
    values.append(text)
    return tuple(values)


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
                self._locked(lambda: conn.executescript(_SCHEMA))
            conn.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            conn.close()
            raise
        return conn

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

        def insert() -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(_INSERT, rows)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

        self._locked(insert)

    def delete_older_than(self, conn: sqlite3.Connection, days: float) -> int:
        """Retention: drop records older than ``days``; returns how many went."""
        cutoff = time.time() - days * 86400
        cursor = self._locked(lambda: conn.execute("DELETE FROM requests WHERE ts < ?", (cutoff,)))
        return cursor.rowcount if cursor is not None else 0

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

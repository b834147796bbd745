"""The SQLite log store: one row per request, written in batches by the background writer.

Several gateway processes may write the same file at once: the database runs in WAL mode,
every connection waits on a lock (``busy_timeout``) instead of failing, and a batch is one
``BEGIN IMMEDIATE`` transaction, retried if the lock stayed busy for longer than that.
The full record is kept as JSON in ``record``; the columns that queries filter and aggregate
on are stored beside it.

Monitoring reads pre-aggregated rows, not the records: each batch also adds its records into
the rollup tables (``rollup``, ``rollup_meta``, ``rollup_dim``: see :mod:`.sql`) in the same
transaction. A day of a million records is then a few thousand rows to add up.
:mod:`hookgate_logging.query` reads them for the log query hooks.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from .sql import COLUMNS, SQLITE, backfill, record_row, rollups, upsert

__all__ = ["COLUMNS", "LogStore", "rollups"]

# Columns added after the first release: an older file gets them with ALTER TABLE.
_ADDED = {"config_id": "TEXT", "config_version": "INTEGER", "workspace": "TEXT"}

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
# The failed requests (a few percent) get an index of their own that holds every column a
# logs filter names beside them, newest first: "5xx for this model" walks only failures and
# never opens a row it will not show. (It replaces an index on (status, ts), which made the
# planner read every 5xx row, then sort them.)
_INDEXES = """
CREATE INDEX IF NOT EXISTS requests_ts ON requests (ts);
CREATE INDEX IF NOT EXISTS requests_trace_id ON requests (trace_id);
CREATE INDEX IF NOT EXISTS requests_model_ts ON requests (model, ts);
CREATE INDEX IF NOT EXISTS requests_workspace_ts ON requests (workspace, ts);
CREATE INDEX IF NOT EXISTS requests_config_ts ON requests (config_id, ts);
DROP INDEX IF EXISTS requests_status_ts;
CREATE INDEX IF NOT EXISTS requests_failed ON requests (
    ts, id, status, model, model_answered, provider, cache_status, workspace, config_id,
    config_version, error_type
) WHERE status >= 400;
"""
_ROLLUP_TABLES = ("rollup", "rollup_meta", "rollup_dim")
_INSERT = (
    f"INSERT INTO requests ({', '.join(COLUMNS)}, metadata, record) "
    f"VALUES ({', '.join('?' for _ in COLUMNS)}, ?, ?)"
)
_UPSERTS = tuple(upsert(SQLITE, name) for name in _ROLLUP_TABLES)
_LOCK_RETRIES = 20


class LogStore:
    """A SQLite file of request records."""

    dialect = SQLITE

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

        def state() -> tuple[list[tuple[str, str]], list[str]]:
            have = {row[1] for row in conn.execute("PRAGMA table_info(requests)")}
            tables = {
                row[0]
                for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            return (
                [(c, t) for c, t in _ADDED.items() if c not in have],
                [t for t in _ROLLUP_TABLES if t not in tables],
            )

        missing, absent = state()
        if not missing and not absent:
            conn.executescript(_INDEXES)  # no-ops when present: cheap
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            missing, absent = state()
            for column, kind in missing:
                conn.execute(f"ALTER TABLE requests ADD COLUMN {column} {kind}")
            for statement in (_INDEXES + SQLITE.rollup_schema()).split(";"):
                if statement.strip():
                    conn.execute(statement)
            for statement in backfill(SQLITE, absent):  # a file from before these rollups
                conn.execute(statement)
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
        rows = [record_row(record, text, stream_as_bool=False) for record, text in records]
        sums = rollups([record for record, _ in records])

        def insert() -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(_INSERT, rows)
                for sql, values in zip(_UPSERTS, sums, strict=True):
                    conn.executemany(sql, values)
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
                for table in _ROLLUP_TABLES:
                    conn.execute(f"DELETE FROM {table} WHERE minute < ?", (minute,))
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return gone

        return self._locked(delete) or 0

    # ---- reading ------------------------------------------------------------------------

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        with closing(self.connect(create=False)) as conn:
            yield conn

    def reader_connection(self) -> sqlite3.Connection | None:
        """A read-only connection for a query thread; None while no file exists."""
        if not self.path.exists():
            return None  # nothing logged yet
        conn = self.connect(create=True)
        conn.execute("PRAGMA query_only = 1")
        return conn

    def reader_failed(self, exc: Exception) -> Exception | None:
        return None

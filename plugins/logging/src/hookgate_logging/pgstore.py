"""The PostgreSQL log store: every instance's records in one database.

``store = { url = "postgresql://..." }`` in ``[plugins.logging]``. The request path never waits
for the database, and neither does the writer's thread (which also writes the log lines):

* The writer's thread hands each batch to :meth:`PostgresLogStore.write`, which only appends it
  to a bounded in-memory backlog (``backlog`` records; past that the oldest are dropped, counted
  in ``hookgate_log_store_dropped_total`` and logged).
* The store's own thread takes up to ``batch_size`` records at a time and sends them with one
  ``COPY`` in one transaction, at once when they arrive (well within a second). When the
  database is down or refuses, the batch goes back to the front of the backlog, the failure is
  counted (``hookgate_log_store_errors_total``) and logged once per outage, and the thread
  retries with a growing pause (up to ``retry_max_s``); the backlog drains when it returns. A
  stalled database stalls only this thread.

Records live in ``hookgate_requests``, partitioned by day on ``ts`` (epoch seconds):
retention detaches and drops whole day partitions (``DETACH ... CONCURRENTLY``: no long lock on
the table the instances insert into), and deletes the rows older than the cutoff only in the
oldest day left. The schema is created on first use behind an advisory lock, since several
instances may start at once; day partitions are created the same way, one day ahead.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import structlog

from .sql import (
    COLUMNS,
    DIM_KEYS,
    META_KEYS,
    META_SUMS,
    POSTGRES,
    ROLLUP_KEYS,
    ROLLUP_SUMS,
    backfill,
    record_row,
    rollups,
)

__all__ = ["TABLE", "PostgresLogStore", "is_postgres_url", "register_url_secrets"]

log = structlog.get_logger("hookgate.logging")

TABLE = "hookgate_requests"
_DAY = 86400
# pg_advisory_xact_lock keys: schema migrations and partition DDL; retention.
_DDL_LOCK = 0x686F6F6B_0001
_RETENTION_LOCK = 0x686F6F6B_0002

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    id bigserial,
    ts double precision NOT NULL,
    trace_id text,
    endpoint text,
    provider text,
    model text,
    model_answered text,
    target text,
    status integer,
    stream boolean,
    cache_status text,
    cache_similarity double precision,
    latency_ms double precision,
    upstream_ms double precision,
    ttft_ms double precision,
    attempts integer,
    retries integer,
    fallbacks integer,
    prompt_tokens bigint,
    completion_tokens bigint,
    total_tokens bigint,
    usage_source text,
    cost_usd double precision,
    cost_saved_usd double precision,
    error_type text,
    error_code text,
    metadata jsonb,
    record text NOT NULL
) PARTITION BY RANGE (ts);
ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS config_id text;
ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS config_version integer;
ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS workspace text;
CREATE INDEX IF NOT EXISTS {TABLE}_ts_id ON {TABLE} (ts, id);
CREATE INDEX IF NOT EXISTS {TABLE}_trace_id ON {TABLE} (trace_id);
CREATE INDEX IF NOT EXISTS {TABLE}_model_ts ON {TABLE} (model, ts);
CREATE INDEX IF NOT EXISTS {TABLE}_status_ts ON {TABLE} (status, ts);
CREATE INDEX IF NOT EXISTS {TABLE}_provider_ts ON {TABLE} (provider, ts);
CREATE INDEX IF NOT EXISTS {TABLE}_workspace_ts ON {TABLE} (workspace, ts);
CREATE INDEX IF NOT EXISTS {TABLE}_config_ts ON {TABLE} (config_id, ts);
CREATE INDEX IF NOT EXISTS {TABLE}_failed ON {TABLE} (
    ts, id, status, model, model_answered, provider, cache_status, workspace, config_id,
    config_version, error_type
) WHERE status >= 400;
"""
_ROLLUP_TABLES = ("rollup", "rollup_meta", "rollup_dim")
_ROLLUP_KEYS = (ROLLUP_KEYS, META_KEYS, DIM_KEYS)
_ROLLUP_COLUMNS = (
    (*ROLLUP_KEYS, *ROLLUP_SUMS),
    (*META_KEYS, *META_SUMS),
    (*DIM_KEYS, *ROLLUP_SUMS),
)
_COPY = f"COPY {TABLE} ({', '.join(COLUMNS)}, metadata, record) FROM STDIN"


def is_postgres_url(url: str | None) -> bool:
    return bool(url) and str(url).startswith(("postgresql://", "postgres://"))


def register_url_secrets(url: str) -> None:
    """Redact the URL and its password wherever they might appear (errors, logs)."""
    from urllib.parse import unquote, urlsplit

    from hookgate.log import register_secret

    register_secret(url)
    password = urlsplit(url).password
    if password:
        register_secret(password)
        register_secret(unquote(password))


def _partition(day: int) -> str:
    return f"{TABLE}_{datetime.fromtimestamp(day, UTC):%Y%m%d}"


def connect(url: str, connect_timeout: float = 5.0, **kwargs: Any) -> Any:
    """A psycopg connection in autocommit mode, with keepalives so a vanished server is noticed."""
    import psycopg

    return psycopg.connect(
        url,
        autocommit=True,
        connect_timeout=max(1, math.ceil(connect_timeout)),
        application_name="hookgate-logging",
        keepalives=1,
        keepalives_idle=10,
        keepalives_interval=5,
        keepalives_count=3,
        **kwargs,
    )


def migrate(conn: Any) -> None:
    """Create the table and its indexes, and today's and tomorrow's partitions (idempotent;
    serialised between instances by an advisory lock)."""
    if not _current(conn):
        _create(conn)
    today = int(time.time() // _DAY) * _DAY
    ensure_partitions(conn, {today, today + _DAY})


def _current(conn: Any) -> bool:
    """Whether the schema is already this version's (checked without a lock: ALTER TABLE
    would wait for, and hold up, every writer)."""
    row = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL",
        (f"{TABLE}_failed", POSTGRES.rollup_dim),
    ).fetchone()
    return bool(row and row[0])


def _create(conn: Any) -> None:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
        absent = [
            name
            for name in _ROLLUP_TABLES
            if conn.execute("SELECT to_regclass(%s)", (POSTGRES.table(name),)).fetchone()[0] is None
        ]
        conn.execute(_SCHEMA)
        conn.execute(POSTGRES.rollup_schema())
        for statement in backfill(POSTGRES, absent):  # a database from before these rollups
            conn.execute(statement)


def _add_rollups(conn: Any, records: list[dict[str, Any]]) -> None:
    """Add ``records`` into the rollup tables: per table, the batch's sums are copied into a
    temporary table and added with one ``INSERT ... SELECT ... ON CONFLICT`` in key order (one
    statement instead of a round trip per row, and instances writing at once lock the rows
    they share in the same order, so they wait for each other but never deadlock). Call it
    inside a transaction."""
    sums = rollups(records)
    with conn.cursor() as cur:
        for i in range(len(_ROLLUP_TABLES)):
            if not sums[i]:
                continue
            name = _ROLLUP_TABLES[i]
            table, scratch = POSTGRES.table(name), f"hookgate_batch_{name}"
            keys = _ROLLUP_KEYS[i]
            cur.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {scratch} (LIKE {table}) ON COMMIT DELETE ROWS"
            )
            with cur.copy(f"COPY {scratch} FROM STDIN") as copy:
                for row in sums[i]:
                    copy.write_row(row)
            columns = [c for c in _ROLLUP_COLUMNS[i] if c not in keys]
            cur.execute(
                f"INSERT INTO {table} SELECT * FROM {scratch} ORDER BY {', '.join(keys)} "
                f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET "
                + ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in columns)
            )


def ensure_partitions(conn: Any, days: set[int]) -> None:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
        for day in sorted(days):
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {_partition(day)} PARTITION OF {TABLE} "
                f"FOR VALUES FROM ({day}) TO ({day + _DAY})"
            )


class PostgresLogStore:
    """Request records in PostgreSQL, written by a thread of its own from a bounded backlog."""

    dialect = POSTGRES

    has_own_thread = True
    """The writer waits for :meth:`flush` and calls :meth:`close` at the end."""

    def __init__(
        self,
        url: str,
        *,
        batch_size: int = 1000,
        backlog: int = 100_000,
        connect_timeout: float = 5.0,
        retry_max_s: float = 5.0,
        on_error: Callable[[], None] | None = None,
        on_dropped: Callable[[int], None] | None = None,
    ) -> None:
        self.url = url
        self.batch_size = batch_size
        self.backlog = backlog
        self.connect_timeout = connect_timeout
        self.retry_max_s = retry_max_s
        self.on_error = on_error
        self.on_dropped = on_dropped
        self.written = 0
        self.dropped = 0
        self.errors = 0
        self._pending: deque[tuple[dict[str, Any], str]] = deque()
        self._inflight = 0
        self._retention_days: float | None = None
        self._cond = threading.Condition()
        self._stopping = False
        self._stop_by = math.inf
        self._thread: threading.Thread | None = None
        self._conn: Any = None
        self._days: set[int] = set()
        self._failing = False

    # ---- the writer's interface (see writer.Writer._store) -------------------------------

    def connect(self) -> None:
        """Start the store's thread (the writer calls this before its first write)."""
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="hookgate-logging-pg", daemon=True
                )
                self._thread.start()

    def write(self, conn: Any, records: Sequence[tuple[dict[str, Any], str]]) -> None:
        """Queue ``records`` for the database; never blocks on it."""
        self.connect()
        with self._cond:
            self._pending.extend(records)
            self._trim()
            self._cond.notify()

    def delete_older_than(self, conn: Any, days: float) -> int:
        """Ask the store's thread to apply retention (it does, between batches)."""
        self.connect()
        with self._cond:
            self._retention_days = days
            self._cond.notify()
        return 0

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is in the database."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending or self._inflight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (for up to ``timeout`` s), then stop; what is left is counted."""
        with self._cond:
            thread = self._thread
            self._stopping = True
            self._stop_by = time.monotonic() + timeout
            self._cond.notify_all()
        if thread is not None:
            thread.join(timeout + 1)
        with self._cond:
            left = len(self._pending) + self._inflight
            self._pending.clear()
        if left:
            self._drop(left, "shutdown")
        if thread is None or not thread.is_alive():
            self._disconnect()  # else the thread still uses it (a stalled database)

    def _trim(self) -> None:
        excess = len(self._pending) - self.backlog
        if excess > 0:
            for _ in range(excess):
                self._pending.popleft()
            self._drop(excess, "backlog full")

    def _drop(self, n: int, why: str) -> None:
        first = self.dropped == 0
        self.dropped += n
        if self.on_dropped is not None:
            self.on_dropped(n)
        if first or self.dropped // 10_000 != (self.dropped - n) // 10_000:
            log.warning(
                "log_store_records_dropped", store="postgresql", why=why, dropped=self.dropped
            )

    # ---- the store's thread ---------------------------------------------------------------

    def _run(self) -> None:
        pause = 0.1
        while True:
            with self._cond:
                while not self._pending and self._retention_days is None and not self._stopping:
                    self._cond.wait()
                if self._stopping and not self._pending:
                    return
                batch = [
                    self._pending.popleft() for _ in range(min(self.batch_size, len(self._pending)))
                ]
                self._inflight = len(batch)
                retention, self._retention_days = self._retention_days, None
            try:
                if batch:
                    # After a failure the last attempt may have committed even so (the
                    # connection died before the answer came back): records already in the
                    # database are skipped, so nothing is written twice.
                    if self._failing:
                        batch = self._not_written(batch)
                    if batch:
                        self._copy(batch)
                if retention is not None:
                    self._retention(retention)
            except Exception as exc:
                self._failed(exc)
                with self._cond:
                    self._pending.extendleft(reversed(batch))
                    self._inflight = 0
                    self._trim()
                    if retention is not None and self._retention_days is None:
                        self._retention_days = retention
                    self._cond.notify_all()
                    if self._stopping and time.monotonic() >= self._stop_by:
                        self._inflight = 0
                        return  # close() counts what is left
                    self._cond.wait(min(pause, max(0.0, self._stop_by - time.monotonic())))
                pause = min(pause * 2, self.retry_max_s)
                continue
            pause = 0.1
            if self._failing:
                self._failing = False
                log.warning("log_store_recovered", store="postgresql", backlog=len(self._pending))
            with self._cond:
                self.written += len(batch)
                self._inflight = 0
                self._cond.notify_all()

    def _failed(self, exc: BaseException) -> None:
        self.errors += 1
        if self.on_error is not None:
            self.on_error()
        self._disconnect()
        if not self._failing:
            self._failing = True
            log.warning(
                "log_store_unavailable",
                store="postgresql",
                error=f"{type(exc).__name__}: {exc}".strip(),
                backlog=len(self._pending) + self._inflight,
                note="records are kept (bounded) and written when it returns",
            )

    def _connection(self) -> Any:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.url, self.connect_timeout)
            migrate(self._conn)
            self._days.clear()
        return self._conn

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception as exc:  # closing a broken connection: nothing left to do
                log.debug("log_store_close_failed", error=str(exc))

    def _copy(self, batch: list[tuple[dict[str, Any], str]]) -> None:
        conn = self._connection()
        days = {int(record["ts"] // _DAY) * _DAY for record, _ in batch}
        if missing := days - self._days:
            ensure_partitions(conn, missing | {max(missing) + _DAY})
            self._days |= missing
        # The rollups in the same transaction: they count exactly the records that are in.
        with conn.transaction():
            with conn.cursor() as cur, cur.copy(_COPY) as copy:
                for record, text in batch:
                    copy.write_row(record_row(record, text, stream_as_bool=True))
            _add_rollups(conn, [record for record, _ in batch])

    def _not_written(
        self, records: Sequence[tuple[dict[str, Any], str]]
    ) -> list[tuple[dict[str, Any], str]]:
        """``records`` less those whose trace id and time are already in the database."""
        if not records:
            return []
        conn = self._connection()
        traces = [record.get("trace_id") for record, _ in records]
        times = [float(record["ts"]) for record, _ in records]
        present = {
            (trace, ts)
            for trace, ts in conn.execute(
                f"SELECT trace_id, ts FROM {TABLE} WHERE trace_id = ANY(%s) "
                "AND ts BETWEEN %s AND %s",
                (traces, min(times), max(times)),
            )
        }
        return [(r, t) for r, t in records if (r.get("trace_id"), r.get("ts")) not in present]

    def write_now(self, records: Sequence[tuple[dict[str, Any], str]]) -> int:
        """Insert ``records`` now, on this thread, skipping any whose trace id and time are
        already there (``hookgate logs-copy``); returns how many were inserted."""
        fresh = self._not_written(records)
        if fresh:
            self._copy(fresh)
        return len(fresh)

    def _retention(self, days: float) -> None:
        if days <= 0:
            return
        conn = self._connection()
        cutoff = time.time() - days * _DAY
        got = conn.execute("SELECT pg_try_advisory_lock(%s)", (_RETENTION_LOCK,)).fetchone()
        if not got or not got[0]:
            return  # another instance is at it
        try:
            for name, upper in self._partitions(conn):
                if upper <= cutoff:
                    conn.execute(f"ALTER TABLE {TABLE} DETACH PARTITION {name} CONCURRENTLY")
                    conn.execute(f"DROP TABLE {name}")
                    self._days.discard(int(upper) - _DAY)
            conn.execute(f"DELETE FROM {TABLE} WHERE ts < %s", (cutoff,))
            for name in _ROLLUP_TABLES:
                conn.execute(
                    f"DELETE FROM {POSTGRES.table(name)} WHERE minute < %s", (int(cutoff // 60),)
                )
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_RETENTION_LOCK,))

    @staticmethod
    def _partitions(conn: Any) -> list[tuple[str, float]]:
        """Day partitions (name, upper bound), oldest first."""
        rows = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = %s",
            (TABLE,),
        ).fetchall()
        out = []
        for (name,) in rows:
            suffix = name.removeprefix(f"{TABLE}_")
            try:
                day = datetime.strptime(suffix, "%Y%m%d").replace(tzinfo=UTC).timestamp()
            except ValueError:
                continue
            out.append((name, day + _DAY))
        return sorted(out, key=lambda item: item[1])

    # ---- reading (the log query hooks, hookgate logs / stats) -------------------------------

    @contextmanager
    def reading(self) -> Iterator[Any]:
        conn = connect(self.url, self.connect_timeout)
        try:
            migrate(conn)
            yield conn
        finally:
            conn.close()

    def reader_connection(self) -> Any:
        """A connection for a query thread: a statement may run for 30 s at most, so a
        console page never waits on a wedged database for longer."""
        conn = connect(self.url, self.connect_timeout, options="-c statement_timeout=30000")
        try:
            migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def reader_failed(self, exc: Exception) -> Exception | None:
        """A database that cannot answer (down, unreachable, the statement timed out) as a 503
        naming the store (the URL and password redacted); anything else as it is."""
        import psycopg

        if not isinstance(exc, psycopg.OperationalError):
            return None
        from hookgate.errors import UnavailableError
        from hookgate.log import redact

        log.warning("log_store_query_failed", store="postgresql", error=redact(str(exc)).strip())
        return UnavailableError(
            f"the PostgreSQL log store cannot be read: {redact(str(exc)).strip()}"
        )

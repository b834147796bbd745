"""The control plane's store on PostgreSQL: every instance of a deployment shares one.

``store = { url = "postgresql://..." }`` in ``[plugins.control]``. The schema and the SQL are
:class:`~hookgate_control.store.SQLStore`'s; this class adds psycopg's connections and what
PostgreSQL spells differently (``%s`` placeholders, ``DOUBLE PRECISION``, ``BYTEA``,
``BIGSERIAL``).

Every write transaction first takes one transaction-level advisory lock, which serialises the
writers of every instance as SQLite's ``BEGIN IMMEDIATE`` does for one file: generations
commit in order (so a poll never skips one), a config's base-version check and its update
see no interleaved writer, and the first instances to start against an empty database create
the schema exactly once. Reads run in ``REPEATABLE READ``, so a change feed is one consistent
view.

Connections are kept in a small pool (the poll every ``poll_interval`` and the admin API reuse
them); one that failed is closed rather than returned, so the next call reconnects.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from .store import SQLStore, StoreUnavailable, Tx

__all__ = [
    "WRITE_LOCK",
    "CopyRefused",
    "PostgresStore",
    "copy_store",
    "is_postgres_url",
    "redacted",
    "register_url_secrets",
]

# pg_advisory_xact_lock key of the control plane's writers ("hook" + 0x0c01); the log store
# uses 0x686F6F6B_0001 and _0002.
WRITE_LOCK = 0x686F6F6B_0C01

_TYPES = [
    (re.compile(r"\bINTEGER PRIMARY KEY AUTOINCREMENT\b"), "BIGSERIAL PRIMARY KEY"),
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
    (re.compile(r"\bBLOB\b"), "BYTEA"),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
]


def is_postgres_url(url: str | None) -> bool:
    return bool(url) and str(url).startswith(("postgresql://", "postgres://"))


def register_url_secrets(url: str) -> None:
    """Have hookgate's log processor mask the URL and its password wherever they appear."""
    from urllib.parse import unquote, urlsplit

    from hookgate.log import register_secret

    register_secret(url)
    if password := urlsplit(url).password:
        register_secret(password)
        register_secret(unquote(password))


def redacted(url: str) -> str:
    """``url`` without its password, for messages."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=user + host))


def _ddl(statement: str) -> str:
    for pattern, replacement in _TYPES:
        statement = pattern.sub(replacement, statement)
    return statement


class PostgresStore(SQLStore):
    """The control plane in a PostgreSQL database (see the module docstring)."""

    shared = True
    """Every instance pointed at the URL sees the same store."""

    def __init__(self, url: str, connect_timeout: float = 5.0, pool_size: int = 4) -> None:
        self.url = url
        self.connect_timeout = connect_timeout
        self.pool_size = pool_size
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"PostgresStore({redacted(self.url)!r})"

    # ---- connections --------------------------------------------------------------------

    def _connect(self) -> Any:
        import psycopg

        try:
            return psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=max(1, math.ceil(self.connect_timeout)),
                application_name="hookgate-control",
                keepalives=1,
                keepalives_idle=10,
                keepalives_interval=5,
                keepalives_count=3,
            )
        except psycopg.Error as exc:
            raise StoreUnavailable(
                f"cannot connect to the control store at {redacted(self.url)}: {_first_line(exc)}"
            ) from exc

    @contextmanager
    def _conn(self) -> Iterator[Any]:
        import psycopg

        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None or conn.closed:
            conn = self._connect()
        healthy = False
        try:
            yield conn
            healthy = True
        except psycopg.OperationalError as exc:
            # The server went away or restarted: the idle connections are as dead as this one.
            with self._lock:
                stale, self._idle = self._idle, []
            for other in stale:
                other.close()
            raise StoreUnavailable(
                f"the control store at {redacted(self.url)} is unavailable: {_first_line(exc)}"
            ) from exc
        finally:
            # A connection whose server went away, or that is still inside a transaction after
            # an error, is not handed out again.
            reusable = (
                not conn.closed
                and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
                and (healthy or not conn.broken)
            )
            with self._lock:
                if reusable and not self._closed and len(self._idle) < self.pool_size:
                    self._idle.append(conn)
                    conn = None
            if conn is not None:
                conn.close()

    def close(self) -> None:
        """Close the idle connections; one still in use is closed when it is handed back."""
        with self._lock:
            idle, self._idle = self._idle, []
            self._closed = True
        for conn in idle:
            conn.close()

    # ---- the SQL dialect ----------------------------------------------------------------

    def _rows(self, conn: Any, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        cursor = conn.execute(sql.replace("?", "%s"), tuple(params))
        names = [c.name for c in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def _execute(self, conn: Any, sql: str, params: Sequence[Any]) -> int:
        return int(conn.execute(sql.replace("?", "%s"), tuple(params)).rowcount)

    def _statement(self, statement: str) -> str:
        return _ddl(statement)

    # ---- transactions -------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        with self._conn() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            yield Tx(self, conn)

    @contextmanager
    def reading(self) -> Iterator[Tx]:
        with self._conn() as conn:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                yield Tx(self, conn)
            finally:
                conn.execute("ROLLBACK")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# What `hookgate control-copy` moves, parents before children (config_versions name configs).
COPIED = ("workspaces", "api_keys", "configs", "config_versions", "virtual_keys", "audit", "kept")


def copy_store(source: SQLStore, target: PostgresStore) -> dict[str, int]:
    """Copy every row of ``source`` (a SQLite store) into ``target``, an empty PostgreSQL
    store, in one transaction; rows keep their ids, so gateway keys, config and version ids
    and the audit log are the same after the move. Every copied row is stamped with one new
    generation, so instances already polling ``target`` load all of it at their next poll.

    :raises CopyRefused: when ``target`` holds anything beyond its ``default`` workspace.
    """
    source.migrate()
    target.migrate()
    with source.reading() as tx:
        rows = {table: tx.all(f"SELECT * FROM {table}") for table in COPIED}
    counts = {table: len(found) for table, found in rows.items()}
    with target.transaction() as tx:
        held = {
            table: int((tx.one(f"SELECT count(*) AS n FROM {table}") or {"n": 0})["n"])
            for table in COPIED
        }
        held["workspaces"] -= (
            1 if tx.one("SELECT 1 AS x FROM workspaces WHERE slug = 'default'") else 0
        )
        busy = {table: n for table, n in held.items() if n}
        if busy:
            raise CopyRefused(
                "the target store is not empty ("
                + ", ".join(f"{n} {table}" for table, n in busy.items())
                + "): copy into a fresh database"
            )
        tx.run("DELETE FROM workspaces WHERE slug = 'default'")
        generation = tx.generation()
        for table in COPIED:
            for row in rows[table]:
                if "gen" in row:
                    row = {**row, "gen": generation}
                names = list(row)
                tx.run(
                    f"INSERT INTO {table} ({', '.join(names)})"
                    f" VALUES ({', '.join('?' for _ in names)})",
                    [bytes(v) if isinstance(v, memoryview) else v for v in row.values()],
                )
        # The audit ids were copied: the next one continues after them.
        tx.run(
            "SELECT setval(pg_get_serial_sequence('audit', 'id'),"
            " GREATEST((SELECT MAX(id) FROM audit), 1))"
        )
    return counts


class CopyRefused(Exception):
    """``hookgate control-copy`` would overwrite or mix with what the target holds."""

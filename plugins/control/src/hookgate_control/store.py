"""The control plane's store: workspaces, gateway keys, versioned configs, virtual keys, audit.

:class:`ControlStore` is the interface; :class:`SQLStore` implements it in portable SQL (``?``
placeholders, no vendor functions), and :class:`SQLiteStore` supplies SQLite's connection,
locking and file handling. A PostgreSQL backend subclasses :class:`SQLStore` the same way
(its driver's placeholder style and column types): see :mod:`hookgate_control.pgstore`.

Every change is one transaction that also bumps a generation counter in ``meta`` and stamps
the rows it touched with it. Gateway workers poll the counter (one tiny query every
``poll_interval``) and, when it moved, read only the rows stamped after the generation they
hold: that is how a change made on one worker (or one instance) is live on all of them within
a second while requests never query the database. The counter's row is updated first in every
write transaction, which serialises writers, so generations commit in order and a poll never
skips one.

Rows are never deleted: a deleted config, virtual key or workspace keeps its row (and a
config its history) with ``deleted_at`` set, so the snapshot learns of the deletion the same
way it learns of any change. The audit log is append-only and written in the same
transaction as the change it records.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

__all__ = [
    "MIGRATIONS",
    "Change",
    "ControlStore",
    "SQLStore",
    "SQLiteStore",
    "StoreUnavailable",
    "Tx",
]


class StoreUnavailable(Exception):
    """The store cannot be reached (file gone, locked for too long, server down)."""


# Each migration is a list of statements, applied in one transaction; ``meta.schema``
# records how many ran. Append, never edit: a deployed store has run the old ones.
MIGRATIONS: list[list[str]] = [
    [
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
        """CREATE TABLE workspaces (
            id TEXT PRIMARY KEY,
            slug TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            description TEXT,
            defaults TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            deleted_at REAL,
            gen INTEGER NOT NULL
        )""",
        """CREATE TABLE api_keys (
            id TEXT PRIMARY KEY,
            key_hash TEXT NOT NULL UNIQUE,
            hint TEXT NOT NULL,
            name TEXT NOT NULL,
            description TEXT,
            workspace TEXT NOT NULL,
            role TEXT NOT NULL,
            type TEXT NOT NULL,
            sub_type TEXT NOT NULL,
            scopes TEXT NOT NULL,
            rate_limits TEXT,
            usage_limits TEXT,
            defaults TEXT,
            expires_at REAL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            revoked_at REAL,
            created_by TEXT,
            gen INTEGER NOT NULL
        )""",
        """CREATE TABLE configs (
            id TEXT PRIMARY KEY,
            slug TEXT NOT NULL UNIQUE,
            workspace TEXT NOT NULL,
            name TEXT NOT NULL,
            is_default INTEGER NOT NULL DEFAULT 0,
            status TEXT NOT NULL,
            current_version TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            created_by TEXT,
            deleted_at REAL,
            gen INTEGER NOT NULL
        )""",
        """CREATE TABLE config_versions (
            id TEXT PRIMARY KEY,
            config_id TEXT NOT NULL REFERENCES configs (id),
            number INTEGER NOT NULL,
            config TEXT NOT NULL,
            name TEXT NOT NULL,
            message TEXT,
            created_at REAL NOT NULL,
            created_by_id TEXT,
            created_by_name TEXT,
            rollback_of TEXT,
            gen INTEGER NOT NULL,
            UNIQUE (config_id, number)
        )""",
        """CREATE TABLE virtual_keys (
            id TEXT PRIMARY KEY,
            slug TEXT NOT NULL UNIQUE,
            workspace TEXT NOT NULL,
            name TEXT NOT NULL,
            provider TEXT NOT NULL,
            note TEXT,
            secret BLOB,
            key_id TEXT,
            hint TEXT,
            custom_host TEXT,
            options TEXT NOT NULL,
            usage_limits TEXT,
            rate_limits TEXT,
            status TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            created_by TEXT,
            deleted_at REAL,
            gen INTEGER NOT NULL
        )""",
        """CREATE TABLE audit (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            ts REAL NOT NULL,
            actor_id TEXT,
            actor_name TEXT,
            workspace TEXT,
            action TEXT NOT NULL,
            resource_type TEXT NOT NULL,
            resource_id TEXT,
            before TEXT,
            after TEXT
        )""",
        "CREATE INDEX audit_ts ON audit (ts)",
        "CREATE INDEX configs_gen ON configs (gen)",
        "CREATE INDEX config_versions_gen ON config_versions (gen)",
        "CREATE INDEX virtual_keys_gen ON virtual_keys (gen)",
        "CREATE INDEX api_keys_gen ON api_keys (gen)",
        "CREATE INDEX workspaces_gen ON workspaces (gen)",
    ],
    [
        # Deployment-wide values every instance must agree on (the cache's partition secret
        # when HOOKGATE_SECRET is unset); written once, by whichever instance comes first.
        "CREATE TABLE kept (name TEXT PRIMARY KEY, value TEXT NOT NULL, created_at REAL NOT NULL)",
    ],
]


def new_id() -> str:
    return str(uuid.uuid4())


def dumps(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def loads(value: str | bytes | None) -> Any:
    return None if value is None else orjson.loads(value)


@dataclass(frozen=True, slots=True)
class Change:
    """What a poll found: every row stamped after the generation asked about."""

    generation: int
    workspaces: list[dict[str, Any]]
    api_keys: list[dict[str, Any]]
    configs: list[dict[str, Any]]
    versions: list[dict[str, Any]]
    """New config versions (immutable), each with its config's ``slug``."""
    virtual_keys: list[dict[str, Any]]


class Tx:
    """One transaction: statements in portable SQL with ``?`` placeholders."""

    def __init__(self, store: SQLStore, conn: Any) -> None:
        self.store = store
        self.conn = conn
        self._generation: int | None = None

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return self.store._rows(self.conn, sql, params)

    def one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        rows = self.all(sql, params)
        return rows[0] if rows else None

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Execute a change; the number of rows it touched."""
        return self.store._execute(self.conn, sql, params)

    def generation(self) -> int:
        """This transaction's generation: bumped once, on first use (which also takes the
        writers' lock, so transactions commit in generation order)."""
        if self._generation is None:
            self.run("UPDATE meta SET value = value + 1 WHERE key = 'generation'")
            row = self.one("SELECT value FROM meta WHERE key = 'generation'")
            assert row is not None
            self._generation = int(row["value"])
        return self._generation

    def audit(
        self,
        actor: tuple[str, str],
        workspace: str | None,
        action: str,
        resource_type: str,
        resource_id: str | None,
        before: Any = None,
        after: Any = None,
    ) -> None:
        self.run(
            "INSERT INTO audit (ts, actor_id, actor_name, workspace, action, resource_type,"
            " resource_id, before, after) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                time.time(),
                actor[0],
                actor[1],
                workspace,
                action,
                resource_type,
                resource_id,
                dumps(before),
                dumps(after),
            ),
        )


class ControlStore(ABC):
    """What the control plane needs of a database: transactions, and the change feed."""

    shared: bool = False
    """True when other instances may use the same store (a database server, not a file)."""

    @abstractmethod
    def migrate(self) -> None:
        """Create or upgrade the schema, and the ``default`` workspace."""

    @abstractmethod
    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """A write transaction; commits on success, rolls back on any error.

        :raises StoreUnavailable: when the database cannot be reached.
        """

    @abstractmethod
    @contextmanager
    def reading(self) -> Iterator[Tx]:
        """A read-only transaction (one consistent view)."""

    @abstractmethod
    def generation(self) -> int:
        """The current generation: a cheap query, polled by every worker."""

    @abstractmethod
    def kept(self, name: str, make: Callable[[], str]) -> str:
        """A deployment-wide value, created by ``make`` the first time it is asked for."""

    def changes_since(self, generation: int) -> Change:
        """Every row stamped after ``generation`` (everything for 0), read in one view."""
        with self.reading() as tx:
            now = tx.one("SELECT value FROM meta WHERE key = 'generation'")
            assert now is not None
            params = (generation,)
            return Change(
                generation=int(now["value"]),
                workspaces=tx.all("SELECT * FROM workspaces WHERE gen > ?", params),
                api_keys=tx.all(
                    "SELECT id, key_hash, name, workspace, role, scopes, rate_limits,"
                    " usage_limits, expires_at, revoked_at FROM api_keys WHERE gen > ?",
                    params,
                ),
                configs=tx.all(
                    "SELECT slug, workspace, status, deleted_at, current_version FROM configs"
                    " WHERE gen > ?",
                    params,
                ),
                versions=tx.all(
                    "SELECT v.id, c.slug, v.number, v.config FROM config_versions v"
                    " JOIN configs c ON c.id = v.config_id WHERE v.gen > ?",
                    params,
                ),
                virtual_keys=tx.all(
                    "SELECT id, slug, workspace, provider, secret, key_id, custom_host, options,"
                    " status, deleted_at FROM virtual_keys WHERE gen > ?",
                    params,
                ),
            )

    def close(self) -> None:  # noqa: B027 - most backends hold nothing between calls
        """Release connections."""


class SQLStore(ControlStore):
    """The store in portable SQL; subclasses provide connections and the driver's quirks."""

    @abstractmethod
    def _connect(self) -> Any: ...

    def _rows(self, conn: Any, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        cursor = conn.execute(sql, tuple(params))
        names = [c[0] for c in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def _execute(self, conn: Any, sql: str, params: Sequence[Any]) -> int:
        return conn.execute(sql, tuple(params)).rowcount

    def _statement(self, statement: str) -> str:
        """A migration's DDL in this database's dialect (written in SQLite's)."""
        return statement

    def _migrate(self, tx: Tx) -> None:
        tx.run(
            self._statement(
                "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)"
            )
        )
        row = tx.one("SELECT value FROM meta WHERE key = 'schema'")
        done = int(row["value"]) if row else 0
        for statements in MIGRATIONS[done:]:
            for statement in statements:
                tx.run(self._statement(statement))
        if row is None:
            tx.run("INSERT INTO meta (key, value) VALUES ('schema', ?)", (len(MIGRATIONS),))
            tx.run("INSERT INTO meta (key, value) VALUES ('generation', 0)")
        elif done < len(MIGRATIONS):
            tx.run("UPDATE meta SET value = ? WHERE key = 'schema'", (len(MIGRATIONS),))
        if tx.one("SELECT id FROM workspaces WHERE slug = 'default'") is None:
            now = time.time()
            tx.run(
                "INSERT INTO workspaces (id, slug, name, description, defaults, created_at,"
                " updated_at, gen) VALUES (?, 'default', 'Default', ?, NULL, ?, ?, ?)",
                (new_id(), "created with the store", now, now, tx.generation()),
            )

    def migrate(self) -> None:
        with self.transaction() as tx:
            self._migrate(tx)

    def generation(self) -> int:
        with self.reading() as tx:
            row = tx.one("SELECT value FROM meta WHERE key = 'generation'")
            return int(row["value"]) if row else 0

    def kept(self, name: str, make: Callable[[], str]) -> str:
        """The value kept under ``name``; ``make()``'s, stored now, when there is none yet.
        Writers are serialised, so instances starting together all get the first one."""
        with self.reading() as tx:
            row = tx.one("SELECT value FROM kept WHERE name = ?", (name,))
        if row is not None:
            return str(row["value"])
        with self.transaction() as tx:
            row = tx.one("SELECT value FROM kept WHERE name = ?", (name,))
            if row is not None:
                return str(row["value"])
            value = make()
            tx.run(
                "INSERT INTO kept (name, value, created_at) VALUES (?, ?, ?)",
                (name, value, time.time()),
            )
            return value


class SQLiteStore(SQLStore):
    """A SQLite file (WAL mode, so every worker reads while one writes).

    A connection per call: they are cheap (tens of microseconds), a moved or deleted file is
    noticed at once (the file is opened ``mode=rw``, never re-created by accident), and
    nothing is shared between threads. Writers wait ``busy_timeout`` seconds for the lock.
    """

    def __init__(self, path: str | Path, busy_timeout: float = 5.0) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._created = threading.Lock()

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    def _open(self, create: bool) -> sqlite3.Connection:
        mode = "rwc" if create else "rw"
        try:
            conn = sqlite3.connect(
                f"file:{self.path}?mode={mode}",
                uri=True,
                timeout=self.busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open the store at {self.path}: {exc}") from exc
        return conn

    def _connect(self) -> sqlite3.Connection:
        return self._open(create=False)

    def migrate(self) -> None:
        with self._created:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreUnavailable(f"cannot create {self.path.parent}: {exc}") from exc
            conn = self._open(create=True)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"cannot use the store at {self.path}: {exc}") from exc
            finally:
                conn.close()
            with self.transaction() as tx:
                self._migrate(tx)
            self.path.chmod(0o600)

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        conn = self._connect()
        try:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"the store at {self.path} is unavailable: {exc}") from exc
            try:
                yield Tx(self, conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"the store at {self.path} is unavailable: {exc}") from exc
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"the store at {self.path} is unavailable: {exc}") from exc
        finally:
            conn.close()

    @contextmanager
    def reading(self) -> Iterator[Tx]:
        conn = self._connect()
        try:
            conn.execute("BEGIN")
            yield Tx(self, conn)
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"the store at {self.path} is unavailable: {exc}") from exc
        finally:
            conn.close()

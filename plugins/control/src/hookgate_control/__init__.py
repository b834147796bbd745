"""hookgate-control: the control plane.

Versioned configs with rollback, virtual keys encrypted at rest, workspaces, roles, gateway
keys and an audit log, in a SQLite store beside plugins.toml, managed through Portkey's admin
API (``/v1/configs``, ``/v1/virtual-keys``, ``/v1/api-keys``, ``/v1/admin/workspaces``) or the
CLI (``hookgate workspaces|keys|configs|vkeys``).

On the request path the plugin answers the core's ``authenticate``, ``resolve_config`` and
``resolve_virtual_key`` hooks from an in-memory :class:`~hookgate_control.snapshot.Snapshot`;
each worker refreshes it in the background from the store's change feed (``poll_interval``),
so a change is live everywhere within a second and no request waits on the database. When the
store is unreachable, requests go on from the last snapshot and changes answer 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import structlog
from hookgate import hookimpl
from hookgate.auth import DEFAULT_WORKSPACE, Principal
from hookgate.config import StoredConfig
from hookgate.errors import AuthenticationError, PermissionDeniedError, SettingsError
from hookgate.settings import VirtualKey
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .crypto import MasterKey, MasterKeyError, MasterKeyMissing
from .roles import may_call
from .service import ControlPlane
from .snapshot import Snapshot, hash_key
from .store import ControlStore, SQLiteStore, StoreUnavailable

if TYPE_CHECKING:
    import click
    from hookgate import Gateway, RequestContext

__all__ = ["ADMIN_KEY_ENV", "ControlSettings", "Plugin"]

log = structlog.get_logger("hookgate.control")

ADMIN_KEY_ENV = "HOOKGATE_ADMIN_KEY"
DEPLOYMENT_SECRET = "deployment_secret"
"""The name the partition secret is kept under in a shared store (table ``kept``)."""


class StoreSettings(BaseModel):
    """``store = { url = "postgresql://..." }``, or ``{ path = "..." }`` for a SQLite file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = ".hookgate/control.db"
    """The SQLite file, used when ``url`` is not set."""
    url: str | None = Field(default=None, repr=False)
    """A PostgreSQL database every instance shares (``postgresql://user:pw@host/db``)."""
    connect_timeout: Annotated[float, Field(gt=0)] = 5.0
    """Seconds to wait for the database server to accept a connection."""

    @field_validator("url")
    @classmethod
    def _postgres_only(cls, url: str | None) -> str | None:
        from .pgstore import is_postgres_url

        if url and not is_postgres_url(url):
            raise ValueError(
                "must be a postgresql:// URL (or leave it unset for the SQLite file at path)"
            )
        return url or None


class ControlSettings(BaseModel):
    """``[plugins.control]``. Relative paths are relative to plugins.toml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    store: StoreSettings = Field(default_factory=StoreSettings)
    """Where workspaces, keys, configs, virtual keys and the audit log live: a SQLite file
    (``store = "path"``), or a PostgreSQL database every instance shares
    (``store = { url = "postgresql://..." }``)."""
    master_key_file: str = ".hookgate/master.key"
    """Where the master key lives when ``HOOKGATE_MASTER_KEY`` is not set (created, 0600).
    Not used with a PostgreSQL store: there the key must come from the environment."""
    poll_interval: Annotated[float, Field(gt=0, le=5)] = 0.25
    """Seconds between two checks for changes made by other workers or instances."""
    busy_timeout: Annotated[float, Field(gt=0)] = 5.0
    """Seconds a write waits for another writer's lock before answering 503."""

    @field_validator("store", mode="before")
    @classmethod
    def _path_alone(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value


def open_store(settings: ControlSettings, source: str) -> ControlStore:
    """The store ``settings`` name (a relative SQLite path is relative to ``source``)."""
    store = settings.store
    if store.url:
        from .pgstore import PostgresStore, is_postgres_url, register_url_secrets

        if not is_postgres_url(store.url):
            raise SettingsError(
                "[plugins.control] store.url must be a postgresql:// URL "
                "(or leave it unset for the SQLite file at store.path)"
            )
        register_url_secrets(store.url)
        return PostgresStore(store.url, connect_timeout=store.connect_timeout)
    return SQLiteStore(_beside(store.path, source), busy_timeout=settings.busy_timeout)


def _beside(path: str, source: str) -> Path:
    found = Path(path).expanduser()
    if found.is_absolute() or source.startswith("<"):
        return found
    return Path(source).resolve().parent / found


class Plugin:
    Settings = ControlSettings

    def __init__(self, settings: ControlSettings | None = None) -> None:
        self.settings = settings or ControlSettings()
        self.snapshot = Snapshot()
        self.gateway: Gateway | None = None
        self.master: MasterKey | None = None
        self.problem: str | None = None
        self._store: ControlStore | None = None
        self._plane: ControlPlane | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock: asyncio.Lock | None = None
        self._opened = False
        self._source = "<defaults>"

    # ---- wiring -------------------------------------------------------------------------

    def bind(
        self,
        source: str,
        toml_configs: Sequence[str],
        toml_virtual_keys: Sequence[str],
        validate: Any,
    ) -> ControlPlane:
        """Open the store named by the settings (relative to ``source``, the plugins.toml)."""
        self._source = source
        self._store = open_store(self.settings, source)
        self._plane = ControlPlane(
            store=self._store,
            master_key_file=_beside(self.settings.master_key_file, source),
            validate=validate,
            toml_configs=frozenset(toml_configs),
            toml_virtual_keys=frozenset(toml_virtual_keys),
        )
        return self._plane

    @property
    def plane(self) -> ControlPlane:
        assert self._plane is not None, "the control plugin has not started"
        return self._plane

    @hookimpl
    async def startup(self, gateway: Gateway) -> None:
        self.gateway = gateway
        settings = gateway.settings

        def validate(config: dict[str, Any], workspace: str) -> None:
            gateway.check_config(config, _as_member(workspace))

        plane = self.bind(
            settings.source, list(settings.configs), list(settings.virtual_keys), validate
        )
        self._lock = asyncio.Lock()
        # The first refresh opens (migrates) the store; while it cannot, requests are refused
        # (no key can be checked) and every poll tries again.
        with contextlib.suppress(StoreUnavailable):
            await self.refresh()
        self._task = asyncio.create_task(self._poll(), name="hookgate-control-poll")

    def _open(self, plane: ControlPlane) -> None:
        assert self._store is not None
        self._store.migrate()
        try:
            self.master = plane.master_key()
        except MasterKeyMissing as exc:
            # Serve what needs no provider key; writes of provider keys answer 503.
            log.warning("control_master_key_missing", error=str(exc))
        seed = os.environ.get(ADMIN_KEY_ENV)
        if seed and not plane.keys_exist():
            with contextlib.suppress(Exception):  # another worker seeded it first
                plane.create_key(
                    None,
                    {"name": ADMIN_KEY_ENV, "role": "admin", "key": seed},
                    bootstrap=True,
                )
                log.info("admin_key_seeded", source=ADMIN_KEY_ENV)

    @hookimpl
    async def shutdown(self, gateway: Gateway) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._store is not None:
            await asyncio.to_thread(self._store.close)

    @hookimpl
    def deployment_secret(self, gateway: Gateway) -> Any:
        """With a shared store, the deployment secret lives in it (made by the first instance
        that asks), so every instance derives the same cache keys. The cache may ask before
        this plugin's ``startup``: then a store is opened for the question."""
        store = self._store or open_store(self.settings, gateway.settings.source)
        if not store.shared:
            return None
        return asyncio.to_thread(_keep_secret, store, store is not self._store)

    @hookimpl
    def ready(self, gateway: Gateway) -> list[str]:
        return [self.problem] if self.problem else []

    async def refresh(self) -> None:
        """Bring the snapshot up to date with the store (cheap when nothing changed)."""
        assert self._store is not None and self._lock is not None
        store = self._store
        async with self._lock:
            snapshot = self.snapshot
            try:
                if not self._opened:
                    try:
                        await asyncio.to_thread(self._open, self.plane)
                    except MasterKeyError as exc:  # a malformed HOOKGATE_MASTER_KEY: stays
                        self.problem = str(exc)
                        log.warning("control_master_key_unusable", error=str(exc))
                    self._opened = True
                generation = await asyncio.to_thread(store.generation)
                if generation == snapshot.generation:
                    self._recovered()
                    return
                change = await asyncio.to_thread(store.changes_since, snapshot.generation)
            except StoreUnavailable as exc:
                if self.problem is None:
                    log.warning("control_store_unavailable", error=str(exc))
                self.problem = f"control store unavailable: {exc}"
                raise
            if change.virtual_keys and any(
                row["key_id"] and (self.master is None or row["key_id"] != self.master.id)
                for row in change.virtual_keys
            ):
                # Rotated by `hookgate vkeys rotate-master-key`: the key file holds the new one.
                with contextlib.suppress(MasterKeyError, OSError):
                    self.master = await asyncio.to_thread(self.plane.master_key)
            self.snapshot = snapshot.apply(change, self.master)
            self._recovered()
            if change.virtual_keys and self.gateway is not None:
                self.gateway.invalidate_plans()

    def _recovered(self) -> None:
        if self.problem is not None and self.problem.startswith("control store unavailable"):
            log.info("control_store_available")
            self.problem = None

    async def _poll(self) -> None:
        interval = self.settings.poll_interval
        while True:
            await asyncio.sleep(interval)
            try:
                await self.refresh()
            except StoreUnavailable:
                continue
            except Exception:
                log.exception("control_refresh_failed")

    # ---- the request path ---------------------------------------------------------------

    @hookimpl
    def authenticate(self, token: str | None, headers: Mapping[str, str]) -> Principal | None:
        snapshot = self.snapshot
        if snapshot.generation == 0:
            # Never read (the store has been unreachable since this worker started): whether
            # keys exist is unknown, so nothing is let through unchecked.
            raise AuthenticationError(
                "the control-plane store has not been reachable since this worker started, so "
                "no gateway key can be checked yet; try again shortly",
                code="store_unavailable",
            )
        if token:
            entry = snapshot.keys.get(hash_key(token))
            if entry is not None:
                principal = entry.principal
                if principal.expires_at is not None and principal.expires_at <= time.time():
                    raise AuthenticationError(
                        "this gateway key has expired", code="expired_api_key"
                    )
                return principal
        if snapshot.keys_exist:
            raise AuthenticationError(
                "a valid gateway key is required in the x-portkey-api-key header"
                if token is None
                else "invalid gateway key (unknown or revoked)"
            )
        return None

    @hookimpl
    def resolve_config(
        self, config_id: str, version: str | None, principal: Principal | None
    ) -> StoredConfig | None:
        entry = self.snapshot.configs.get(config_id)
        if entry is None or entry.current is None or not _sees(principal, entry.workspace):
            return None
        if version is None:
            return entry.stored(entry.current)
        return entry.pinned(version)

    @hookimpl
    def resolve_virtual_key(self, slug: str, principal: Principal | None) -> VirtualKey | None:
        found = self.snapshot.virtual_keys.get(slug)
        if found is None or not _sees(principal, found[0]):
            return None
        return found[1]

    @hookimpl(tryfirst=True)
    def pre_request(self, ctx: RequestContext) -> None:
        principal = ctx.principal
        if principal is None or principal.source != "control":
            return
        if not may_call(principal):
            raise PermissionDeniedError(
                f"key {principal.name!r} is a viewer without the completions.write scope: "
                "it may read the admin API but not call models"
            )

    # ---- routes and commands ------------------------------------------------------------

    @hookimpl
    def register_routes(self, gateway: Gateway) -> list[Any]:
        from .api import routes

        return routes(self, gateway)

    @hookimpl
    def register_commands(self, cli: click.Group) -> None:
        from .cli import register

        register(cli)


def _keep_secret(store: ControlStore, temporary: bool) -> str:
    try:
        store.migrate()
        return store.kept(DEPLOYMENT_SECRET, lambda: secrets.token_hex(32))
    finally:
        if temporary:
            store.close()


def _sees(principal: Principal | None, workspace: str) -> bool:
    if principal is None:
        return workspace == DEFAULT_WORKSPACE
    return principal.may_use_workspace(workspace)


def _as_member(workspace: str) -> Principal:
    return Principal(key_id="validation", name="validation", workspace=workspace, role="member")

"""The control plane's operations: who may do what, validation, versions, audit.

Both the HTTP admin API and the CLI call :class:`ControlPlane`; it reads and writes the store
directly (one transaction per change, its audit record inside it), so a read right after a
write sees it on any worker. ``who`` is the caller's :class:`~hookgate.auth.Principal`; the
CLI acts as an admin (whoever can run it holds the store's file).

Resources of another workspace are a 404 to a key that may not see them, never a 403: a
key learns nothing about what other workspaces hold.
"""

from __future__ import annotations

import difflib
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import orjson
from hookgate.auth import DEFAULT_WORKSPACE, ROLES, Principal, Role
from hookgate.errors import (
    BadRequestError,
    ConflictError,
    GatewayError,
    NotFoundError,
    PermissionDeniedError,
    UnavailableError,
)

from .crypto import ENV_VAR, MasterKey, MasterKeyMissing, hint, write_key_file
from .roles import DEFAULT_SCOPES, role_for_scopes
from .snapshot import hash_key
from .store import ControlStore, StoreUnavailable, Tx, dumps, loads, new_id

__all__ = ["ControlPlane", "Validator", "iso"]

Validator = Callable[[dict[str, Any], str], None]
"""Checks a config as a request in ``workspace`` would (raises the request's ConfigError)."""

_SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]{0,79}$")
_KEY_TYPES = ("organisation", "workspace")
_KEY_SUB_TYPES = ("service", "user")
KEY_PREFIX = "hg-"
# Virtual-key fields the SDK sends in camelCase, as the provider plugins name them.
_PROVIDER_FIELDS = {
    "apiVersion": "api_version",
    "resourceName": "resource_name",
    "deploymentName": "deployment_id",
    "deploymentId": "deployment_id",
    "customHost": "custom_host",
}
_VKEY_FIELDS = {
    "name",
    "provider",
    "key",
    "note",
    "workspace_id",
    "usage_limits",
    "rate_limits",
    "custom_host",
    "slug",
}


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "x"


def _check_slug(slug: Any, what: str) -> str:
    if not isinstance(slug, str) or not _SLUG.match(slug):
        raise BadRequestError(
            f"{what} must be 1-80 lower-case letters, digits, '.', '_' or '-' "
            f"(starting with a letter or digit), not {slug!r}",
            param="slug",
        )
    return slug


def _text(body: Mapping[str, Any], name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise BadRequestError(f"'{name}' is required", param=name)
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise BadRequestError(f"'{name}' must be a non-empty string", param=name)
    return value


def _object(body: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    value = body.get(name)
    if value is not None and not isinstance(value, dict):
        raise BadRequestError(f"'{name}' must be a JSON object", param=name)
    return value


def _list_of_objects(body: Mapping[str, Any], name: str) -> list[dict[str, Any]] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise BadRequestError(f"'{name}' must be a list of JSON objects", param=name)
    return value


def _timestamp(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise BadRequestError(f"'{name}' must be an ISO 8601 time or Unix seconds", param=name)
    if isinstance(value, int | float):
        ts = float(value)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise BadRequestError(
                f"'{name}' must be an ISO 8601 time (2030-01-31T00:00:00Z), not {value!r}",
                param=name,
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        ts = parsed.timestamp()
    else:
        raise BadRequestError(f"'{name}' must be an ISO 8601 time or Unix seconds", param=name)
    if ts <= time.time():
        raise BadRequestError(f"'{name}' is in the past", param=name)
    return ts


def _actor(who: Principal) -> tuple[str, str]:
    return who.key_id, who.name


@dataclass(frozen=True, slots=True)
class ControlPlane:
    store: ControlStore
    master_key_file: Path
    validate: Validator
    toml_configs: frozenset[str] = frozenset()
    toml_virtual_keys: frozenset[str] = frozenset()

    # ---- plumbing -----------------------------------------------------------------------

    def _tx(self) -> Any:
        return _Guard(self.store.transaction())

    def _read(self) -> Any:
        return _Guard(self.store.reading())

    def master_key(self) -> MasterKey:
        """The key that seals provider keys: ``$HOOKGATE_MASTER_KEY``, else (a SQLite store
        only) the key file. :raises MasterKeyMissing: a shared store without the variable."""
        if self.store.shared:
            return MasterKey.from_env("a shared control store")
        return MasterKey.load(self.master_key_file)

    def _sealing_key(self, what: str) -> MasterKey:
        """The master key for a write that stores a provider key, or the 503 naming
        ``HOOKGATE_MASTER_KEY`` (the write is refused, nothing is stored)."""
        try:
            return self.master_key()
        except MasterKeyMissing as exc:
            raise UnavailableError(
                f"{what} is refused: set {ENV_VAR} (32 random bytes, URL-safe base64) alike on "
                "every instance sharing this store; without it provider keys are not stored, "
                "since a master key kept in the shared database would protect nothing",
                code="master_key_missing",
            ) from exc

    @staticmethod
    def _admin(who: Principal) -> None:
        if who.role != "admin":
            raise PermissionDeniedError(f"this needs an admin key; {who.name!r} is a {who.role}")

    @staticmethod
    def _writer(who: Principal, workspace: str, what: str) -> None:
        if who.role == "viewer":
            raise PermissionDeniedError(
                f"a viewer key cannot change {what}; use a member or admin key"
            )

    def _workspace(self, tx: Tx, who: Principal, ref: str | None) -> str:
        """The slug of the workspace ``ref`` (slug or id; the caller's own when None)."""
        if ref is None or ref == "":
            return who.workspace
        row = tx.one(
            "SELECT slug FROM workspaces WHERE (slug = ? OR id = ?) AND deleted_at IS NULL",
            (ref, ref),
        )
        if row is None or not who.may_use_workspace(row["slug"]):
            raise NotFoundError(f"no workspace {ref!r}", param="workspace_id")
        return str(row["slug"])

    # ---- workspaces ---------------------------------------------------------------------

    def create_workspace(self, who: Principal, body: Mapping[str, Any]) -> dict[str, Any]:
        self._admin(who)
        name = _text(body, "name", required=True)
        assert name is not None
        slug = _check_slug(body.get("slug") or _slugify(name), "the workspace slug")
        description = _text(body, "description")
        defaults = _object(body, "defaults")
        with self._tx() as tx:
            if tx.one("SELECT 1 AS x FROM workspaces WHERE slug = ?", (slug,)):
                raise ConflictError(f"a workspace {slug!r} exists already", param="name")
            now = time.time()
            tx.run(
                "INSERT INTO workspaces (id, slug, name, description, defaults, created_at,"
                " updated_at, gen) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (new_id(), slug, name, description, dumps(defaults), now, now, tx.generation()),
            )
            row = self._workspace_row(tx, slug)
            tx.audit(_actor(who), slug, "workspace.create", "workspace", slug, None, row)
        return row

    def _workspace_row(self, tx: Tx, slug: str) -> dict[str, Any]:
        row = tx.one("SELECT * FROM workspaces WHERE slug = ?", (slug,))
        assert row is not None
        return _workspace_view(row)

    def list_workspaces(self, who: Principal) -> list[dict[str, Any]]:
        with self._read() as tx:
            rows = tx.all("SELECT * FROM workspaces WHERE deleted_at IS NULL ORDER BY created_at")
        return [_workspace_view(r) for r in rows if who.may_use_workspace(r["slug"])]

    def get_workspace(self, who: Principal, ref: str) -> dict[str, Any]:
        with self._read() as tx:
            return self._workspace_row(tx, self._workspace(tx, who, ref))

    def update_workspace(self, who: Principal, ref: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._admin(who)
        with self._tx() as tx:
            slug = self._workspace(tx, who, ref)
            before = self._workspace_row(tx, slug)
            name = _text(body, "name")
            description = _text(body, "description")
            defaults = _object(body, "defaults")
            tx.run(
                "UPDATE workspaces SET name = COALESCE(?, name),"
                " description = COALESCE(?, description), defaults = COALESCE(?, defaults),"
                " updated_at = ?, gen = ? WHERE slug = ?",
                (name, description, dumps(defaults), time.time(), tx.generation(), slug),
            )
            after = self._workspace_row(tx, slug)
            tx.audit(_actor(who), slug, "workspace.update", "workspace", slug, before, after)
        return after

    def delete_workspace(self, who: Principal, ref: str) -> None:
        self._admin(who)
        with self._tx() as tx:
            slug = self._workspace(tx, who, ref)
            if slug == DEFAULT_WORKSPACE:
                raise ConflictError("the default workspace cannot be deleted")
            for table, what in (
                ("configs", "configs"),
                ("virtual_keys", "virtual keys"),
            ):
                if tx.one(
                    f"SELECT 1 AS x FROM {table} WHERE workspace = ? AND deleted_at IS NULL",
                    (slug,),
                ):
                    raise ConflictError(f"workspace {slug!r} still holds {what}: delete them first")
            if tx.one(
                "SELECT 1 AS x FROM api_keys WHERE workspace = ? AND revoked_at IS NULL", (slug,)
            ):
                raise ConflictError(f"workspace {slug!r} still has active keys: revoke them first")
            before = self._workspace_row(tx, slug)
            tx.run(
                "UPDATE workspaces SET deleted_at = ?, gen = ? WHERE slug = ?",
                (time.time(), tx.generation(), slug),
            )
            tx.audit(_actor(who), slug, "workspace.delete", "workspace", slug, before, None)

    # ---- gateway keys -------------------------------------------------------------------

    def create_key(
        self, who: Principal | None, body: Mapping[str, Any], *, bootstrap: bool = False
    ) -> tuple[dict[str, Any], str]:
        """A new key: its public view, and the key itself (shown this once)."""
        if who is not None:
            self._admin(who)
        name = _text(body, "name", required=True)
        assert name is not None
        key_type = body.get("type") or "workspace"
        sub_type = body.get("sub-type") or body.get("sub_type") or "service"
        if key_type not in _KEY_TYPES:
            raise BadRequestError(
                f"type must be one of {', '.join(_KEY_TYPES)}, not {key_type!r}", param="type"
            )
        if sub_type not in _KEY_SUB_TYPES:
            raise BadRequestError(
                f"sub-type must be one of {', '.join(_KEY_SUB_TYPES)}, not {sub_type!r}",
                param="sub-type",
            )
        scopes = body.get("scopes")
        if scopes is not None and (
            not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes)
        ):
            raise BadRequestError("'scopes' must be a list of strings", param="scopes")
        role = body.get("role")
        if role is None:
            role = role_for_scopes(scopes, key_type) if scopes else "member"
            if key_type == "organisation":
                role = "admin"
        elif role not in ROLES:
            raise BadRequestError(
                f"role must be one of {', '.join(ROLES)}, not {role!r}", param="role"
            )
        if scopes is None:
            scopes = DEFAULT_SCOPES[cast("Role", role)]
        rate_limits = _list_of_objects(body, "rate_limits")
        usage_limits = _object(body, "usage_limits")
        defaults = _object(body, "defaults")
        expires_at = _timestamp(body.get("expires_at"), "expires_at")
        description = _text(body, "description")
        token = body.get("key") if bootstrap else None
        if token is None:
            token = KEY_PREFIX + secrets.token_urlsafe(32)
        actor = _actor(who) if who is not None else ("cli", "hookgate keys create")
        with self._tx() as tx:
            workspace = (
                self._workspace(tx, who, body.get("workspace_id"))
                if who is not None
                else self._workspace(tx, _CLI, body.get("workspace_id") or DEFAULT_WORKSPACE)
            )
            if bootstrap and tx.one("SELECT 1 AS x FROM api_keys"):
                raise ConflictError("gateway keys exist already: nothing to seed")
            key_id = new_id()
            now = time.time()
            try_hash = hash_key(token)
            if tx.one("SELECT 1 AS x FROM api_keys WHERE key_hash = ?", (try_hash,)):
                raise ConflictError("that key exists already")
            tx.run(
                "INSERT INTO api_keys (id, key_hash, hint, name, description, workspace, role,"
                " type, sub_type, scopes, rate_limits, usage_limits, defaults, expires_at,"
                " created_at, updated_at, created_by, gen)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key_id,
                    try_hash,
                    hint(token),
                    name,
                    description,
                    workspace,
                    role,
                    key_type,
                    sub_type,
                    dumps(scopes),
                    dumps(rate_limits),
                    dumps(usage_limits),
                    dumps(defaults),
                    expires_at,
                    now,
                    now,
                    actor[0],
                    tx.generation(),
                ),
            )
            view = self._key_row(tx, key_id)
            tx.audit(actor, workspace, "api_key.create", "api_key", key_id, None, view)
        return view, token

    def _key_row(self, tx: Tx, key_id: str) -> dict[str, Any]:
        row = tx.one("SELECT * FROM api_keys WHERE id = ?", (key_id,))
        if row is None:
            raise NotFoundError(f"no api key {key_id!r}")
        return _key_view(row)

    def list_keys(self, who: Principal, workspace: str | None = None) -> list[dict[str, Any]]:
        self._admin(who)
        with self._read() as tx:
            if workspace:
                slug = self._workspace(tx, who, workspace)
                rows = tx.all(
                    "SELECT * FROM api_keys WHERE workspace = ? ORDER BY created_at", (slug,)
                )
            else:
                rows = tx.all("SELECT * FROM api_keys ORDER BY created_at")
        return [_key_view(r) for r in rows]

    def get_key(self, who: Principal, key_id: str) -> dict[str, Any]:
        if who.key_id != key_id:
            self._admin(who)
        with self._read() as tx:
            return self._key_row(tx, key_id)

    def update_key(self, who: Principal, key_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._admin(who)
        name = _text(body, "name")
        description = _text(body, "description")
        scopes = body.get("scopes")
        if scopes is not None and (
            not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes)
        ):
            raise BadRequestError("'scopes' must be a list of strings", param="scopes")
        role = body.get("role")
        if role is not None and role not in ROLES:
            raise BadRequestError(
                f"role must be one of {', '.join(ROLES)}, not {role!r}", param="role"
            )
        if role is None and scopes is not None:
            role = role_for_scopes(scopes)
        rate_limits = _list_of_objects(body, "rate_limits")
        usage_limits = _object(body, "usage_limits")
        defaults = _object(body, "defaults")
        expires_at = _timestamp(body.get("expires_at"), "expires_at")
        with self._tx() as tx:
            before = self._key_row(tx, key_id)
            if before["status"] != "active":
                raise ConflictError(f"api key {key_id!r} is revoked")
            tx.run(
                "UPDATE api_keys SET name = COALESCE(?, name),"
                " description = COALESCE(?, description), scopes = COALESCE(?, scopes),"
                " role = COALESCE(?, role), rate_limits = COALESCE(?, rate_limits),"
                " usage_limits = COALESCE(?, usage_limits), defaults = COALESCE(?, defaults),"
                " expires_at = COALESCE(?, expires_at), updated_at = ?, gen = ? WHERE id = ?",
                (
                    name,
                    description,
                    dumps(scopes),
                    role,
                    dumps(rate_limits),
                    dumps(usage_limits),
                    dumps(defaults),
                    expires_at,
                    time.time(),
                    tx.generation(),
                    key_id,
                ),
            )
            after = self._key_row(tx, key_id)
            tx.audit(
                _actor(who),
                after["workspace_id"],
                "api_key.update",
                "api_key",
                key_id,
                before,
                after,
            )
        return after

    def revoke_key(self, who: Principal, key_id: str) -> dict[str, Any]:
        self._admin(who)
        with self._tx() as tx:
            before = self._key_row(tx, key_id)
            if before["status"] == "active":
                tx.run(
                    "UPDATE api_keys SET revoked_at = ?, updated_at = ?, gen = ? WHERE id = ?",
                    (time.time(), time.time(), tx.generation(), key_id),
                )
            after = self._key_row(tx, key_id)
            tx.audit(
                _actor(who),
                after["workspace_id"],
                "api_key.revoke",
                "api_key",
                key_id,
                before,
                after,
            )
        return after

    def keys_exist(self) -> bool:
        with self._read() as tx:
            return tx.one("SELECT 1 AS x FROM api_keys") is not None

    # ---- configs ------------------------------------------------------------------------

    def _config_row(self, tx: Tx, who: Principal, slug: str) -> dict[str, Any]:
        row = tx.one(
            "SELECT c.*, v.config AS body, v.number, v.created_by_id, v.created_by_name"
            " FROM configs c LEFT JOIN config_versions v ON v.id = c.current_version"
            " WHERE c.slug = ? AND c.deleted_at IS NULL",
            (slug,),
        )
        if row is None or not who.may_use_workspace(row["workspace"]):
            raise NotFoundError(f"no config {slug!r}")
        return row

    def _check_config(self, config: Any, workspace: str) -> dict[str, Any]:
        if not isinstance(config, dict):
            raise BadRequestError(
                "'config' must be a JSON object (a Portkey config)", param="config"
            )
        self.validate(config, workspace)
        return config

    def _write_version(
        self,
        tx: Tx,
        who: Principal,
        config_id: str,
        config: dict[str, Any],
        name: str,
        message: str | None,
        rollback_of: str | None = None,
    ) -> tuple[str, int]:
        last = tx.one(
            "SELECT MAX(number) AS n FROM config_versions WHERE config_id = ?", (config_id,)
        )
        number = int(last["n"] or 0) + 1 if last else 1
        version_id = new_id()
        tx.run(
            "INSERT INTO config_versions (id, config_id, number, config, name, message,"
            " created_at, created_by_id, created_by_name, rollback_of, gen)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                version_id,
                config_id,
                number,
                dumps(config),
                name,
                message,
                time.time(),
                who.key_id,
                who.name,
                rollback_of,
                tx.generation(),
            ),
        )
        return version_id, number

    def create_config(self, who: Principal, body: Mapping[str, Any]) -> dict[str, Any]:
        name = _text(body, "name", required=True)
        assert name is not None
        message = _text(body, "message")
        is_default = body.get("is_default") or 0
        if is_default not in (0, 1, True, False):
            raise BadRequestError("'is_default' must be 0 or 1", param="is_default")
        requested_slug = body.get("slug")
        if requested_slug is not None:
            _check_slug(requested_slug, "the config slug")
        if requested_slug in self.toml_configs:
            raise ConflictError(
                f"config {requested_slug!r} is declared in plugins.toml; choose another slug",
                param="slug",
            )
        with self._tx() as tx:
            workspace = self._workspace(tx, who, body.get("workspace_id"))
            self._writer(who, workspace, "configs")
            config = self._check_config(body.get("config"), workspace)
            slug = requested_slug or f"pc-{_slugify(name)}-{secrets.token_hex(3)}"
            existing = tx.one(
                "SELECT id, deleted_at, workspace FROM configs WHERE slug = ?", (slug,)
            )
            now = time.time()
            if existing is not None and existing["deleted_at"] is None:
                raise ConflictError(f"a config {slug!r} exists already", param="slug")
            if existing is not None:
                # A deleted slug comes back with its history (never rewritten).
                config_id = existing["id"]
                tx.run(
                    "UPDATE configs SET workspace = ?, name = ?, is_default = ?,"
                    " status = 'active', deleted_at = NULL, updated_at = ?, gen = ? WHERE id = ?",
                    (workspace, name, int(bool(is_default)), now, tx.generation(), config_id),
                )
            else:
                config_id = new_id()
                tx.run(
                    "INSERT INTO configs (id, slug, workspace, name, is_default, status,"
                    " created_at, updated_at, created_by, gen)"
                    " VALUES (?, ?, ?, ?, ?, 'active', ?, ?, ?, ?)",
                    (
                        config_id,
                        slug,
                        workspace,
                        name,
                        int(bool(is_default)),
                        now,
                        now,
                        who.key_id,
                        tx.generation(),
                    ),
                )
            version_id, _ = self._write_version(tx, who, config_id, config, name, message)
            tx.run("UPDATE configs SET current_version = ? WHERE id = ?", (version_id, config_id))
            after = _config_view(self._config_row(tx, who, slug))
            tx.audit(_actor(who), workspace, "config.create", "config", slug, None, after)
        return after

    def get_config(self, who: Principal, slug: str) -> dict[str, Any]:
        with self._read() as tx:
            return _config_view(self._config_row(tx, who, slug))

    def list_configs(self, who: Principal, workspace: str | None = None) -> list[dict[str, Any]]:
        with self._read() as tx:
            sql = (
                "SELECT c.*, v.config AS body, v.number, v.created_by_id, v.created_by_name"
                " FROM configs c LEFT JOIN config_versions v ON v.id = c.current_version"
                " WHERE c.deleted_at IS NULL"
            )
            if workspace or who.role != "admin":
                slug = self._workspace(tx, who, workspace)
                rows = tx.all(sql + " AND c.workspace = ? ORDER BY c.created_at", (slug,))
            else:
                rows = tx.all(sql + " ORDER BY c.created_at")
        return [_config_view(r) for r in rows]

    def update_config(self, who: Principal, slug: str, body: Mapping[str, Any]) -> dict[str, Any]:
        name = _text(body, "name")
        message = _text(body, "message")
        status = body.get("status")
        if status is not None and status not in ("active", "archived"):
            raise BadRequestError(
                f"status must be 'active' or 'archived', not {status!r}", param="status"
            )
        base = body.get("base_version_id") or body.get("version_id")
        if base is not None and not isinstance(base, str):
            raise BadRequestError("'base_version_id' must be a version id", param="base_version_id")
        with self._tx() as tx:
            row = self._config_row(tx, who, slug)
            self._writer(who, row["workspace"], "configs")
            if base is not None and base != row["current_version"]:
                raise ConflictError(
                    f"config {slug!r} changed since version {base}: its current version is "
                    f"{row['current_version']} (number {row['number']}); re-read and retry",
                    code="stale_version",
                    param="base_version_id",
                )
            before = _config_view(row)
            config = (
                self._check_config(body["config"], row["workspace"])
                if body.get("config") is not None
                else loads(row["body"])
            )
            new_name = name or row["name"]
            version_id, _ = self._write_version(tx, who, row["id"], config, new_name, message)
            tx.run(
                "UPDATE configs SET name = ?, status = COALESCE(?, status), current_version = ?,"
                " updated_at = ?, gen = ? WHERE id = ?",
                (new_name, status, version_id, time.time(), tx.generation(), row["id"]),
            )
            after = _config_view(self._config_row(tx, who, slug))
            tx.audit(_actor(who), row["workspace"], "config.update", "config", slug, before, after)
        return after

    def delete_config(self, who: Principal, slug: str) -> None:
        with self._tx() as tx:
            row = self._config_row(tx, who, slug)
            self._writer(who, row["workspace"], "configs")
            tx.run(
                "UPDATE configs SET deleted_at = ?, gen = ? WHERE id = ?",
                (time.time(), tx.generation(), row["id"]),
            )
            tx.audit(
                _actor(who), row["workspace"], "config.delete", "config", slug, _config_view(row)
            )

    def versions(self, who: Principal, slug: str) -> list[dict[str, Any]]:
        with self._read() as tx:
            row = self._config_row(tx, who, slug)
            rows = tx.all(
                "SELECT * FROM config_versions WHERE config_id = ? ORDER BY number DESC",
                (row["id"],),
            )
        return [_version_view(v, slug, row["current_version"]) for v in rows]

    def _version(self, tx: Tx, config: dict[str, Any], ref: Any) -> dict[str, Any]:
        if not isinstance(ref, str | int) or isinstance(ref, bool) or ref == "":
            raise BadRequestError("'version_id' must be a version id or number", param="version_id")
        ref = str(ref)
        if ref.isdigit():
            row = tx.one(
                "SELECT * FROM config_versions WHERE config_id = ? AND number = ?",
                (config["id"], int(ref)),
            )
        else:
            row = tx.one(
                "SELECT * FROM config_versions WHERE config_id = ? AND id = ?", (config["id"], ref)
            )
        if row is None:
            raise NotFoundError(
                f"config {config['slug']!r} has no version {ref!r}", param="version_id"
            )
        return row

    def get_version(self, who: Principal, slug: str, ref: str) -> dict[str, Any]:
        with self._read() as tx:
            row = self._config_row(tx, who, slug)
            return _version_view(self._version(tx, row, ref), slug, row["current_version"])

    def rollback(self, who: Principal, slug: str, body: Mapping[str, Any]) -> dict[str, Any]:
        message = _text(body, "message")
        with self._tx() as tx:
            row = self._config_row(tx, who, slug)
            self._writer(who, row["workspace"], "configs")
            target = self._version(tx, row, body.get("version_id"))
            before = _config_view(row)
            config = loads(target["config"])
            # Still valid? A provider or virtual key it names may have gone since.
            self._check_config(config, row["workspace"])
            version_id, _ = self._write_version(
                tx,
                who,
                row["id"],
                config,
                target["name"],
                message or f"rollback to version {target['number']}",
                rollback_of=target["id"],
            )
            tx.run(
                "UPDATE configs SET name = ?, current_version = ?, updated_at = ?, gen = ?"
                " WHERE id = ?",
                (target["name"], version_id, time.time(), tx.generation(), row["id"]),
            )
            after = _config_view(self._config_row(tx, who, slug))
            after["rolled_back_to"] = target["id"]
            tx.audit(
                _actor(who), row["workspace"], "config.rollback", "config", slug, before, after
            )
        return after

    def diff(self, who: Principal, slug: str, old: str | None, new: str | None) -> dict[str, Any]:
        with self._read() as tx:
            row = self._config_row(tx, who, slug)
            to_row = self._version(tx, row, new) if new else self._version(tx, row, row["number"])
            if old:
                from_row = self._version(tx, row, old)
            elif int(to_row["number"]) > 1:
                from_row = self._version(tx, row, int(to_row["number"]) - 1)
            else:
                from_row = to_row
        before, after = loads(from_row["config"]), loads(to_row["config"])
        changes = list(_changes(before, after, "config"))
        left = orjson.dumps(before, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
        right = orjson.dumps(after, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
        unified = "".join(
            difflib.unified_diff(
                left.splitlines(keepends=True),
                right.splitlines(keepends=True),
                f"{slug}@{from_row['number']}",
                f"{slug}@{to_row['number']}",
            )
        )
        return {
            "object": "config.diff",
            "slug": slug,
            "from": {"version_id": from_row["id"], "version": from_row["number"]},
            "to": {"version_id": to_row["id"], "version": to_row["number"]},
            "changes": changes,
            "unified": unified,
        }

    def export(self, who: Principal, workspace: str | None = None) -> dict[str, Any]:
        configs = self.list_configs(who, workspace)
        return {
            "object": "config.export",
            "exported_at": iso(time.time()),
            "configs": [
                {
                    "slug": c["slug"],
                    "name": c["name"],
                    "workspace_id": c["workspace_id"],
                    "config": c["config"],
                }
                for c in configs
            ],
        }

    def import_(self, who: Principal, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create or update each config of an export (a new version only when it changed).
        Every config is checked before anything is written; one transaction for all."""
        items = body.get("configs")
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise BadRequestError("'configs' must be a list of configs", param="configs")
        message = _text(body, "message") or "import"
        results: list[dict[str, Any]] = []
        with self._tx() as tx:
            for index, item in enumerate(items):
                slug = _check_slug(item.get("slug"), f"configs[{index}].slug")
                if slug in self.toml_configs:
                    raise ConflictError(
                        f"configs[{index}]: {slug!r} is declared in plugins.toml", param="configs"
                    )
                name = _text(item, "name") or slug
                workspace = self._workspace(tx, who, item.get("workspace_id"))
                self._writer(who, workspace, "configs")
                try:
                    config = self._check_config(item.get("config"), workspace)
                except GatewayError as exc:
                    exc.message = f"configs[{index}] ({slug}): {exc.message}"
                    raise
                existing = tx.one(
                    "SELECT c.*, v.config AS body FROM configs c LEFT JOIN config_versions v"
                    " ON v.id = c.current_version WHERE c.slug = ?",
                    (slug,),
                )
                if existing is not None and existing["deleted_at"] is None:
                    if not who.may_use_workspace(existing["workspace"]):
                        raise ConflictError(f"configs[{index}]: {slug!r} is taken", param="configs")
                    if existing["workspace"] != workspace:
                        raise ConflictError(
                            f"configs[{index}]: {slug!r} belongs to workspace "
                            f"{existing['workspace']!r}",
                            param="configs",
                        )
                    if loads(existing["body"]) == config and existing["name"] == name:
                        results.append({"slug": slug, "action": "unchanged"})
                        continue
                    version_id, _ = self._write_version(
                        tx, who, existing["id"], config, name, message
                    )
                    tx.run(
                        "UPDATE configs SET name = ?, current_version = ?, updated_at = ?,"
                        " gen = ? WHERE id = ?",
                        (name, version_id, time.time(), tx.generation(), existing["id"]),
                    )
                    action = "updated"
                else:
                    now = time.time()
                    if existing is not None:
                        config_id = existing["id"]
                        tx.run(
                            "UPDATE configs SET workspace = ?, name = ?, status = 'active',"
                            " deleted_at = NULL, updated_at = ?, gen = ? WHERE id = ?",
                            (workspace, name, now, tx.generation(), config_id),
                        )
                    else:
                        config_id = new_id()
                        tx.run(
                            "INSERT INTO configs (id, slug, workspace, name, is_default, status,"
                            " created_at, updated_at, created_by, gen)"
                            " VALUES (?, ?, ?, ?, 0, 'active', ?, ?, ?, ?)",
                            (
                                config_id,
                                slug,
                                workspace,
                                name,
                                now,
                                now,
                                who.key_id,
                                tx.generation(),
                            ),
                        )
                    version_id, _ = self._write_version(tx, who, config_id, config, name, message)
                    tx.run(
                        "UPDATE configs SET current_version = ? WHERE id = ?",
                        (version_id, config_id),
                    )
                    action = "created"
                results.append({"slug": slug, "action": action, "version_id": version_id})
                tx.audit(
                    _actor(who),
                    workspace,
                    f"config.import.{action}",
                    "config",
                    slug,
                    None,
                    {"slug": slug, "version_id": version_id, "config": config},
                )
        return {"object": "config.import", "results": results}

    # ---- virtual keys -------------------------------------------------------------------

    def _vkey_row(self, tx: Tx, who: Principal, slug: str) -> dict[str, Any]:
        row = tx.one("SELECT * FROM virtual_keys WHERE slug = ? AND deleted_at IS NULL", (slug,))
        if row is None or not who.may_use_workspace(row["workspace"]):
            raise NotFoundError(f"no virtual key {slug!r}")
        return row

    def _vkey_options(self, body: Mapping[str, Any]) -> dict[str, Any]:
        options: dict[str, Any] = {}
        for name, value in body.items():
            if name in _VKEY_FIELDS or value is None:
                continue
            options[_PROVIDER_FIELDS.get(name, name)] = value
        options.pop("custom_host", None)
        return options

    def create_virtual_key(self, who: Principal, body: Mapping[str, Any]) -> dict[str, Any]:
        name = _text(body, "name", required=True)
        provider = _text(body, "provider", required=True)
        assert name is not None and provider is not None
        secret = _text(body, "key")
        note = _text(body, "note")
        custom_host = _text(body, "custom_host") or _text(body, "customHost")
        usage_limits = _object(body, "usage_limits")
        rate_limits = _list_of_objects(body, "rate_limits")
        options = self._vkey_options(body)
        requested = body.get("slug")
        if requested is not None:
            _check_slug(requested, "the virtual key slug")
        if requested in self.toml_virtual_keys:
            raise ConflictError(
                f"virtual key {requested!r} is declared in plugins.toml; choose another slug",
                param="slug",
            )
        master = self._sealing_key("storing a virtual key") if secret else None
        with self._tx() as tx:
            workspace = self._workspace(tx, who, body.get("workspace_id"))
            self._writer(who, workspace, "virtual keys")
            target: dict[str, Any] = {"provider": provider, **options}
            if custom_host:
                target["custom_host"] = custom_host
            self.validate(target, workspace)
            slug = requested or f"{_slugify(name)}-{secrets.token_hex(3)}"
            if tx.one("SELECT 1 AS x FROM virtual_keys WHERE slug = ?", (slug,)):
                raise ConflictError(f"a virtual key {slug!r} exists already", param="slug")
            row_id = new_id()
            now = time.time()
            tx.run(
                "INSERT INTO virtual_keys (id, slug, workspace, name, provider, note, secret,"
                " key_id, hint, custom_host, options, usage_limits, rate_limits, status,"
                " created_at, updated_at, created_by, gen)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'active', ?, ?, ?, ?)",
                (
                    row_id,
                    slug,
                    workspace,
                    name,
                    provider,
                    note,
                    master.seal(secret, row_id) if master and secret else None,
                    master.id if master else None,
                    hint(secret) if secret else None,
                    custom_host,
                    dumps(options),
                    dumps(usage_limits),
                    dumps(rate_limits),
                    now,
                    now,
                    who.key_id,
                    tx.generation(),
                ),
            )
            after = _vkey_view(self._vkey_row(tx, who, slug))
            tx.audit(_actor(who), workspace, "virtual_key.create", "virtual_key", slug, None, after)
        return after

    def get_virtual_key(self, who: Principal, slug: str) -> dict[str, Any]:
        with self._read() as tx:
            return _vkey_view(self._vkey_row(tx, who, slug))

    def list_virtual_keys(
        self, who: Principal, workspace: str | None = None
    ) -> list[dict[str, Any]]:
        with self._read() as tx:
            if workspace or who.role != "admin":
                slug = self._workspace(tx, who, workspace)
                rows = tx.all(
                    "SELECT * FROM virtual_keys WHERE deleted_at IS NULL AND workspace = ?"
                    " ORDER BY created_at",
                    (slug,),
                )
            else:
                rows = tx.all(
                    "SELECT * FROM virtual_keys WHERE deleted_at IS NULL ORDER BY created_at"
                )
        return [_vkey_view(r) for r in rows]

    def update_virtual_key(
        self, who: Principal, slug: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        name = _text(body, "name")
        secret = _text(body, "key")
        note = _text(body, "note")
        custom_host = _text(body, "custom_host")
        usage_limits = _object(body, "usage_limits")
        rate_limits = _list_of_objects(body, "rate_limits")
        options = self._vkey_options({k: v for k, v in body.items() if k != "provider"})
        master = self._sealing_key("storing a virtual key") if secret else None
        with self._tx() as tx:
            row = self._vkey_row(tx, who, slug)
            self._writer(who, row["workspace"], "virtual keys")
            before = _vkey_view(row)
            merged = {**(loads(row["options"]) or {}), **options}
            target: dict[str, Any] = {"provider": row["provider"], **merged}
            if custom_host or row["custom_host"]:
                target["custom_host"] = custom_host or row["custom_host"]
            self.validate(target, row["workspace"])
            sealed = master.seal(secret, row["id"]) if master and secret else None
            tx.run(
                "UPDATE virtual_keys SET name = COALESCE(?, name), note = COALESCE(?, note),"
                " secret = COALESCE(?, secret), key_id = COALESCE(?, key_id),"
                " hint = COALESCE(?, hint), custom_host = COALESCE(?, custom_host),"
                " options = ?, usage_limits = COALESCE(?, usage_limits),"
                " rate_limits = COALESCE(?, rate_limits), updated_at = ?, gen = ? WHERE id = ?",
                (
                    name,
                    note,
                    sealed,
                    master.id if master is not None and sealed else None,
                    hint(secret) if secret else None,
                    custom_host,
                    dumps(merged),
                    dumps(usage_limits),
                    dumps(rate_limits),
                    time.time(),
                    tx.generation(),
                    row["id"],
                ),
            )
            after = _vkey_view(self._vkey_row(tx, who, slug))
            tx.audit(
                _actor(who),
                row["workspace"],
                "virtual_key.update",
                "virtual_key",
                slug,
                before,
                after,
            )
        return after

    def delete_virtual_key(self, who: Principal, slug: str) -> None:
        with self._tx() as tx:
            row = self._vkey_row(tx, who, slug)
            self._writer(who, row["workspace"], "virtual keys")
            tx.run(
                "UPDATE virtual_keys SET deleted_at = ?, secret = NULL, gen = ? WHERE id = ?",
                (time.time(), tx.generation(), row["id"]),
            )
            tx.audit(
                _actor(who),
                row["workspace"],
                "virtual_key.delete",
                "virtual_key",
                slug,
                _vkey_view(row),
                None,
            )

    def rotate_master_key(self, who: Principal, new_text: str | None) -> tuple[MasterKey, int]:
        """Re-seal every provider key under a new master key, in one transaction. With a key
        file, the file is replaced once the transaction committed; with the environment, the
        operator sets the new key (``new_text``) before restarting."""
        self._admin(who)
        old = self._sealing_key("rotating the master key")
        new = MasterKey.from_text(new_text, "the new master key") if new_text else None
        text = new_text
        if new is None:
            from .crypto import generate_key

            text = generate_key()
            new = MasterKey.from_text(text, str(self.master_key_file))
        assert text is not None
        if new.id == old.id:
            raise ConflictError("the new master key is the current one")
        pending = self.master_key_file.with_name(self.master_key_file.name + ".pending")
        from_file = old.source == str(self.master_key_file)
        if from_file:
            # Written first: if the transaction commits and the rename below never happens,
            # the key that opens the rows is still on disk.
            write_key_file(pending, text)
        count = 0
        with self._tx() as tx:
            rows = tx.all("SELECT id, secret, key_id FROM virtual_keys WHERE secret IS NOT NULL")
            for row in rows:
                if row["key_id"] == new.id:
                    continue
                plain = old.open(bytes(row["secret"]), row["id"])
                tx.run(
                    "UPDATE virtual_keys SET secret = ?, key_id = ?, gen = ? WHERE id = ?",
                    (new.seal(plain, row["id"]), new.id, tx.generation(), row["id"]),
                )
                count += 1
            tx.audit(
                _actor(who),
                None,
                "master_key.rotate",
                "master_key",
                new.id,
                {"key_id": old.id},
                {"key_id": new.id, "resealed": count},
            )
        if from_file:
            pending.replace(self.master_key_file)
        return new, count

    # ---- audit --------------------------------------------------------------------------

    def audit_log(
        self, who: Principal, workspace: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        if who.role == "viewer":
            raise PermissionDeniedError("a viewer key cannot read the audit log")
        with self._read() as tx:
            if workspace or who.role != "admin":
                slug = self._workspace(tx, who, workspace)
                rows = tx.all(
                    "SELECT * FROM audit WHERE workspace = ? ORDER BY id DESC LIMIT ?",
                    (slug, limit),
                )
            else:
                rows = tx.all("SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,))
        return [
            {
                "id": r["id"],
                "object": "audit_log",
                "created_at": iso(r["ts"]),
                "actor": {"id": r["actor_id"], "name": r["actor_name"]},
                "workspace_id": r["workspace"],
                "action": r["action"],
                "resource_type": r["resource_type"],
                "resource_id": r["resource_id"],
                "before": loads(r["before"]),
                "after": loads(r["after"]),
            }
            for r in rows
        ]


_CLI = Principal(key_id="cli", name="hookgate CLI", role="admin", source="cli")


class _Guard:
    """A store transaction whose unavailability is the client's 503."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __enter__(self) -> Tx:
        try:
            return self.inner.__enter__()
        except StoreUnavailable as exc:
            raise UnavailableError(
                "the control-plane store is unavailable; try again shortly "
                "(requests are still served from the last snapshot)",
                code="store_unavailable",
            ) from exc

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            return self.inner.__exit__(*exc_info)
        except StoreUnavailable as exc:
            raise UnavailableError(
                "the control-plane store is unavailable; the change was not saved",
                code="store_unavailable",
            ) from exc


def _workspace_view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["slug"],
        "uuid": row["id"],
        "slug": row["slug"],
        "name": row["name"],
        "description": row["description"],
        "defaults": loads(row["defaults"]),
        "created_at": iso(row["created_at"]),
        "last_updated_at": iso(row["updated_at"]),
        "is_default": int(row["slug"] == DEFAULT_WORKSPACE),
        "object": "workspace",
    }


def _key_view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "key": row["hint"],
        "name": row["name"],
        "description": row["description"],
        "type": f"{row['type']}-{row['sub_type']}",
        "workspace_id": row["workspace"],
        "role": row["role"],
        "scopes": loads(row["scopes"]),
        "rate_limits": loads(row["rate_limits"]),
        "usage_limits": loads(row["usage_limits"]),
        "defaults": loads(row["defaults"]),
        "status": "active" if row["revoked_at"] is None else "revoked",
        "created_at": iso(row["created_at"]),
        "last_updated_at": iso(row["updated_at"]),
        "expires_at": iso(row["expires_at"]),
        "creation_mode": "api",
        "object": "api-key",
    }


def _config_view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "slug": row["slug"],
        "name": row["name"],
        "workspace_id": row["workspace"],
        "config": loads(row["body"]),
        "is_default": row["is_default"],
        "status": row["status"],
        "owner_id": row["created_by"],
        "created_at": iso(row["created_at"]),
        "updated_by": row.get("created_by_id"),
        "last_updated_at": iso(row["updated_at"]),
        "version_id": row["current_version"],
        "version": row.get("number"),
        "format": "json",
        "type": "ORG_CONFIG",
        "object": "config",
    }


def _version_view(row: dict[str, Any], slug: str, current: str | None) -> dict[str, Any]:
    return {
        "version_id": row["id"],
        "version": row["number"],
        "slug": slug,
        "name": row["name"],
        "config": loads(row["config"]),
        "message": row["message"],
        "created_at": iso(row["created_at"]),
        "created_by": row["created_by_id"],
        "created_by_name": row["created_by_name"],
        "rollback_of": row["rollback_of"],
        "is_current": row["id"] == current,
        "object": "config.version",
    }


def _vkey_view(row: dict[str, Any]) -> dict[str, Any]:
    options = loads(row["options"]) or {}
    return {
        "id": row["id"],
        "slug": row["slug"],
        "name": row["name"],
        "provider": row["provider"],
        "note": row["note"],
        "key": row["hint"],
        "status": row["status"],
        "workspace_id": row["workspace"],
        "custom_host": row["custom_host"],
        "usage_limits": loads(row["usage_limits"]),
        "rate_limits": loads(row["rate_limits"]),
        "created_at": iso(row["created_at"]),
        "last_updated_at": iso(row["updated_at"]),
        **{k: v for k, v in options.items() if k not in ("key", "api_key")},
        "object": "virtual-key",
    }


def _changes(before: Any, after: Any, path: str) -> Iterable[dict[str, Any]]:
    """Leaf-level differences between two JSON values, with Portkey-style paths."""
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after), key=str):
            where = f"{path}.{key}"
            if key not in before:
                yield {"op": "add", "path": where, "after": after[key]}
            elif key not in after:
                yield {"op": "remove", "path": where, "before": before[key]}
            else:
                yield from _changes(before[key], after[key], where)
    elif isinstance(before, list) and isinstance(after, list):
        for index in range(max(len(before), len(after))):
            where = f"{path}[{index}]"
            if index >= len(before):
                yield {"op": "add", "path": where, "after": after[index]}
            elif index >= len(after):
                yield {"op": "remove", "path": where, "before": before[index]}
            else:
                yield from _changes(before[index], after[index], where)
    elif before != after:
        yield {"op": "replace", "path": path, "before": before, "after": after}

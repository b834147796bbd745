"""What a worker holds in memory of the store, so that requests never query it.

A :class:`Snapshot` is immutable once built; a refresh builds the next one from the rows that
changed and swaps the reference, so the request path reads one consistent state with a dict
look-up and no lock. Config versions are kept as JSON text and parsed on first use (a pinned
old version costs one parse, once).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog
from hookgate.auth import Principal
from hookgate.config import StoredConfig, parse_config
from hookgate.errors import ConfigError
from hookgate.settings import VirtualKey

from .crypto import MasterKey, MasterKeyError
from .roles import may_call
from .store import Change, loads

__all__ = ["ConfigEntry", "KeyEntry", "Snapshot", "hash_key"]

log = structlog.get_logger("hookgate.control")


def hash_key(token: str) -> str:
    """How a gateway key is stored: SHA-256 (keys are 256 random bits, so no salt or
    stretching is needed; a key chosen by a person, HOOKGATE_ADMIN_KEY, should be long)."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(slots=True)
class ConfigEntry:
    slug: str
    workspace: str
    current: str | None
    """The current version's id; None once deleted or archived."""
    versions: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    """Version id -> (number, config JSON)."""
    by_number: dict[int, str] = field(default_factory=dict)
    parsed: dict[str, StoredConfig] = field(default_factory=dict)

    def stored(self, version_id: str) -> StoredConfig:
        found = self.parsed.get(version_id)
        if found is None:
            number, text = self.versions[version_id]
            found = StoredConfig(
                self.slug, version_id, parse_config(text), self.workspace, number=number
            )
            self.parsed[version_id] = found
        return found

    def pinned(self, version: str) -> StoredConfig:
        version_id = version if version in self.versions else None
        if version_id is None and version.isdigit():
            version_id = self.by_number.get(int(version))
        if version_id is None:
            raise ConfigError(
                f"config {self.slug!r} has no version {version!r} (give a version_id or a "
                "version number from GET /v1/configs/{slug}/versions)",
                code="config_version_not_found",
            )
        return self.stored(version_id)


@dataclass(frozen=True, slots=True)
class KeyEntry:
    principal: Principal
    may_call: bool


@dataclass(frozen=True, slots=True)
class Snapshot:
    generation: int = 0
    configs: dict[str, ConfigEntry] = field(default_factory=dict)
    virtual_keys: dict[str, tuple[str, VirtualKey]] = field(default_factory=dict)
    """Slug -> (workspace, the key with its decrypted secret)."""
    keys: dict[str, KeyEntry] = field(default_factory=dict)
    """SHA-256 of an active key -> who it is."""
    keys_exist: bool = False
    """True once any gateway key was ever created (revoked ones count: revoking the last key
    must not open the gateway)."""

    def apply(self, change: Change, master: MasterKey | None) -> Snapshot:
        """The next snapshot: this one with ``change`` applied."""
        configs = self.configs
        if change.configs or change.versions:
            configs = dict(configs)
            for row in change.versions:
                entry = configs.get(row["slug"])
                if entry is None:
                    entry = configs[row["slug"]] = ConfigEntry(row["slug"], "default", None)
                text = row["config"]
                entry.versions[row["id"]] = (
                    int(row["number"]),
                    text.encode() if isinstance(text, str) else text,
                )
                entry.by_number[int(row["number"])] = row["id"]
            for row in change.configs:
                old = configs.get(row["slug"])
                entry = ConfigEntry(row["slug"], row["workspace"], None)
                if old is not None:
                    entry.versions, entry.by_number = old.versions, old.by_number
                    if old.workspace == row["workspace"]:
                        entry.parsed = old.parsed
                active = row["deleted_at"] is None and row["status"] == "active"
                entry.current = row["current_version"] if active else None
                configs[row["slug"]] = entry
        virtual_keys = self.virtual_keys
        if change.virtual_keys:
            virtual_keys = dict(virtual_keys)
            for row in change.virtual_keys:
                if row["deleted_at"] is not None or row["status"] != "active":
                    virtual_keys.pop(row["slug"], None)
                    continue
                try:
                    virtual_keys[row["slug"]] = (row["workspace"], _virtual_key(row, master))
                except MasterKeyError as exc:
                    # Keep serving the secret this worker already holds, if any.
                    log.warning("virtual_key_unreadable", slug=row["slug"], error=str(exc))
        keys = self.keys
        keys_exist = self.keys_exist or bool(change.api_keys)
        if change.api_keys:
            keys = dict(keys)
            for row in change.api_keys:
                keys.pop(row["key_hash"], None)
                if row["revoked_at"] is None:
                    principal = _principal(row)
                    keys[row["key_hash"]] = KeyEntry(principal, may_call(principal))
        return Snapshot(change.generation, configs, virtual_keys, keys, keys_exist)

    def config(self, slug: str) -> ConfigEntry | None:
        return self.configs.get(slug)


def _virtual_key(row: dict[str, Any], master: MasterKey | None) -> VirtualKey:
    api_key = None
    if row["secret"] is not None:
        if master is None or master.id != row["key_id"]:
            raise MasterKeyError("sealed with another master key than this worker holds")
        api_key = master.open(bytes(row["secret"]), row["id"])
    options = orjson.loads(row["options"]) if row["options"] else {}
    return VirtualKey(
        provider=row["provider"], api_key=api_key, custom_host=row["custom_host"], **options
    )


def _principal(row: dict[str, Any]) -> Principal:
    return Principal(
        key_id=row["id"],
        name=row["name"],
        workspace=row["workspace"],
        role=row["role"],
        scopes=frozenset(loads(row["scopes"]) or ()),
        rate_limits=tuple(loads(row["rate_limits"]) or ()),
        usage_limits=loads(row["usage_limits"]) or {},
        expires_at=row["expires_at"],
        source="control",
    )

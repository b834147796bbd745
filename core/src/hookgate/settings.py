"""plugins.toml: which plugins a deployment enables, their settings, and the core's own tables.

::

    [gateway]                 # the core: enabled plugins (in hook order), defaults
    [server]                  # `hookgate serve`
    [virtual_keys.<id>]       # id -> provider + key (from the environment)
    [configs.<id>]            # named per-request configs, Portkey's schema
    [plugins.<name>]          # a plugin's settings, validated by the plugin's own model

String values may use ``${VAR}`` and ``${VAR:-default}``; a variable that is unset and has no
default is an error naming the key. The file is found via ``--config``, ``HOOKGATE_CONFIG`` or
``./plugins.toml``.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .config import Config, format_validation_error
from .errors import ConfigError, SettingsError

__all__ = [
    "GatewaySettings",
    "ServerSettings",
    "Settings",
    "VirtualKey",
    "find_settings_file",
    "load_settings",
]

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


class _Table(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)


class GatewaySettings(_Table):
    plugins: list[str] = Field(default_factory=lambda: ["mock"])
    """Enabled plugins, by entry-point name or under [plugins.<name>] with ``use``.
    Hooks run in this order (except where a plugin pins itself first or last)."""
    default_provider: str | None = None
    """Provider for requests that name neither a provider nor a config."""
    custom_hosts: list[str] = Field(default_factory=lambda: list(LOOPBACK_HOSTS))
    """Hosts a request's ``custom_host`` may point at: a bare host allows its every port,
    ``http://host:port`` exactly that origin, ``"*"`` any host. A server bound to a
    non-loopback address allows none unless this is set in plugins.toml."""
    refused_ports: list[Annotated[int, Field(ge=1, le=65535)]] = Field(
        default_factory=lambda: [6379, 5432]
    )
    """Ports a custom host may never use (Redis's and PostgreSQL's by default), besides the
    gateway's own port and the ports of the backends its plugins use."""
    secret: str | None = Field(default=None, repr=False)
    """The deployment secret (keyed hashes such as cache partitions); else ``$HOOKGATE_SECRET``,
    else a random one generated once and kept in ``hookgate.secret`` beside plugins.toml."""
    timeout: Annotated[float, Field(gt=0)] = 600.0
    """Seconds a request may take until its answer starts, unless its config says otherwise."""


class ServerSettings(_Table):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8787
    workers: Annotated[int, Field(ge=0)] = 0
    """0 means one worker per CPU core."""
    api_keys: list[str] = Field(default_factory=list, repr=False)
    """Gateway keys accepted in ``x-portkey-api-key``; empty means no gateway auth."""
    api_key_in_authorization: bool = False
    """Also accept a gateway key as ``Authorization: Bearer`` (provider keys then come
    from configs or virtual keys)."""
    max_body_bytes: Annotated[int, Field(gt=0)] = 10 * 1024 * 1024
    graceful_shutdown_s: Annotated[float, Field(ge=0)] = 30.0
    cors_origins: list[str] = Field(default_factory=list)
    """Browser origins allowed to call the gateway (``https://app.example.com``; ``*``: any).
    Empty (the default): no CORS headers, preflights are 405."""
    cors_max_age: Annotated[int, Field(ge=0)] = 600
    """Seconds a browser may cache a preflight's answer."""
    open_paths: list[str] = Field(default_factory=list)
    """GET paths answered without a gateway key (e.g. ``["/metrics"]`` for a scraper that
    cannot send one). ``/health`` and the short form of ``/ready`` are always open."""
    header_timeout_s: Annotated[float, Field(gt=0)] = 10.0
    """A connection must deliver a request's complete headers this soon after it opened (or
    after its previous answer); else it gets a 408 and is closed."""
    body_timeout_s: Annotated[float, Field(gt=0)] = 30.0
    """A request's body must be complete this soon after its headers."""
    keep_alive_timeout_s: Annotated[float, Field(gt=0)] = 5.0
    """An idle keep-alive connection is closed after this long."""
    max_connections: Annotated[int, Field(ge=1)] = 1000
    """Open connections per worker. At the limit, the connection idle (or still sending its
    headers) the longest is closed to make room; with none such, the new one gets a 503."""


class VirtualKey(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="allow", frozen=True)

    provider: str
    api_key: str | None = Field(default=None, repr=False)
    custom_host: str | None = None
    allow_caller_host: bool = False
    """Send this key to a custom host the request chooses (within ``custom_hosts``); by
    default the key goes only to ``custom_host`` here or the provider's own host."""

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.__pydantic_extra__ or {})


class Settings(BaseModel):
    """The whole file, validated. Plugin tables stay raw here; each plugin validates its own."""

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)

    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    virtual_keys: dict[str, VirtualKey] = Field(default_factory=dict)
    configs: dict[str, Config] = Field(default_factory=dict)
    plugins: dict[str, dict[str, Any]] = Field(default_factory=dict)
    source: str = "<defaults>"
    """Where these settings came from, for error messages."""

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str = "<dict>") -> Settings:
        data = _interpolate(dict(data), source, "")
        try:
            return cls.model_validate({**data, "source": source})
        except ValidationError as exc:
            raise SettingsError(f"{source}: {format_validation_error(exc, '')}") from exc

    def named_config(self, config_id: str) -> Config:
        try:
            return self.configs[config_id]
        except KeyError:
            known = ", ".join(sorted(self.configs)) or "none are declared"
            raise ConfigError(
                f"unknown config id {config_id!r} (configs in plugins.toml: {known})",
                code="config_not_found",
            ) from None


def find_settings_file(path: str | os.PathLike[str] | None = None) -> Path | None:
    """``path``, else ``$HOOKGATE_CONFIG``, else ``./plugins.toml`` if it exists."""
    if path is not None:
        return Path(path)
    if env := os.environ.get("HOOKGATE_CONFIG"):
        return Path(env)
    default = Path("plugins.toml")
    return default if default.is_file() else None


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Read and validate plugins.toml (see :func:`find_settings_file`); defaults if none."""
    found = find_settings_file(path)
    if found is None:
        return Settings()
    try:
        text = found.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"cannot read {found}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{found}: not valid TOML: {exc}") from exc
    return Settings.from_mapping(data, source=str(found))


_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _interpolate(value: Any, source: str, where: str) -> Any:
    if isinstance(value, str):
        if "${" not in value:
            return value

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            found = os.environ.get(name)
            if found is not None:
                return found
            if default is not None:
                return default
            raise SettingsError(
                f"{source}: {where.lstrip('.')} needs the environment variable {name}, "
                f"which is not set (write ${{{name}:-default}} to give a default)"
            )

        return _VARIABLE.sub(substitute, value)
    if isinstance(value, dict):
        return {k: _interpolate(v, source, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, source, f"{where}[{i}]") for i, v in enumerate(value)]
    return value

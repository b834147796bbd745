"""The per-request config, in Portkey's schema.

A config arrives as a dict (embedded API), a JSON string (``x-portkey-config``) or the id of a
config declared in plugins.toml. Keys may be snake_case (Portkey's docs) or camelCase (what some
SDKs send). Blocks the core itself understands (strategy, targets, keys, hosts) are typed
strictly; provider-specific target fields (Azure's ``resource_name``, ...) are kept in
``Target.options`` for the provider plugin to read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from .errors import ConfigError

__all__ = [
    "CacheConfig",
    "Config",
    "RetryConfig",
    "StoredConfig",
    "StrategyConfig",
    "TargetConfig",
    "format_validation_error",
    "parse_config",
    "split_config_id",
]


class _Block(BaseModel):
    model_config = ConfigDict(
        defer_build=True,
        extra="forbid",
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        frozen=True,
    )


StatusCode = Annotated[int, Field(ge=100, le=599)]


class RetryConfig(_Block):
    """``retry``: how often to call a target again after a failure (Portkey semantics:
    ``attempts`` retries after the first call). Unset fields take the defaults of the enabled
    retry policy (a plugin's settings)."""

    attempts: Annotated[int, Field(ge=0)] | None = None
    on_status_codes: list[StatusCode] | None = None
    use_retry_after_header: bool | None = None


class CacheConfig(_Block):
    """``cache``: answer from a cache. ``max_age`` is in seconds."""

    mode: str = "simple"
    """A cache mode an enabled plugin declares (``cache_modes``): ``simple`` (exact match,
    Portkey's default), ``semantic``, ..."""
    max_age: Annotated[float, Field(gt=0)] | None = None


class StrategyConfig(_Block):
    """``strategy``: how a group of targets is used."""

    mode: str = "single"
    """``single`` or a mode an enabled plugin declares (``strategies``): ``fallback``,
    ``loadbalance``, ..."""
    on_status_codes: list[StatusCode] | None = None


class TargetConfig(BaseModel):
    """A target: a provider to call, or (with ``targets``) a nested group."""

    model_config = ConfigDict(
        defer_build=True,
        extra="allow",
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        frozen=True,
    )

    provider: str | None = None
    api_key: str | None = Field(default=None, repr=False)
    virtual_key: str | None = None
    custom_host: str | None = None
    override_params: dict[str, Any] | None = None
    weight: Annotated[float, Field(ge=0)] | None = None
    retry: RetryConfig | None = None
    cache: CacheConfig | None = None
    strategy: StrategyConfig | None = None
    targets: list[TargetConfig] | None = None
    request_timeout: Annotated[float, Field(gt=0)] | None = None
    """Milliseconds, as in Portkey."""
    forward_headers: list[str] | None = None

    @property
    def options(self) -> dict[str, Any]:
        """Fields the core does not know: provider-specific settings."""
        return dict(self.__pydantic_extra__ or {})


class Config(TargetConfig):
    """The top level of a config: a target or a group, plus request-wide settings."""


@dataclass(frozen=True, slots=True)
class StoredConfig:
    """A config a plugin holds (the control plane's store), as ``resolve_config`` answers.

    One immutable version of it: a request that used it names ``slug`` and ``version`` in
    its log record, and the routing plan built from it is reused until the version changes.
    """

    slug: str
    version: str
    """The version's id (unique across the store)."""
    config: Config
    workspace: str = "default"
    number: int | None = None
    """The version's position in the config's history (1, 2, ...), when the store counts."""


def split_config_id(config_id: str) -> tuple[str, str | None]:
    """``pc-abc@3`` -> ``("pc-abc", "3")``: a config id and the version it pins, if any."""
    slug, at, version = config_id.strip().partition("@")
    return slug, (version or None) if at else None


def format_validation_error(exc: ValidationError, root: str) -> str:
    """``config.targets[1].weight: Input should be ...`` for the first few problems."""
    parts = []
    for error in exc.errors()[:5]:
        where = root
        for item in error["loc"]:
            where += f"[{item}]" if isinstance(item, int) else f".{item}"
        parts.append(f"{where.lstrip('.')}: {error['msg']}")
    more = len(exc.errors()) - len(parts)
    if more > 0:
        parts.append(f"... and {more} more")
    return "; ".join(parts)


def parse_config(value: Config | dict[str, Any] | str | bytes) -> Config:
    """Validate an inline config (a dict or a JSON text) into a :class:`Config`."""
    if isinstance(value, Config):
        return value
    if isinstance(value, str | bytes):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise ConfigError(f"config is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ConfigError(f"config must be a JSON object, not {type(value).__name__}")
    try:
        return Config.model_validate(value)
    except ValidationError as exc:
        raise ConfigError(f"invalid config: {format_validation_error(exc, 'config')}") from exc

"""hookgate-cache: exact-match response cache, in memory or in Redis.

A request is cached when its config asks for it (Portkey's ``cache: {mode, max_age}``, with
``max_age`` in seconds) or when plugins.toml sets ``default_mode``. Identical requests (see
:mod:`hookgate_cache.keys` for what "identical" covers) are answered from the cache, streams
replayed as well-formed SSE. ``x-portkey-cache-status`` says what happened: ``HIT``, ``MISS``,
``REFRESH`` (``x-portkey-cache-force-refresh``: skip the lookup, store the fresh answer) or
``DISABLED``.

For ``mode: semantic`` this plugin answers exact matches first; on a miss it leaves the status
to the semantic cache plugin, which runs after it.

::

    [plugins.cache]
    backend = "redis"                    # "memory" (default): one process; "redis": shared
    url = "redis://127.0.0.1:6379/0"
    # default_mode = "simple"            # cache every request, not only those that ask
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import structlog
from hookgate import (
    Gateway,
    RequestContext,
    Response,
    SettingsError,
    StreamResponse,
    hookimpl,
)
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .backends import Backend, MemoryBackend, RedisBackend
from .entries import Entry, stream_failed
from .keys import Unkeyable, cache_key

__all__ = ["CacheSettings", "Plugin", "Settings"]

log = structlog.get_logger("hookgate_cache")

STATE = "cache"
"""``ctx.state`` key of this plugin's per-request scratch (the key and max_age)."""

Seconds = Annotated[float, Field(gt=0)]


class CacheSettings(BaseModel):
    """``[plugins.cache]`` in plugins.toml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["memory", "redis"] = "memory"
    """``memory``: an LRU in this process; ``redis``: shared by every gateway process."""
    default_mode: Literal["simple", "semantic"] | None = None
    """Cache requests whose config has no ``cache`` block too. None (Portkey's behaviour):
    only requests that ask are cached."""
    default_max_age: Seconds = 7 * 24 * 3600.0
    """Seconds an entry lives when the request's ``cache`` block gives no ``max_age``."""
    endpoints: list[str] = Field(
        default_factory=lambda: ["chat.completions", "completions", "embeddings"]
    )
    """The core's endpoints whose answers may be cached, besides every endpoint a plugin
    declares ``cacheable`` (the Responses API, say)."""
    declared_endpoints: bool = True
    """False: cache only the endpoints listed above."""
    ignore_params: list[str] = Field(default_factory=lambda: ["user", "metadata", "store"])
    """Body fields left out of the key: they identify the caller or tag the call upstream
    but do not change the answer."""
    share_across_api_keys: bool = False
    """False (tenant isolation): callers with different provider keys never share entries.
    True: one cache for everyone who sends the same request to the same upstream."""
    cache_multiple_choices: bool = True
    """Cache requests with ``n`` > 1 (the cached answer keeps all its choices)."""
    cache_sampled: bool = True
    """Cache requests that sample: ``temperature`` not 0 (OpenAI's default is 1) and no
    ``seed``. False caches only deterministic requests (and embeddings)."""
    max_entry_bytes: Annotated[int, Field(gt=0)] = 2 * 1024 * 1024
    """Answers larger than this are not stored."""

    # memory backend
    max_entries: Annotated[int, Field(gt=0)] = 10_000
    max_bytes: Annotated[int, Field(gt=0)] = 256 * 1024 * 1024
    """Total size of the in-process cache; the least recently used entries go first."""

    # redis backend
    url: str = Field(default="redis://127.0.0.1:6379/0", repr=False)
    """``redis://[:password@]host:port/db``, ``rediss://...`` or ``unix:///path``."""
    key_prefix: str = "hookgate:cache:"
    lookup_timeout_ms: Seconds = 50.0
    """A lookup slower than this is a miss."""
    store_timeout_ms: Seconds = 250.0
    connect_timeout_ms: Seconds = 100.0
    max_connections: Annotated[int, Field(gt=0)] = 64
    backoff_s: Annotated[float, Field(ge=0)] = 1.0
    """After a Redis failure, skip Redis for this long (lookups are misses, at no cost)."""
    warn_interval_s: Annotated[float, Field(ge=0)] = 60.0
    """At most one warning about an unavailable Redis per interval."""

    @field_validator("url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        try:
            urlsplit(value).port  # noqa: B018 - parsing is the check
        except ValueError as exc:
            raise ValueError(f"not a valid URL ({exc})") from None
        return value


Settings = CacheSettings
"""The name the loader and older code use."""


class Plugin:
    """The ``cache`` plugin."""

    Settings = CacheSettings
    cache_modes = ("simple",)
    cache_match = "exact"

    def __init__(self, settings: CacheSettings | None = None) -> None:
        self.settings = settings = settings or CacheSettings()
        self.backend: Backend
        if settings.backend == "redis":
            self.backend = RedisBackend(
                settings.url,
                key_prefix=settings.key_prefix,
                lookup_timeout=settings.lookup_timeout_ms / 1000,
                store_timeout=settings.store_timeout_ms / 1000,
                connect_timeout=settings.connect_timeout_ms / 1000,
                max_connections=settings.max_connections,
                backoff=settings.backoff_s,
                warn_interval=settings.warn_interval_s,
            )
        else:
            self.backend = MemoryBackend(settings.max_entries, settings.max_bytes)
        self._endpoints = frozenset(settings.endpoints)
        self._ignore = frozenset(settings.ignore_params)
        self._secret = b""  # the deployment secret, from startup

    # ---- life cycle ---------------------------------------------------------------------

    @hookimpl
    def backend_addresses(self, gateway: Gateway) -> list[str]:
        return [self.settings.url] if self.settings.backend == "redis" else []

    @hookimpl
    async def ready(self, gateway: Gateway) -> list[str]:
        check = getattr(self.backend, "problem", None)
        problem = await check() if check is not None else None
        return [problem] if problem else []

    @hookimpl
    async def startup(self, gateway: Gateway) -> None:
        self._secret = await gateway.deployment_secret()
        try:
            await self.backend.start()
        except ValueError as exc:  # a URL redis-py cannot use
            raise SettingsError(f"[plugins.cache] url: {exc}") from exc

    @hookimpl
    async def shutdown(self, gateway: Gateway) -> None:
        await self.backend.close()

    # ---- the hooks ----------------------------------------------------------------------

    @hookimpl(tryfirst=True)
    async def cache_lookup(self, ctx: RequestContext) -> Response | StreamResponse | None:
        asked = self._asked(ctx)
        if asked is None:
            return None
        _, max_age = asked
        try:
            key = cache_key(
                ctx,
                ignore_params=self._ignore,
                isolate_tenants=not self.settings.share_across_api_keys,
                secret=self._secret,
            )
        except Unkeyable as exc:
            log.info("cache_skipped", trace_id=ctx.trace_id, reason=str(exc))
            return None
        ctx.state[STATE] = (key, max_age)
        ctx.cache_consulted()  # the core turns this into HIT / MISS / REFRESH
        if ctx.cache_force_refresh:
            return None
        entry = await self.backend.get(key)
        if entry is not None and (entry.kind == "sse") == ctx.stream:
            age = time.time() - entry.created
            if age <= max_age:  # the request's max_age bounds what it accepts
                return entry.response(age)
        return None

    @hookimpl
    async def post_response(
        self, ctx: RequestContext, response: Response | StreamResponse | None
    ) -> None:
        scratch = ctx.state.get(STATE)
        if (
            scratch is None
            or response is None
            or ctx.target is None  # answered by a cache, not a provider
            or not ctx.completed
            or ctx.error is not None
            or not 200 <= response.status < 300
        ):
            return
        key, max_age = scratch
        created = time.time()
        if isinstance(response, StreamResponse):
            if stream_failed(ctx.events):
                return
            entry = Entry.of_stream(ctx.events, response, created)
        else:
            entry = Entry.of_json(response, created)
        if entry.size > self.settings.max_entry_bytes:
            log.info("cache_entry_too_large", trace_id=ctx.trace_id, size=entry.size)
            return
        await self.backend.set(key, entry, max_age)

    # ---- which requests -----------------------------------------------------------------

    def _asked(self, ctx: RequestContext) -> tuple[str, float] | None:
        """``(mode, max_age)`` when ``ctx`` is to be cached, else None."""
        settings = self.settings
        if ctx.endpoint not in self._endpoints and not (
            settings.declared_endpoints and ctx.spec is not None and ctx.spec.cacheable
        ):
            return None
        block = ctx.plan.root.cache
        if block is not None:
            mode = block.mode
            max_age = block.max_age or settings.default_max_age
        elif settings.default_mode is not None:
            mode = settings.default_mode
            max_age = settings.default_max_age
        else:
            return None
        if mode not in _EXACT_FIRST:
            return None  # another plugin's mode: its cache answers, not this one
        body = ctx.body
        if not settings.cache_multiple_choices and _number(body.get("n"), 1) > 1:
            return None
        if not settings.cache_sampled and _samples(ctx.endpoint, body):
            return None
        return mode, max_age


# Portkey's modes: "simple" is an exact match, "semantic" an exact match first, then by meaning
# (the semantic-cache plugin's part).
_EXACT_FIRST = frozenset({"simple", "semantic"})


def _number(value: Any, default: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return value


def _samples(endpoint: str, body: dict[str, Any]) -> bool:
    """Whether the answer may differ between identical calls."""
    if endpoint == "embeddings":
        return False
    if body.get("seed") is not None:
        return False
    return _number(body.get("temperature"), 1.0) != 0

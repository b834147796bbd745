"""The embedded API: a :class:`Gateway` built from plugins.toml, called like the openai SDK.

::

    async with Gateway.from_toml("plugins.toml") as gw:
        answer = await gw.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "Hello"}],
            config={"retry": {"attempts": 3}, "targets": [...]},
        )
        print(answer.choices[0].message.content, answer.hookgate.cache_status)

:class:`SyncGateway` is the same for scripts without an event loop.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar, overload

from pydantic import BaseModel, ValidationError

from .auth import DEFAULT_WORKSPACE, Principal
from .config import Config, StoredConfig, parse_config, split_config_id
from .context import Endpoint, Outcome, RequestContext, new_trace_id
from .endpoints import CORE_ENDPOINTS, EndpointCatalog, Upload
from .errors import BadRequestError, ConfigError, NotFoundError, UpstreamProtocolError
from .models import (
    ChatCompletion,
    ChatCompletionChunk,
    Completion,
    CreateEmbeddingResponse,
    validate_request,
)
from .pipeline import Pipeline
from .plugins import (
    Hooks,
    check_hook_impls,
    declared_by,
    describe_plugin,
    load_plugins,
    suggest_plugin,
)
from .responses import Response, SSEEvent, StreamResponse
from .routing import HostPolicy, Plan, RequestTarget, build_plan, route_by_model
from .settings import Settings, load_settings

__all__ = ["CallOptions", "ChunkStream", "Gateway", "SyncGateway"]

T = TypeVar("T", bound=BaseModel)

_PLAN_CACHE_SIZE = 1024


@dataclass(slots=True, kw_only=True)
class CallOptions:
    """Per-call gateway options: what a server client sends as ``x-portkey-*`` headers."""

    provider: str | None = None
    api_key: str | None = field(default=None, repr=False)
    virtual_key: str | None = None
    custom_host: str | None = None
    trace_id: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    cache_force_refresh: bool = False
    cache_namespace: str | None = None
    timeout: float | None = None
    """Seconds until the answer must start; overrides the config's ``request_timeout``."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Incoming headers a target may forward (``forward_headers``)."""
    principal: Principal | None = None
    """Who calls (the server's gate sets it from the gateway key): decides which stored
    configs and virtual keys the request may use."""


class Gateway:
    """A gateway: settings, the enabled plugins and the pipeline, ready to answer requests."""

    def __init__(self, settings: Settings | Mapping[str, Any] | None = None) -> None:
        if settings is None:
            settings = Settings()
        elif not isinstance(settings, Settings):
            settings = Settings.from_mapping(settings)
        self.settings = settings
        self.plugin_manager, self.plugins = load_plugins(settings)
        self.hooks = Hooks(self.plugin_manager, self.plugins)
        self._pipeline = Pipeline(self.hooks)
        self._refresh_capabilities()
        self._started = False
        self._start_lock: asyncio.Lock | None = None
        self._secret: bytes | None = None
        self.chat = _Chat(self)
        self.completions: _Resource[Completion, Completion] = _Resource(
            self, "completions", Completion, Completion
        )
        self.embeddings: _Resource[CreateEmbeddingResponse, CreateEmbeddingResponse] = _Resource(
            self, "embeddings", CreateEmbeddingResponse
        )

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str] | None = None) -> Gateway:
        """Build from plugins.toml (``path``, ``$HOOKGATE_CONFIG`` or ``./plugins.toml``)."""
        return cls(load_settings(path))

    # ---- plugins ----------------------------------------------------------------------

    def register(self, plugin: object, name: str | None = None) -> str:
        """Register one more plugin object (an app's or a test's) after start-up."""
        loaded = describe_plugin(name or type(plugin).__name__, plugin, source="register()")
        registered = self.plugin_manager.register(plugin, name=loaded.name)
        if registered is None:
            raise ValueError(f"plugin {loaded.name!r} is blocked from registering")
        loaded.name = registered
        try:
            check_hook_impls(self.plugin_manager, loaded, "register()")
        except Exception:
            self.plugin_manager.unregister(name=registered)
            raise
        self.plugins.append(loaded)
        self._refresh_capabilities()
        return registered

    def unregister(self, name: str) -> None:
        self.plugin_manager.unregister(name=name)
        self.plugins = [p for p in self.plugins if p.name != name]
        self._refresh_capabilities()

    def plugin(self, name: str) -> object:
        """The enabled plugin object called ``name``."""
        for loaded in self.plugins:
            if loaded.name == name:
                return loaded.plugin
        raise KeyError(name)

    def _refresh_capabilities(self) -> None:
        self.invalidate_plans()
        self.providers = frozenset(p for loaded in self.plugins for p in loaded.providers)
        self.strategies = frozenset(s for loaded in self.plugins for s in loaded.strategies)
        self.cache_modes = frozenset(m for loaded in self.plugins for m in loaded.cache_modes)
        self.hooks.refresh(self.plugins)
        self.aliases = {a: c for loaded in self.plugins for a, c in loaded.aliases.items()}
        self.hosts = HostPolicy.from_settings(self.settings, self.hooks.backend_ports(self))
        self.endpoints = EndpointCatalog(
            ((p.name, spec) for p in self.plugins for spec in p.endpoints),
            ((p.name, p.serves) for p in self.plugins if p.serves),
        )
        self._pipeline.catalog = self.endpoints
        self._undeclared: dict[str, tuple[str, ...]] = {}

    def invalidate_plans(self) -> None:
        """Forget every routing plan built so far. A plugin whose ``resolve_virtual_key``
        answers change (a key rotated, deleted) calls this; stored configs need not, since
        plans are keyed by their version."""
        self._plans: dict[tuple[Any, ...], tuple[Config | None, Plan]] = {}

    # ---- life cycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Open every plugin's pools (``startup`` hook). Called on the first request if needed."""
        if self._started:
            return
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if not self._started:
                await self.hooks.startup(self)
                self._started = True
                # Backends started by plugins (a supervised store) have their ports now.
                self._refresh_capabilities()

    async def deployment_secret(self) -> bytes:
        """The deployment secret for keyed hashes (see :mod:`hookgate.secrets`), the same on
        every worker and every instance; found once per gateway."""
        if self._secret is None:
            from .secrets import resolve_deployment_secret

            self._secret = await resolve_deployment_secret(self)
        return self._secret

    @property
    def started(self) -> bool:
        """Whether ``startup`` has run (and ``aclose`` not yet)."""
        return self._started

    async def readiness(self) -> list[str]:
        """What keeps the gateway from serving, from the plugins' ``ready`` hooks; [] = ready."""
        return await self.hooks.ready(self)

    async def aclose(self) -> None:
        """Close every plugin's pools and flush their buffers (``shutdown`` hook)."""
        if self._started:
            self._started = False
            await self.hooks.shutdown(self)

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ---- requests ---------------------------------------------------------------------

    def context(
        self,
        endpoint: Endpoint,
        body: Any,
        *,
        config: Config | Mapping[str, Any] | str | None = None,
        options: CallOptions | None = None,
        params: Mapping[str, str] | None = None,
        query: str = "",
        uploads: Mapping[str, Upload] | None = None,
    ) -> RequestContext:
        """Validate a request and resolve its routing plan; raise a 4xx :class:`GatewayError`.

        ``params``, ``query`` and ``uploads`` are the path parameters, query string and files
        of a declared endpoint (see :mod:`hookgate.endpoints`)."""
        spec = self.endpoints.spec(endpoint)
        if spec is None and endpoint not in CORE_ENDPOINTS:
            self._check_undeclared(endpoint)
        validate_request(endpoint, body, spec.request_model if spec is not None else None)
        if spec is not None and spec.files:
            for name in spec.files:
                if name not in (uploads or {}):
                    raise BadRequestError(
                        f"invalid request: the form has no {name!r} file",
                        param=name,
                        code="invalid_request",
                    )
        options = options or CallOptions()
        request = RequestTarget(
            provider=options.provider,
            api_key=options.api_key,
            custom_host=options.custom_host,
            virtual_key=options.virtual_key,
        )
        principal = options.principal
        model = body.get("model")
        if type(model) is str and "/" in model:
            routed = route_by_model(
                model,
                request,
                providers=self.providers,
                aliases=self.aliases,
                is_virtual_key=lambda slug: self._is_virtual_key(slug, principal),
            )
            if routed is not None and not self._config_names_target(config, request, principal):
                request, bare = routed
                body = {**body, "model": bare}
        resolved, plan = self._plan(config, request, principal)
        timeout = options.timeout or plan.root.request_timeout or self.settings.gateway.timeout
        return RequestContext(
            endpoint=endpoint,
            body=body,
            plan=plan,
            config=resolved,
            trace_id=options.trace_id or new_trace_id(),
            metadata=options.metadata,
            headers=options.headers,
            principal=principal,
            spec=spec,
            params=params or {},
            query=query,
            uploads=uploads or {},
            cache_force_refresh=options.cache_force_refresh,
            cache_namespace=options.cache_namespace,
            timeout=timeout,
        )

    def _check_undeclared(self, endpoint: Endpoint) -> None:
        """Refuse an endpoint that an installed plugin declares but is not enabled (the 404
        names it); any other name goes on to the providers, which decide (a plugin's own
        ``register_routes`` may serve it)."""
        owners = self._undeclared.get(endpoint)
        if owners is None:
            if len(self._undeclared) >= _PLAN_CACHE_SIZE:
                self._undeclared.clear()
            owners = self._undeclared[endpoint] = tuple(
                declared_by("endpoint", endpoint, {p.name for p in self.plugins})
            )
        if owners:
            raise NotFoundError(
                f"the {endpoint!r} endpoint is declared by the {owners[0]!r} plugin, which is "
                f"not enabled; add {owners[0]!r} to [gateway] plugins",
                code="endpoint_not_enabled",
            )

    def _is_virtual_key(self, slug: str, principal: Principal | None) -> bool:
        if slug in self.settings.virtual_keys:
            return True
        return self.hooks.resolve_virtual_key(slug, principal) is not None

    def _config_names_target(
        self,
        config: Config | Mapping[str, Any] | str | None,
        request: RequestTarget,
        principal: Principal | None,
    ) -> bool:
        """Whether the request's config picks its own targets (then a model string that
        would route is sent on as it is)."""
        if config is None:
            return False
        resolved, _ = self._plan(config, request, principal)
        return resolved is not None and (
            resolved.provider is not None
            or resolved.virtual_key is not None
            or resolved.targets is not None
        )

    def _plan(
        self,
        config: Config | Mapping[str, Any] | str | None,
        request: RequestTarget,
        principal: Principal | None,
    ) -> tuple[Config | None, Plan]:
        # Servers see the same few routings over and over (a config header's text, a provider
        # and key): a resolved plan is immutable, so it is built once per distinct input. A
        # stored config is looked up on every request (in the plugin's memory) and its plan
        # reused while its version stays the same.
        stored: StoredConfig | None = None
        if isinstance(config, str) and not config.lstrip().startswith("{"):
            stored = self._stored_config(config, principal)
        key: tuple[Any, ...] | None = None
        if config is None or isinstance(config, str):
            workspace = principal.workspace if principal is not None else DEFAULT_WORKSPACE
            admin = principal is not None and principal.is_admin
            source = (stored.slug, stored.version) if stored is not None else config
            key = (source, request, workspace, admin)
        cached = self._plans.get(key) if key is not None else None
        if cached is None:
            cached = self._resolve(stored if stored is not None else config, request, principal)
            if key is not None:
                if len(self._plans) >= _PLAN_CACHE_SIZE:
                    self._plans.pop(next(iter(self._plans)))
                self._plans[key] = cached
        return cached

    def check_config(
        self, config: Config | Mapping[str, Any], principal: Principal | None = None
    ) -> Config:
        """Validate ``config`` exactly as a request's config is checked (schema, providers,
        strategies, virtual keys ``principal`` may use, custom hosts) and return it parsed;
        raise the same :class:`ConfigError` a request would get. For a plugin that stores
        configs: nothing invalid gets in."""
        resolved, _ = self._resolve(parse_config(config), RequestTarget(), principal)  # type: ignore[arg-type]
        assert resolved is not None
        return resolved

    def _stored_config(self, config: str, principal: Principal | None) -> StoredConfig | None:
        """A config id plugins.toml does not declare, from the plugins (``resolve_config``)."""
        config_id, version = split_config_id(config)
        if not config_id or (version is None and "@" in config):
            raise ConfigError(
                f"config id {config.strip()!r} is malformed: write 'ID' or 'ID@VERSION'",
                code="config_not_found",
            )
        if config_id in self.settings.configs:
            if version is not None:
                raise ConfigError(
                    f"config {config_id!r} is declared in plugins.toml, which keeps no "
                    "versions: use it without '@'",
                    code="config_not_found",
                )
            return None
        found = self.hooks.resolve_config(config_id, version, principal)
        if found is None:
            known = ", ".join(sorted(self.settings.configs)) or "none are declared"
            raise ConfigError(
                f"unknown config id {config_id!r} (configs in plugins.toml: {known}; "
                "none stored by that id is visible to this key)",
                code="config_not_found",
            )
        return found

    def _resolve(
        self,
        config: Config | Mapping[str, Any] | str | StoredConfig | None,
        request: RequestTarget,
        principal: Principal | None = None,
    ) -> tuple[Config | None, Plan]:
        config_id = None
        version = None
        number = None
        if isinstance(config, StoredConfig):
            config_id, version, number = config.slug, config.version, config.number
            config = config.config
        elif isinstance(config, str) and not config.lstrip().startswith("{"):
            config_id = config.strip()
            config = self.settings.named_config(config_id)
        resolved = None if config is None else parse_config(config)  # type: ignore[arg-type]
        hooks = self.hooks
        plan = build_plan(
            resolved,
            request,
            self.settings,
            providers=self.providers,
            strategies=self.strategies,
            aliases=self.aliases,
            config_id=config_id,
            config_version=version,
            config_number=number,
            virtual_keys=lambda slug: hooks.resolve_virtual_key(slug, principal),
            cache_modes=self.cache_modes,
            suggest=self._suggest,
            hosts=self.hosts,
        )
        return resolved, plan

    def problems(self) -> list[str]:
        """What in plugins.toml would fail only once a request used it (``hookgate check``):
        virtual keys naming providers no enabled plugin serves, named configs that need a
        provider, strategy or cache mode no enabled plugin provides, and settings tables for
        installed plugins that are not enabled."""
        from .errors import ConfigError

        settings = self.settings
        found: list[str] = []
        enabled = {p.name for p in self.plugins}
        for name in sorted(settings.plugins):
            if name not in enabled:
                found.append(
                    f"[plugins.{name}] configures a plugin that is not enabled: add {name!r} "
                    "to [gateway] plugins, or remove the table"
                )
        known = ", ".join(sorted(self.providers)) or "none"
        for name, key in sorted(settings.virtual_keys.items()):
            provider = key.provider.lower()
            if self.aliases.get(provider, provider) not in self.providers:
                found.append(
                    f"[virtual_keys.{name}] provider {key.provider!r} is not served by an "
                    f"enabled plugin (enabled providers: {known})"
                )
        for config_id in sorted(settings.configs):
            try:
                self._resolve(config_id, RequestTarget())
            except ConfigError as exc:
                if exc.code == "missing_provider":
                    continue  # the request may name the provider
                found.append(f"[configs.{config_id}] {exc.message}")
        return found

    def _suggest(self, kind: str, mode: str) -> str:
        return suggest_plugin(kind, mode, {p.name for p in self.plugins})

    async def handle(self, ctx: RequestContext) -> Response | StreamResponse:
        """Run ``ctx`` through the pipeline. Raises the error the client should see."""
        if not self._started:
            await self.start()
        return await self._pipeline.run(ctx)

    async def request(
        self,
        endpoint: Endpoint,
        body: Mapping[str, Any] | None = None,
        *,
        config: Config | Mapping[str, Any] | str | None = None,
        options: CallOptions | Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        query: str = "",
        uploads: Mapping[str, Upload] | None = None,
    ) -> Response | StreamResponse:
        """Any endpoint, core or declared, by name: the raw answer (JSON bytes, or a stream
        of events). ``gw.request("responses", {"model": ..., "input": "Hi"})``."""
        if isinstance(options, Mapping):
            options = CallOptions(**options)
        ctx = self.context(
            endpoint,
            dict(body or {}),
            config=config,
            options=options,
            params=params,
            query=query,
            uploads=uploads,
        )
        return await self.handle(ctx)

    async def _create(
        self,
        endpoint: Endpoint,
        model: type[T],
        chunk_model: type[BaseModel] | None,
        body: dict[str, Any],
        config: Config | Mapping[str, Any] | str | None,
        options: CallOptions | Mapping[str, Any] | None,
    ) -> Any:
        if isinstance(options, Mapping):
            options = CallOptions(**options)
        ctx = self.context(endpoint, body, config=config, options=options)
        response = await self.handle(ctx)
        outcome = ctx.outcome()
        if isinstance(response, StreamResponse):
            return ChunkStream(response, chunk_model or model, outcome)
        return _parse(model, response, outcome, ctx)


def _parse(model: type[T], response: Response, outcome: Outcome, ctx: RequestContext) -> T:
    try:
        result = model.model_validate(response.json())
    except ValidationError as exc:
        provider = ctx.target.provider if ctx.target else "cache"
        raise UpstreamProtocolError(
            f"the answer is not a valid {model.__name__}: {exc.errors()[0]['msg']}",
            provider=provider,
        ) from exc
    result._outcome = outcome  # type: ignore[attr-defined]
    return result


class ChunkStream(Generic[T]):
    """A streamed answer: ``async for chunk in stream``; ``stream.hookgate`` says what happened."""

    def __init__(self, response: StreamResponse, model: type[T], outcome: Outcome) -> None:
        self.response = response
        self.hookgate = outcome
        self._model = model
        self._events: AsyncIterator[SSEEvent] = aiter(response.events)

    def __aiter__(self) -> ChunkStream[T]:
        return self

    async def __anext__(self) -> T:
        event = await anext(self._events)
        return self._model.model_validate(event.data)

    async def aclose(self) -> None:
        await self.response.aclose()

    async def __aenter__(self) -> ChunkStream[T]:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


C = TypeVar("C", bound=BaseModel)
_ConfigArg = Config | Mapping[str, Any] | str | None
_OptionsArg = CallOptions | Mapping[str, Any] | None


class _Resource(Generic[T, C]):
    """``gw.chat.completions``, ``gw.completions`` and ``gw.embeddings``:
    ``await ....create(**openai_params)``, typed by ``stream``: a :class:`ChunkStream` of
    chunks with ``stream=True``, else the answer's model (``ChatCompletion``, ...)."""

    def __init__(
        self,
        gateway: Gateway,
        endpoint: Endpoint,
        model: type[T],
        chunk_model: type[C] | None = None,
    ) -> None:
        self._gateway = gateway
        self._endpoint = endpoint
        self._model = model
        self._chunk_model = chunk_model

    @overload
    async def create(
        self,
        *,
        stream: Literal[True],
        config: _ConfigArg = None,
        options: _OptionsArg = None,
        **params: Any,
    ) -> ChunkStream[C]: ...

    @overload
    async def create(
        self,
        *,
        stream: Literal[False] | None = None,
        config: _ConfigArg = None,
        options: _OptionsArg = None,
        **params: Any,
    ) -> T: ...

    @overload
    async def create(
        self,
        *,
        stream: bool | None = None,
        config: _ConfigArg = None,
        options: _OptionsArg = None,
        **params: Any,
    ) -> T | ChunkStream[C]: ...

    async def create(
        self,
        *,
        stream: bool | None = None,
        config: _ConfigArg = None,
        options: _OptionsArg = None,
        **params: Any,
    ) -> T | ChunkStream[C]:
        """Send OpenAI's parameters as keyword arguments. ``config``: a Portkey config (dict,
        JSON text or the id of one in plugins.toml); ``options``: :class:`CallOptions`."""
        if stream is not None:
            params["stream"] = stream
        result: T | ChunkStream[C] = await self._gateway._create(
            self._endpoint, self._model, self._chunk_model, params, config, options
        )
        return result


class _Chat:
    def __init__(self, gateway: Gateway) -> None:
        self.completions: _Resource[ChatCompletion, ChatCompletionChunk] = _Resource(
            gateway, "chat.completions", ChatCompletion, ChatCompletionChunk
        )


# ---- the synchronous facade ----------------------------------------------------------


class SyncGateway:
    """:class:`Gateway` for code without an event loop: ``gw.chat.completions.create(...)``.

    It runs its own event loop; calling it from inside a running loop is an error (use
    :class:`Gateway` there).
    """

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._runner = asyncio.Runner()
        self.chat = _SyncChat(self)
        self.completions = _SyncResource(self, gateway.completions)
        self.embeddings = _SyncResource(self, gateway.embeddings)

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str] | None = None) -> SyncGateway:
        return cls(Gateway.from_toml(path))

    def run(self, awaitable: Any) -> Any:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self._runner.run(awaitable)
        if asyncio.iscoroutine(awaitable):
            awaitable.close()
        raise RuntimeError(
            "SyncGateway was called inside a running event loop; use "
            "`await Gateway.chat.completions.create(...)` there instead"
        )

    def close(self) -> None:
        self.run(self.gateway.aclose())
        self._runner.close()

    def __enter__(self) -> SyncGateway:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _SyncResource(Generic[T, C]):
    def __init__(self, sync: SyncGateway, resource: _Resource[T, C]) -> None:
        self._sync = sync
        self._resource = resource

    @overload
    def create(self, *, stream: Literal[True], **kwargs: Any) -> _SyncChunks[C]: ...

    @overload
    def create(self, *, stream: Literal[False] | None = None, **kwargs: Any) -> T: ...

    @overload
    def create(self, *, stream: bool | None = None, **kwargs: Any) -> T | _SyncChunks[C]: ...

    def create(self, *, stream: bool | None = None, **kwargs: Any) -> T | _SyncChunks[C]:
        result = self._sync.run(self._resource.create(stream=stream, **kwargs))
        if isinstance(result, ChunkStream):
            return _SyncChunks(self._sync, result)
        answer: T = result
        return answer


class _SyncChat:
    def __init__(self, sync: SyncGateway) -> None:
        self.completions = _SyncResource(sync, sync.gateway.chat.completions)


class _SyncChunks(Generic[T]):
    def __init__(self, sync: SyncGateway, stream: ChunkStream[T]) -> None:
        self._sync = sync
        self._stream = stream
        self.hookgate = stream.hookgate

    def __iter__(self) -> Iterator[T]:
        try:
            while True:
                try:
                    yield self._sync.run(anext(self._stream))
                except StopAsyncIteration:
                    return
        finally:
            self.close()

    def close(self) -> None:
        self._sync.run(self._stream.aclose())

"""Loading the plugins a deployment enables, and calling their hooks.

Only plugins named in ``[gateway] plugins`` are registered: an entry point in group
``hookgate`` (how every plugin in this repository ships), or a ``module:object`` path given as
``use`` in the plugin's table (an app's local plugin, no packaging needed).

A plugin is a class or a module with ``@hookimpl`` functions. A class may declare a pydantic
``Settings`` model: the loader validates the plugin's ``[plugins.<name>]`` table with it and
calls ``Plugin(settings)``. Optional class attributes tell the core what the plugin serves:
``providers`` (provider names for ``call_provider``), ``aliases`` (alias -> canonical
provider name; the plan carries the canonical one), ``strategies`` (strategy modes it orders
in ``pre_request``), ``cache_modes`` (cache modes its ``cache_lookup`` serves),
``cache_match`` (``"exact"``, the default, or ``"similar"``: exact-match caches answer first),
``endpoints`` (the :class:`~hookgate.endpoints.EndpointSpec` operations it adds) and ``serves``
(provider name -> the endpoint names that provider serves; see :mod:`hookgate.endpoints`).
A config naming a mode no enabled plugin declares is a 400 that names the plugin to enable.

:class:`Hooks` is the one place ``pm.hook`` is called, behind typed async methods.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pluggy
import structlog
from pydantic import BaseModel, ValidationError

from . import hookspecs
from .config import StoredConfig, format_validation_error
from .context import Decision, RequestContext
from .endpoints import EndpointSpec
from .errors import GatewayError, ProviderError, SettingsError
from .observe import Gauge, Usage
from .responses import Response, StreamResponse
from .routing import Target
from .settings import Settings, VirtualKey

if TYPE_CHECKING:
    import click

    from .auth import Principal
    from .gateway import Gateway
    from .logquery import AggregateQuery, Aggregates, LogPage, LogQuery
    from .services import Service

__all__ = [
    "Hooks",
    "LoadedPlugin",
    "check_hook_impls",
    "check_sync_hooks",
    "declared_by",
    "describe_plugin",
    "endpoints_elsewhere",
    "installed_plugins",
    "load_plugins",
    "suggest_plugin",
]

log = structlog.get_logger("hookgate.plugins")

ENTRY_POINT_GROUP = "hookgate"
# Hooks called synchronously, and why an 'async def' implementation of them is refused.
_CLAIM = (
    "a plain 'def' that returns None to decline or an awaitable to claim (a coroutine is "
    "never None, so it would always win)"
)
_READ = "a plain 'def': it is called synchronously and its result used as it is"
_FROM_MEMORY = (
    "a plain 'def' that answers from memory or returns None to decline (a coroutine is "
    "never None, so it would always win)"
)
_SYNC_HOOKS = {
    "call_provider": _CLAIM,
    "on_error": _CLAIM,
    "request_usage": _READ,
    "metrics": _READ,
    "authenticate": _FROM_MEMORY,
    "resolve_config": _FROM_MEMORY,
    "resolve_virtual_key": _FROM_MEMORY,
    "query_logs": _CLAIM,
    "aggregate_logs": _CLAIM,
    "deployment_secret": _CLAIM,
}


@dataclass(slots=True)
class LoadedPlugin:
    """An enabled plugin, as registered."""

    name: str
    plugin: object
    source: str
    """``hookgate-retry 0.1.0`` for an entry point, the ``module:object`` path otherwise."""
    settings: BaseModel | None = None
    providers: tuple[str, ...] = ()
    strategies: tuple[str, ...] = ()
    cache_modes: tuple[str, ...] = ()
    cache_tier: str = "exact"
    """``exact`` or ``similar`` (the plugin's ``cache_match``): exact-match caches answer first."""
    aliases: dict[str, str] = field(default_factory=dict)
    """Alias -> canonical provider name (``yi`` -> ``lingyi``)."""
    endpoints: tuple[EndpointSpec, ...] = ()
    serves: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Provider name -> the endpoints it serves (absent: the plugin did not say)."""
    hooks: list[str] = field(default_factory=list)


def installed_plugins() -> dict[str, EntryPoint]:
    """Plugins installed in this environment, by entry-point name."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_plugins(settings: Settings) -> tuple[pluggy.PluginManager, list[LoadedPlugin]]:
    """Register every plugin ``settings`` enables, in order; raise :class:`SettingsError`."""
    source = settings.source
    enabled = settings.gateway.plugins
    installed = installed_plugins()
    seen: set[str] = set()
    for name in enabled:
        if name in seen:
            raise SettingsError(f"{source}: [gateway] plugins lists {name!r} twice")
        seen.add(name)
    for name in settings.plugins:
        if name not in seen and name not in installed:
            raise SettingsError(
                f"{source}: [plugins.{name}] configures a plugin that is neither enabled "
                f"nor installed ({_installed_list(installed)})"
            )

    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    loaded = [_load(name, settings, installed) for name in enabled]
    # pluggy calls the last registered first: register in reverse so hooks run in listed order.
    for plugin in reversed(loaded):
        try:
            pm.register(plugin.plugin, name=plugin.name)
        except pluggy.PluginValidationError as exc:
            raise SettingsError(f"{source}: plugin {plugin.name!r}: {exc}") from exc
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise SettingsError(f"{source}: {exc}") from exc
    for plugin in loaded:
        plugin.hooks = [caller.name for caller in pm.get_hookcallers(plugin.plugin) or ()]
        check_hook_impls(pm, plugin, source)
    return pm, loaded


def _installed_list(installed: dict[str, EntryPoint]) -> str:
    return "installed plugins: " + (", ".join(sorted(installed)) or "none")


def _load(name: str, settings: Settings, installed: dict[str, EntryPoint]) -> LoadedPlugin:
    source_file = settings.source
    table = dict(settings.plugins.get(name, {}))
    use = table.pop("use", None)
    if use is not None:
        obj = _import_object(use, name, source_file)
        source = use
    elif name in installed:
        entry = installed[name]
        try:
            obj = entry.load()
        except Exception as exc:
            raise SettingsError(
                f"{source_file}: plugin {name!r} ({entry.value}) failed to import: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        dist = entry.dist
        source = f"{dist.name} {dist.version}" if dist is not None else entry.value
    else:
        raise SettingsError(
            f"{source_file}: plugin {name!r} is enabled in [gateway] plugins but not installed "
            f"({_installed_list(installed)}); for a local plugin set "
            f'[plugins.{name}] use = "module:object"'
        )

    settings_model = getattr(obj, "Settings", None)
    plugin_settings: BaseModel | None = None
    if isinstance(settings_model, type) and issubclass(settings_model, BaseModel):
        try:
            plugin_settings = settings_model.model_validate(table)
        except ValidationError as exc:
            raise SettingsError(
                f"{source_file}: [plugins.{name}] {format_validation_error(exc, '')}"
            ) from exc
    elif table:
        keys = ", ".join(sorted(table))
        raise SettingsError(f"{source_file}: [plugins.{name}] plugin takes no settings: {keys}")

    if inspect.isclass(obj):
        factory: Callable[..., object] = obj
        try:
            plugin = factory(plugin_settings) if plugin_settings is not None else factory()
        except SettingsError:
            raise
        except Exception as exc:
            raise SettingsError(
                f"{source_file}: plugin {name!r} failed to start: {type(exc).__name__}: {exc}"
            ) from exc
    else:
        plugin = obj
    return describe_plugin(name, plugin, source, plugin_settings)


def describe_plugin(
    name: str, plugin: object, source: str, settings: BaseModel | None = None
) -> LoadedPlugin:
    """What the core needs to know of a plugin object: its name and what it serves."""
    tier = getattr(plugin, "cache_match", "exact")
    if tier not in ("exact", "similar"):
        raise SettingsError(
            f"plugin {name!r}: cache_match must be 'exact' or 'similar', not {tier!r}"
        )
    endpoints = tuple(getattr(plugin, "endpoints", None) or ())
    for spec in endpoints:
        if not isinstance(spec, EndpointSpec):
            raise SettingsError(
                f"plugin {name!r}: its endpoints must be EndpointSpec objects, not "
                f"{type(spec).__name__}"
            )
    serves = {
        str(provider).lower(): tuple(names)
        for provider, names in dict(getattr(plugin, "serves", None) or {}).items()
    }
    return LoadedPlugin(
        name=name,
        plugin=plugin,
        source=source,
        settings=settings,
        providers=tuple(p.lower() for p in getattr(plugin, "providers", ())),
        strategies=_names(name, "strategies", getattr(plugin, "strategies", ())),
        cache_modes=_names(name, "cache_modes", getattr(plugin, "cache_modes", ())),
        cache_tier=tier,
        aliases={k.lower(): v.lower() for k, v in dict(getattr(plugin, "aliases", {})).items()},
        endpoints=endpoints,
        serves=serves,
    )


def _names(plugin: str, attribute: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise SettingsError(
            f"plugin {plugin!r}: {attribute} must be a tuple of names, e.g. ({value!r},)"
        )
    return tuple(value)


@dataclass(frozen=True, slots=True)
class _Declares:
    strategies: tuple[str, ...] = ()
    cache_modes: tuple[str, ...] = ()
    endpoints: tuple[EndpointSpec, ...] = ()


_declared: dict[str, _Declares] = {}


def _declarations(enabled: Collection[str]) -> list[tuple[str, _Declares]]:
    """What each installed plugin not among ``enabled`` declares, by its name.

    Only asked when something names what no enabled plugin provides: it imports the other
    installed plugins once (a plugin's heavy imports stay inside its functions) and
    remembers what their classes declare."""
    found = []
    for name, entry in sorted(installed_plugins().items()):
        if name in enabled:
            continue
        if name not in _declared:
            try:
                obj = entry.load()
            except Exception:  # a broken third-party plugin only loses its suggestion
                _declared[name] = _Declares()
            else:
                endpoints = tuple(getattr(obj, "endpoints", None) or ())
                _declared[name] = _Declares(
                    tuple(getattr(obj, "strategies", ()) or ()),
                    tuple(getattr(obj, "cache_modes", ()) or ()),
                    tuple(e for e in endpoints if isinstance(e, EndpointSpec)),
                )
        found.append((name, _declared[name]))
    return found


def declared_by(kind: str, mode: str, enabled: Collection[str] = ()) -> list[str]:
    """Installed plugins, not among ``enabled``, that declare ``mode`` as a strategy
    (``kind="strategy"``), a cache mode (``kind="cache"``) or an endpoint
    (``kind="endpoint"``)."""
    found = []
    for name, declares in _declarations(enabled):
        if kind == "strategy":
            names = declares.strategies
        elif kind == "cache":
            names = declares.cache_modes
        else:
            names = tuple(spec.name for spec in declares.endpoints)
        if mode in names:
            found.append(name)
    return found


def endpoints_elsewhere(enabled: Collection[str]) -> list[tuple[str, EndpointSpec]]:
    """The endpoints installed plugins not among ``enabled`` declare, with the plugin: what
    a 404 names when a request asks for one of them."""
    return [
        (name, spec) for name, declares in _declarations(enabled) for spec in declares.endpoints
    ]


def suggest_plugin(kind: str, mode: str, enabled: Collection[str]) -> str:
    """How to get ``mode``: "enable the 'fallback' plugin in plugins.toml", or what is
    installed when nothing provides it."""
    names = declared_by(kind, mode, enabled)
    if names:
        quoted = " or ".join(repr(n) for n in names)
        return f"enable the {quoted} plugin in [gateway] plugins"
    if kind == "endpoint":
        return f"no installed plugin declares it; install a plugin with endpoint {mode!r}"
    return f"no installed plugin declares it; install a plugin with {kind} mode {mode!r}"


def _local_folder(module_name: str, source_file: str) -> None:
    """Make ``use = "examples.banned_words:..."`` resolve relative to the folder of the
    plugins.toml naming it, wherever the process was started: when that folder holds the
    module's top-level package or file, it goes first on ``sys.path`` (as ``PYTHONPATH=.``
    run from there would)."""
    if source_file.startswith("<"):
        return  # settings from a dict: no folder
    folder = Path(source_file).resolve().parent
    top = module_name.split(".", 1)[0]
    if not ((folder / top).is_dir() or (folder / f"{top}.py").is_file()):
        return
    entry = str(folder)
    if entry not in sys.path:
        sys.path.insert(0, entry)
        importlib.invalidate_caches()


def _import_object(path: str, name: str, source_file: str) -> Any:
    module_name, _, attr = path.partition(":")
    _local_folder(module_name, source_file)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SettingsError(
            f"{source_file}: [plugins.{name}] use = {path!r}: cannot import {module_name!r}: {exc}"
        ) from exc
    if not attr:
        return module
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise SettingsError(
                f"{source_file}: [plugins.{name}] use = {path!r}: {module_name} has no {attr!r}"
            ) from None
    return obj


# Hooks whose results the core awaits: called one implementation at a time, in order, each
# awaited before the next, so a sync implementation listed second never runs before an async
# one listed first, and nothing is left un-awaited when one raises.
_AWAITED_HOOKS = ("pre_request", "cache_lookup", "post_response", "startup", "shutdown", "ready")


def check_hook_impls(pm: pluggy.PluginManager, plugin: LoadedPlugin, source: str) -> None:
    """Refuse implementations the core cannot call as their hook's contract says."""
    for impl in pm.get_hookcallers(plugin.plugin) or ():
        for hook_impl in impl.get_hookimpls():
            if hook_impl.plugin is not plugin.plugin:
                continue
            if (hook_impl.wrapper or hook_impl.hookwrapper) and impl.name in _AWAITED_HOOKS:
                raise SettingsError(
                    f"{source}: plugin {plugin.name!r} implements {impl.name} as a wrapper "
                    f"({'wrapper' if hook_impl.wrapper else 'hookwrapper'}=True); hookgate "
                    f"awaits each {impl.name} implementation before calling the next, so a "
                    "wrapper could not wrap the others' async work: implement it as a plain "
                    "@hookimpl (use tryfirst/trylast to run before or after the others)"
                )
    check_sync_hooks(pm, plugin, source)


def check_sync_hooks(pm: pluggy.PluginManager, plugin: LoadedPlugin, source: str) -> None:
    for hook_name, why in _SYNC_HOOKS.items():
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            if impl.plugin is plugin.plugin and inspect.iscoroutinefunction(impl.function):
                raise SettingsError(
                    f"{source}: plugin {plugin.name!r} implements {hook_name} with 'async def'; "
                    f"{hook_name} must be {why}"
                )


_SCHEME_PORTS = {
    "redis": 6379,
    "rediss": 6379,
    "postgres": 5432,
    "postgresql": 5432,
    "http": 80,
    "https": 443,
}


def address_port(address: str) -> int | None:
    """The port of a backend address: a URL (default port by scheme) or ``host:port``."""
    from urllib.parse import urlsplit

    try:
        if "://" in address:
            url = urlsplit(address)
            return url.port or _SCHEME_PORTS.get(url.scheme.split("+")[0])
        _, _, port = address.rpartition(":")
        return int(port) if port.isdigit() else None
    except ValueError:
        return None


async def await_me_maybe(value: object) -> Any:
    return await value if inspect.isawaitable(value) else value


class Hooks:
    """Typed async calls of every hook. Nothing else in hookgate touches ``pm.hook``.

    Hooks whose results are awaited (``pre_request``, ``cache_lookup``, ``post_response``,
    ``startup``, ``shutdown``, ``ready``) are called one implementation at a time, in call
    order (``[gateway] plugins`` order, adjusted by ``tryfirst``/``trylast``), each awaited
    before the next one is called: sync and async implementations interleave exactly as
    listed. Every call still goes through pluggy (one single-plugin caller per implementation),
    so :meth:`monitor` sees each of them.
    """

    def __init__(self, pm: pluggy.PluginManager, plugins: Sequence[LoadedPlugin] = ()) -> None:
        self._pm = pm
        self._hook = pm.hook
        self.refresh(plugins)

    def refresh(self, plugins: Sequence[LoadedPlugin] = ()) -> None:
        """Rebuild the per-implementation callers (after a plugin was registered or removed)."""
        registered = [plugin for _, plugin in self._pm.list_name_plugin()]
        tiers = {id(p.plugin): p.cache_tier for p in plugins}
        self._callers: dict[str, list[tuple[str, Any]]] = {}
        for name in (*_AWAITED_HOOKS, "metrics"):
            callers = []
            for impl in reversed(getattr(self._hook, name).get_hookimpls()):
                others = [p for p in registered if p is not impl.plugin]
                callers.append((impl.plugin_name, self._pm.subset_hook_caller(name, others)))
            self._callers[name] = callers
        lookups = [
            (tiers.get(id(self._pm.get_plugin(name)), "exact"), name, caller)
            for name, caller in self._callers["cache_lookup"]
        ]
        # Cache precedence is the core's: every exact-match cache answers before any
        # similarity cache, whatever order they are listed in.
        self._lookups = [
            (name, caller, tier)
            for tier, name, caller in sorted(lookups, key=lambda item: item[0] != "exact")
        ]

    async def pre_request(self, ctx: RequestContext) -> None:
        for _, call in self._callers["pre_request"]:
            for result in call(ctx=ctx):
                await await_me_maybe(result)

    async def cache_lookup(self, ctx: RequestContext) -> Response | StreamResponse | None:
        """Ask the caches in precedence order; the first answer wins, later ones do not run.

        Sets ``ctx.cache_status`` from what the lookups reported (see
        :meth:`RequestContext.cache_consulted`), the one place the statuses are decided.
        """
        consulted = False
        similar = False
        for _, call, tier in self._lookups:
            ctx._cache_consulted = False
            for result in call(ctx=ctx):
                value = await await_me_maybe(result)
                if value is not None:
                    ctx.cache_status = "SEMANTIC HIT" if ctx.cache_similarity is not None else "HIT"
                    return value
            if ctx._cache_consulted:
                consulted = True
                similar = similar or tier == "similar"
        if not consulted:
            ctx.cache_status = "DISABLED"
        elif ctx.cache_force_refresh:
            ctx.cache_status = "REFRESH"
        else:
            ctx.cache_status = "SEMANTIC MISS" if similar else "MISS"
        return None

    def call_provider(
        self, ctx: RequestContext, target: Target
    ) -> Awaitable[Response | StreamResponse] | None:
        return self._hook.call_provider(ctx=ctx, target=target)

    async def on_error(
        self, ctx: RequestContext, target: Target, error: ProviderError
    ) -> Decision | None:
        return await await_me_maybe(self._hook.on_error(ctx=ctx, target=target, error=error))

    async def post_response(
        self, ctx: RequestContext, response: Response | StreamResponse | None
    ) -> None:
        # One implementation at a time so that one observer failing, even
        # synchronously, neither reaches the client nor stops the others.
        await self._each("post_response", {"ctx": ctx, "response": response})

    async def startup(self, gateway: Gateway) -> None:
        for _, call in self._callers["startup"]:
            for result in call(gateway=gateway):
                await await_me_maybe(result)

    async def shutdown(self, gateway: Gateway) -> None:
        await self._each("shutdown", {"gateway": gateway})

    async def ready(self, gateway: Gateway) -> list[str]:
        """Every plugin's readiness problems, each prefixed with the plugin's name."""
        problems: list[str] = []
        for name, call in self._callers["ready"]:
            found: Any
            try:
                found = [
                    problem
                    for result in call(gateway=gateway)
                    for problem in (await await_me_maybe(result)) or ()
                ]
            except Exception as exc:
                found = [f"readiness check failed: {type(exc).__name__}: {exc}"]
            problems.extend(f"{name}: {problem}" for problem in found)
        return problems

    def request_usage(
        self, ctx: RequestContext, response: Response | StreamResponse | None
    ) -> Usage | None:
        try:
            return self._hook.request_usage(ctx=ctx, response=response)
        except Exception as exc:
            log.error(
                "plugin_hook_failed", hook="request_usage", error=f"{type(exc).__name__}: {exc}"
            )
            return None

    def metrics(self, gateway: Gateway) -> list[Gauge]:
        gauges: list[Gauge] = []
        for name, call in self._callers["metrics"]:
            try:
                for found in call(gateway=gateway):
                    gauges.extend(cast("Sequence[Gauge] | None", found) or ())
            except Exception as exc:
                log.error(
                    "plugin_hook_failed",
                    plugin=name,
                    hook="metrics",
                    error=f"{type(exc).__name__}: {exc}",
                )
        return gauges

    def authenticate(self, token: str | None, headers: Mapping[str, str]) -> Principal | None:
        return self._hook.authenticate(token=token, headers=headers)

    def resolve_config(
        self, config_id: str, version: str | None, principal: Principal | None
    ) -> StoredConfig | None:
        return self._hook.resolve_config(config_id=config_id, version=version, principal=principal)

    def resolve_virtual_key(self, slug: str, principal: Principal | None) -> VirtualKey | None:
        return self._hook.resolve_virtual_key(slug=slug, principal=principal)

    def backend_ports(self, gateway: Gateway) -> set[int]:
        """The ports of every backend the plugins name (``backend_addresses``)."""
        ports: set[int] = set()
        for impl in reversed(self._hook.backend_addresses.get_hookimpls()):
            try:
                found = impl.function(*(gateway for _ in impl.argnames))
            except Exception as exc:
                log.error(
                    "plugin_hook_failed",
                    plugin=impl.plugin_name,
                    hook="backend_addresses",
                    error=f"{type(exc).__name__}: {exc}",
                )
                continue
            for address in cast("Sequence[str] | None", found) or ():
                port = address_port(address)
                if port is not None:
                    ports.add(port)
        return ports

    async def query_logs(self, gateway: Gateway, query: LogQuery) -> LogPage | None:
        """Stored request records from whichever plugin keeps them; None when none does."""
        return await await_me_maybe(self._hook.query_logs(gateway=gateway, query=query))

    async def aggregate_logs(self, gateway: Gateway, query: AggregateQuery) -> Aggregates | None:
        """Monitoring aggregates from whichever plugin keeps records; None when none does."""
        return await await_me_maybe(self._hook.aggregate_logs(gateway=gateway, query=query))

    async def deployment_secret(self, gateway: Gateway) -> str | None:
        """The secret a shared store keeps for the deployment; None when no plugin keeps one."""
        found = await await_me_maybe(self._hook.deployment_secret(gateway=gateway))
        return None if found is None else str(found)

    def register_routes(self, gateway: Gateway) -> list[Any]:
        routes: list[Any] = []
        for result in self._hook.register_routes(gateway=gateway):
            routes.extend(result)
        return routes

    def register_commands(self, cli: click.Group) -> None:
        self._hook.register_commands(cli=cli)

    def server_services(self, gateway: Gateway) -> list[Service]:
        """Every plugin's services for ``hookgate serve``, in plugin order."""
        services: list[Service] = []
        for result in reversed(self._hook.server_services(gateway=gateway)):
            services.extend(result)
        return services

    async def _each(self, hook_name: str, kwargs: dict[str, Any]) -> None:
        for name, call in self._callers[hook_name]:
            try:
                for result in call(**kwargs):
                    await await_me_maybe(result)
            except Exception as exc:
                log.error(
                    "plugin_hook_failed",
                    plugin=name,
                    hook=hook_name,
                    error=f"{type(exc).__name__}: {exc}",
                    exc_info=not isinstance(exc, GatewayError),
                )

    def implementers(self, hook_name: str) -> Sequence[str]:
        """Plugin names implementing ``hook_name``, in call order."""
        if hook_name == "cache_lookup":
            return [name for name, _, _ in self._lookups]
        if hook_name in self._callers:
            return [name for name, _ in self._callers[hook_name]]
        return [
            impl.plugin_name for impl in reversed(getattr(self._hook, hook_name).get_hookimpls())
        ]

    def monitor(
        self,
        before: Callable[[str, Sequence[Any], Mapping[str, Any]], None],
        after: Callable[..., None],
    ) -> Callable[[], None]:
        """Watch every hook call (``hookgate demo`` prints them); returns the undo function.

        Awaited hooks are seen once per implementation, as the core calls them one by one.
        """
        return self._pm.add_hookcall_monitoring(before, after)

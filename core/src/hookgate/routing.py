"""The routing plan: a request's config resolved into a tree of targets.

``build_plan`` turns a :class:`~hookgate.config.Config` (or just the request's provider and key)
into :class:`Target` leaves under :class:`Group` nodes, with virtual keys resolved, custom hosts
checked against the allow-list and ``override_params`` merged down the tree. Paths name nodes
the way Portkey's ``x-portkey-last-used-option-index`` does: ``config``,
``config.targets[1]``, ``config.targets[0].targets[1]``.

The core walks the plan with :class:`Walk`. A group's children are tried in the order a
strategy plugin wrote into ``RequestContext.route_order`` in ``pre_request`` (a load-balance
pick, a circuit breaker skipping a target); without one, a group tries its children in config
order, and a ``single`` group (no strategy) uses its first child with a non-zero weight.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from .config import CacheConfig, Config, RetryConfig, TargetConfig
from .errors import ConfigError
from .settings import Settings, VirtualKey

__all__ = [
    "Group",
    "Node",
    "Plan",
    "RequestTarget",
    "Target",
    "Walk",
    "build_plan",
    "default_order",
]


_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(eq=False, slots=True)
class _Node:
    path: str
    weight: float = 1.0
    retry: RetryConfig | None = None
    cache: CacheConfig | None = None
    request_timeout: float | None = None
    """Seconds."""
    parent: Group | None = None
    index: int = 0

    def inherited(self, name: str) -> Any:
        """The nearest value of ``name`` (``"retry"``, ``"cache"``, ...) here or above."""
        node: _Node | None = self
        while node is not None:
            value = getattr(node, name)
            if value is not None:
                return value
            node = node.parent
        return None

    def ancestors(self) -> Iterator[Group]:
        """Enclosing groups, innermost first."""
        node = self.parent
        while node is not None:
            yield node
            node = node.parent


@dataclass(eq=False, slots=True)
class Target(_Node):
    """A provider to call: what ``call_provider`` receives."""

    provider: str = ""
    api_key: str | None = field(default=None, repr=False)
    custom_host: str | None = None
    override_params: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    """Provider-specific fields from the config or virtual key (Azure's deployment, ...)."""
    virtual_key: str | None = None
    forward_headers: tuple[str, ...] = ()

    def describe(self) -> dict[str, Any]:
        """Everything that shapes the upstream call except secrets and weights."""
        return {
            "provider": self.provider,
            "custom_host": self.custom_host,
            "override_params": dict(self.override_params),
            "options": dict(self.options),
        }


@dataclass(eq=False, slots=True)
class Group(_Node):
    """Targets under a strategy: ``single`` (the core's: its first target with a weight), or
    a mode a strategy plugin declares (``fallback``, ``loadbalance``, ...)."""

    mode: str = "single"
    on_status_codes: tuple[int, ...] | None = None
    targets: list[Node] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return {"mode": self.mode, "targets": [child.describe() for child in self.targets]}


Node = Target | Group


@dataclass(slots=True)
class Plan:
    root: Node
    config_id: str | None = None
    """The id of the config the request named (its slug for a stored config)."""
    config_version: str | None = None
    """The version of the stored config that served the request; None for plugins.toml's."""

    def leaves(self) -> Iterator[Target]:
        stack: list[Node] = [self.root]
        while stack:
            node = stack.pop()
            if isinstance(node, Target):
                yield node
            else:
                stack.extend(reversed(node.targets))

    def groups(self) -> Iterator[Group]:
        stack: list[Node] = [self.root]
        while stack:
            node = stack.pop()
            if isinstance(node, Group):
                yield node
                stack.extend(reversed(node.targets))

    def describe(self) -> dict[str, Any]:
        """The plan without secrets or load-balance weights: what a cache key may cover."""
        return self.root.describe()


@dataclass(slots=True, frozen=True)
class RequestTarget:
    """What the request itself says about routing, outside any config (headers or arguments)."""

    provider: str | None = None
    api_key: str | None = field(default=None, repr=False)
    custom_host: str | None = None
    virtual_key: str | None = None


def default_order(group: Group) -> tuple[int, ...]:
    """A group's order when no strategy plugin wrote one: a ``single`` group uses its first
    child with a non-zero weight; any other mode tries its children in config order."""
    if group.mode == "single":
        return (next((i for i, t in enumerate(group.targets) if t.weight > 0), 0),)
    return tuple(range(len(group.targets)))


class Walk:
    """The core's walk over a plan: the targets to try, in order, and the pruning decisions
    ``on_error`` may make (:meth:`leave`).

    A group's order is read from ``route_order`` when the walk reaches the group; it is
    checked (indices of the group's children, each once) and stored back as a tuple, so an
    implementation of ``on_error`` sees the order the core applies and cannot change it.
    """

    __slots__ = ("_route_order", "_stack")

    def __init__(self, root: Node, route_order: dict[str, Sequence[int]]) -> None:
        self._route_order = route_order
        self._stack: list[tuple[Group | None, Iterator[Node]]] = [(None, iter((root,)))]

    def _order(self, group: Group) -> tuple[int, ...]:
        wanted = self._route_order.get(group.path)
        if wanted is None:
            order = default_order(group)
        else:
            order = tuple(wanted)
            size = len(group.targets)
            if len(set(order)) != len(order) or any(
                isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < size for i in order
            ):
                raise ValueError(
                    f"route_order[{group.path!r}] = {list(order)!r} is not a list of distinct "
                    f"indices of its {size} targets"
                )
        self._route_order[group.path] = order
        return order

    def __iter__(self) -> Iterator[Target]:
        return self

    def __next__(self) -> Target:
        stack = self._stack
        while stack:
            node = next(stack[-1][1], None)
            if node is None:
                stack.pop()
            elif isinstance(node, Target):
                return node
            else:
                stack.append((node, map(node.targets.__getitem__, self._order(node))))
        raise StopIteration

    def leave(self, group_path: str) -> bool:
        """Skip what is left of every group inside ``group_path``, so that the next target
        is that group's next child. False (and nothing skipped) when the walk is not inside
        such a group."""
        for depth in range(len(self._stack) - 1, -1, -1):
            group = self._stack[depth][0]
            if group is not None and group.path == group_path:
                del self._stack[depth + 1 :]
                return True
        return False


def build_plan(
    config: Config | None,
    request: RequestTarget,
    settings: Settings,
    *,
    providers: Collection[str],
    strategies: Collection[str],
    aliases: Mapping[str, str] = _EMPTY,
    config_id: str | None = None,
    config_version: str | None = None,
    virtual_keys: Callable[[str], VirtualKey | None] | None = None,
    cache_modes: Collection[str] | None = None,
    suggest: Callable[[str, str], str] | None = None,
) -> Plan:
    """Resolve a config into a plan; raise :class:`ConfigError` saying what is wrong.

    Provider names are lower-cased and aliases replaced by their canonical name, so
    ``call_provider``, headers and logs all see ``lingyi`` whether a client said ``yi``.
    Virtual keys come from plugins.toml, else from ``virtual_keys`` (a plugin's store).
    Strategy and cache modes are checked against what the enabled plugins declare
    (``strategies``, ``cache_modes``; None skips the cache check); ``suggest(kind, mode)``
    says which plugin to enable for a mode nobody enabled provides.
    """
    if config is None:
        config = Config()
    builder = _Builder(
        request, settings, providers, strategies, aliases, virtual_keys, cache_modes, suggest
    )
    return Plan(
        root=builder.node(config, "config", None, 0, _EMPTY),
        config_id=config_id,
        config_version=config_version,
    )


class _Builder:
    def __init__(
        self,
        request: RequestTarget,
        settings: Settings,
        providers: Collection[str],
        strategies: Collection[str],
        aliases: Mapping[str, str],
        virtual_keys: Callable[[str], VirtualKey | None] | None = None,
        cache_modes: Collection[str] | None = None,
        suggest: Callable[[str, str], str] | None = None,
    ) -> None:
        self.request = request
        self.virtual_keys = virtual_keys
        self.settings = settings
        self.providers = providers
        self.strategies = strategies
        self.aliases = aliases
        self.cache_modes = cache_modes
        self.suggest = suggest

    def unserved(self, kind: str, where: str, mode: str) -> ConfigError:
        hint = self.suggest(kind, mode) if self.suggest is not None else ""
        return ConfigError(
            f"{where} is {mode!r}, but no enabled plugin provides it"
            + (f": {hint}" if hint else ""),
            code="strategy_not_enabled" if kind == "strategy" else "cache_mode_not_enabled",
        )

    def node(
        self,
        config: TargetConfig,
        path: str,
        parent: Group | None,
        index: int,
        inherited_params: Mapping[str, Any],
    ) -> Node:
        if (
            config.cache is not None
            and self.cache_modes is not None
            and config.cache.mode not in self.cache_modes
        ):
            raise self.unserved("cache", f"{path}.cache.mode", config.cache.mode)
        params = inherited_params
        if config.override_params:
            params = {**inherited_params, **config.override_params}
        common: dict[str, Any] = {
            "path": path,
            "weight": 1.0 if config.weight is None else config.weight,
            "retry": config.retry,
            "cache": config.cache,
            "request_timeout": None
            if config.request_timeout is None
            else config.request_timeout / 1000,
            "parent": parent,
            "index": index,
        }
        if config.targets is None:
            return self.target(config, params, common)
        if not config.targets:
            raise ConfigError(f"{path}.targets must not be empty")
        strategy = config.strategy
        mode = strategy.mode if strategy else "single"
        if mode != "single" and mode not in self.strategies:
            raise self.unserved("strategy", f"{path}.strategy.mode", mode)
        group = Group(
            mode=mode,
            on_status_codes=tuple(strategy.on_status_codes)
            if strategy and strategy.on_status_codes is not None
            else None,
            **common,
        )
        group.targets = [
            self.node(child, f"{path}.targets[{i}]", group, i, params)
            for i, child in enumerate(config.targets)
        ]
        return group

    def target(
        self, config: TargetConfig, params: Mapping[str, Any], common: dict[str, Any]
    ) -> Target:
        path = common["path"]
        request = self.request
        provider = config.provider
        api_key = config.api_key
        custom_host = config.custom_host
        options = config.options
        virtual_key = config.virtual_key
        if virtual_key is None and provider is None:
            virtual_key = request.virtual_key
        if virtual_key is not None:
            vk = self.settings.virtual_keys.get(virtual_key)
            if vk is None and self.virtual_keys is not None:
                vk = self.virtual_keys(virtual_key)
            if vk is None:
                raise ConfigError(
                    f"{path}: unknown virtual key {virtual_key!r}", code="invalid_virtual_key"
                )
            provider = provider or vk.provider
            api_key = api_key or vk.api_key
            custom_host = custom_host or vk.custom_host
            options = {**vk.options, **options}
        if provider is None:
            provider = request.provider or self.settings.gateway.default_provider
            custom_host = custom_host or request.custom_host
        if provider is None:
            raise ConfigError(
                f"{path}: no provider: name one with x-portkey-provider, a config's "
                "'provider' or 'virtual_key', or [gateway] default_provider in plugins.toml",
                code="missing_provider",
            )
        provider = provider.lower()
        provider = self.aliases.get(provider, provider)
        if provider not in self.providers:
            known = ", ".join(sorted(self.providers)) or "none"
            raise ConfigError(
                f"{path}: unknown provider {provider!r} (enabled providers: {known})",
                code="unknown_provider",
            )
        # Portkey forwards the caller's Authorization key to targets without their own;
        # hookgate never forwards it to a provider other than the one the caller named.
        named = request.provider.lower() if request.provider else None
        if api_key is None and (named is None or self.aliases.get(named, named) == provider):
            api_key = request.api_key
        if custom_host is not None:
            self.check_custom_host(custom_host, path)
        return Target(
            provider=provider,
            api_key=api_key,
            custom_host=custom_host.rstrip("/") if custom_host else None,
            override_params=params,
            options=options,
            virtual_key=virtual_key,
            forward_headers=tuple(h.lower() for h in config.forward_headers or ()),
            **common,
        )

    def check_custom_host(self, custom_host: str, path: str) -> None:
        allowed = self.settings.gateway.custom_hosts
        try:
            url = urlsplit(custom_host)
            host = url.hostname
        except ValueError:
            host = None
            url = None
        if url is None or url.scheme not in ("http", "https") or not host:
            raise ConfigError(
                f"Invalid custom host: {path}.custom_host must be an http(s) URL",
                code="invalid_custom_host",
            )
        if "*" not in allowed and host not in allowed:
            raise ConfigError(
                f"Invalid custom host: {host!r} is not in [gateway] custom_hosts",
                code="invalid_custom_host",
            )

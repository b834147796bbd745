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
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from .config import CacheConfig, Config, RetryConfig, TargetConfig
from .errors import ConfigError
from .settings import LOOPBACK_HOSTS, Settings, VirtualKey

__all__ = [
    "Group",
    "HostPolicy",
    "Node",
    "Plan",
    "RequestTarget",
    "Target",
    "Walk",
    "build_plan",
    "default_order",
    "route_by_model",
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
    host_chosen_by_caller: bool = False
    """``custom_host`` came from the request (its own config or ``x-portkey-custom-host``),
    not from the operator (plugins.toml, a stored config, a virtual key)."""

    def operator_key(self, configured: str | None) -> str | None:
        """The key a provider plugin holds for this target (``api_key`` in its settings) if it
        may be sent: a plugin's key goes only to the plugin's own host. When the request chose
        the host, a configured key is refused with a 400 that says why.

        Provider plugins call it as ``target.api_key or target.operator_key(settings.api_key)``.
        """
        if not configured:
            return None
        if self.host_chosen_by_caller:
            raise ConfigError(
                f"{self.path}: the request chose the custom host {self.custom_host!r} but brings "
                f"no key of its own, and the {self.provider!r} key held in plugins.toml is only "
                "sent to its own host: send your provider key (Authorization, x-api-key or "
                "api_key in the config) or drop the custom host",
                code="credential_host_mismatch",
            )
        return configured

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
    config_number: int | None = None
    """That version's number in the config's history (1, 2, ...), when the store counts."""

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


MODEL_ROUTING_RULE = (
    "model strings route: '@<virtual key>/<model>' uses that virtual key (or that provider, "
    "when no virtual key has the name); '<provider>/<model>', with a provider or alias listed "
    "above, uses that provider with the caller's key; any other model (meta-llama/...) is "
    "sent as it is. x-portkey-provider, x-portkey-virtual-key and a config naming targets "
    "win over the model string."
)
"""What ``hookgate providers`` prints about :func:`route_by_model`."""


def route_by_model(
    model: str,
    request: RequestTarget,
    *,
    providers: Collection[str],
    aliases: Mapping[str, str],
    is_virtual_key: Callable[[str], bool],
) -> tuple[RequestTarget, str] | None:
    """The routing a model string names, and the model to send: None to send it as it is.

    ``@<slug>/<model>`` (Portkey's form) picks the virtual key ``slug`` (or, when no virtual
    key has that name, the provider ``slug``); ``<provider>/<model>`` (LiteLLM's form) picks
    that provider when it is enabled under that name or an alias, and the caller's key (from
    ``Authorization``) becomes that provider's key. Anything else, ``meta-llama/Llama-3-8b``
    for Together, goes through unchanged, and so does every model string of a request that
    already names its provider or virtual key. A config naming targets is checked by the
    caller (the gateway), since it wins too.
    """
    if request.provider is not None or request.virtual_key is not None:
        return None
    prefix, _, rest = model.partition("/")
    if not rest:
        return None
    if prefix.startswith("@"):
        slug = prefix[1:]
        if not slug:
            return None
        name = slug.lower()
        if not is_virtual_key(slug) and (name in providers or name in aliases):
            return replace(request, provider=name), rest
        # An unknown slug is the plan's "unknown virtual key" 400, not a silent default.
        return replace(request, virtual_key=slug), rest
    name = prefix.lower()
    if name in providers or name in aliases:
        return replace(request, provider=name), rest
    return None


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


_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class HostPolicy:
    """Which custom hosts a request may choose.

    Built from ``[gateway] custom_hosts``: a bare host (``127.0.0.1``) allows every port of
    it, an entry with a scheme (``http://127.0.0.1:11434``) exactly that scheme, host and
    port, ``"*"`` any host. Whatever the list says, ``refused_ports`` are never reachable: the
    gateway's own listen port, the ports of the backends its plugins use (Redis, PostgreSQL,
    Chroma, from the ``backend_addresses`` hook) and ``[gateway] refused_ports``.
    ``closed`` (a reason) refuses every custom host: a server bound to a non-loopback
    address whose plugins.toml does not spell out ``custom_hosts``.
    """

    any_host: bool = False
    hosts: frozenset[str] = frozenset()
    pinned: frozenset[tuple[str, str, int]] = frozenset()
    refused_ports: frozenset[int] = frozenset()
    closed: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings, backend_ports: Collection[int] = ()) -> HostPolicy:
        gateway = settings.gateway
        hosts: set[str] = set()
        pinned: set[tuple[str, str, int]] = set()
        for entry in gateway.custom_hosts:
            if "://" in entry:
                url = urlsplit(entry)
                port = url.port or _DEFAULT_PORTS.get(url.scheme, 0)
                pinned.add((url.scheme, (url.hostname or "").lower(), port))
            else:
                hosts.add(entry.strip("[]").lower())
        closed = None
        server = settings.server
        loopback = server.host in LOOPBACK_HOSTS or _is_loopback_ip(server.host)
        if not loopback and "custom_hosts" not in gateway.model_fields_set:
            closed = (
                f"this gateway listens on {server.host}, and its plugins.toml does not list "
                "[gateway] custom_hosts, so requests may not choose a custom host"
            )
        refused = {*gateway.refused_ports, *backend_ports}
        if server.port:
            refused.add(server.port)
        return cls(
            any_host="*" in hosts,
            hosts=frozenset(hosts - {"*"}),
            pinned=frozenset(pinned),
            refused_ports=frozenset(refused),
            closed=closed,
        )

    def check(self, custom_host: str, path: str, *, chosen_by_caller: bool = True) -> None:
        """Raise :class:`ConfigError` ("Invalid custom host: ...") unless ``custom_host`` is an
        http(s) URL without user info, query or fragment that the policy allows. Hosts the
        operator declared are only checked for their shape."""
        url, port = _parse_host(custom_host, path)
        if not chosen_by_caller:
            return
        if self.closed is not None:
            raise ConfigError(f"Invalid custom host: {self.closed}", code="invalid_custom_host")
        host = url.hostname or ""
        if port in self.refused_ports:
            raise ConfigError(
                f"Invalid custom host: port {port} is the gateway's own or one of its backends' "
                "(Redis, PostgreSQL, Chroma), and is never reachable as a custom host",
                code="invalid_custom_host",
            )
        if self.any_host or host in self.hosts or (url.scheme, host, port) in self.pinned:
            return
        raise ConfigError(
            f"Invalid custom host: {_origin(url.scheme, host, port)!r} is not in [gateway] "
            "custom_hosts",
            code="invalid_custom_host",
        )


def _is_loopback_ip(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _origin(scheme: str, host: str, port: int) -> str:
    if ":" in host:
        host = f"[{host}]"
    if _DEFAULT_PORTS.get(scheme) == port:
        return f"{host}" if scheme == "http" and port == 80 else f"{scheme}://{host}"
    return f"{host}:{port}"


def _parse_host(custom_host: str, path: str) -> tuple[Any, int]:
    def invalid(why: str) -> ConfigError:
        return ConfigError(
            f"Invalid custom host: {path}.custom_host {why}", code="invalid_custom_host"
        )

    if not custom_host.isascii() or not custom_host.isprintable() or " " in custom_host:
        raise invalid("must be an http(s) URL of printable ASCII without spaces")
    try:
        url = urlsplit(custom_host)
        host = url.hostname
        port = url.port
    except ValueError:
        raise invalid("must be an http(s) URL with a valid host and port") from None
    if url.scheme not in ("http", "https") or not host:
        raise invalid("must be an http(s) URL")
    if "@" in url.netloc:
        raise invalid("must not contain user info (user@host): send keys in headers")
    if url.query or url.fragment or "?" in custom_host or "#" in custom_host:
        raise invalid("must not have a query or a fragment")
    return url, port if port is not None else _DEFAULT_PORTS[url.scheme]


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
    config_number: int | None = None,
    virtual_keys: Callable[[str], VirtualKey | None] | None = None,
    cache_modes: Collection[str] | None = None,
    suggest: Callable[[str, str], str] | None = None,
    hosts: HostPolicy | None = None,
) -> Plan:
    """Resolve a config into a plan; raise :class:`ConfigError` saying what is wrong.

    Provider names are lower-cased and aliases replaced by their canonical name, so
    ``call_provider``, headers and logs all see ``lingyi`` whether a client said ``yi``.
    Virtual keys come from plugins.toml, else from ``virtual_keys`` (a plugin's store).
    Strategy and cache modes are checked against what the enabled plugins declare
    (``strategies``, ``cache_modes``; None skips the cache check); ``suggest(kind, mode)``
    says which plugin to enable for a mode nobody enabled provides.

    A config with a ``config_id`` is the operator's (plugins.toml or a store): its keys and
    hosts are trusted. An inline config is the caller's: its ``custom_host`` is checked
    against ``hosts``, and an operator-held key (a virtual key's) is never paired with a host
    the caller chose, unless that virtual key says ``allow_caller_host = true``.
    """
    if config is None:
        config = Config()
    if hosts is None:
        hosts = HostPolicy.from_settings(settings)
    builder = _Builder(
        request,
        settings,
        providers,
        strategies,
        aliases,
        virtual_keys,
        cache_modes,
        suggest,
        hosts=hosts,
        trusted=config_id is not None,
    )
    return Plan(
        root=builder.node(config, "config", None, 0, _EMPTY),
        config_id=config_id,
        config_version=config_version,
        config_number=config_number,
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
        *,
        hosts: HostPolicy,
        trusted: bool,
    ) -> None:
        self.request = request
        self.virtual_keys = virtual_keys
        self.settings = settings
        self.providers = providers
        self.strategies = strategies
        self.aliases = aliases
        self.cache_modes = cache_modes
        self.suggest = suggest
        self.hosts = hosts
        self.trusted = trusted

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
        key_by_caller = api_key is not None and not self.trusted
        custom_host = config.custom_host
        host_by_caller = custom_host is not None and not self.trusted
        options = config.options
        virtual_key = config.virtual_key
        key_holder: str | None = None  # the virtual key whose secret the target carries
        allow_caller_host = False
        from_request = False
        if virtual_key is None and provider is None:
            virtual_key = request.virtual_key
            from_request = virtual_key is not None
        if virtual_key is not None:
            vk = self.settings.virtual_keys.get(virtual_key)
            if vk is None and self.virtual_keys is not None:
                vk = self.virtual_keys(virtual_key)
            if vk is None:
                raise ConfigError(
                    f"{path}: unknown virtual key {virtual_key!r}", code="invalid_virtual_key"
                )
            provider = provider or vk.provider
            # A virtual key is the operator's credential bundle (its key, its options such
            # as an Azure token), whatever the request adds to it.
            key_holder, allow_caller_host = virtual_key, vk.allow_caller_host
            if api_key is None and vk.api_key:
                api_key, key_by_caller = vk.api_key, False
            if custom_host is None and vk.custom_host:
                custom_host, host_by_caller = vk.custom_host, False
            options = {**vk.options, **options}
        if provider is None:
            provider = request.provider or self.settings.gateway.default_provider
            from_request = True
        if from_request and custom_host is None and request.custom_host is not None:
            custom_host, host_by_caller = request.custom_host, True
        if provider is None:
            raise ConfigError(
                f"{path}: no provider: name one with the x-portkey-provider header, or send "
                "x-portkey-config with a 'provider' or 'virtual_key' (or x-portkey-virtual-key)",
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
            key_by_caller = api_key is not None
        if custom_host is not None:
            self.hosts.check(custom_host, path, chosen_by_caller=host_by_caller)
            operator_key = api_key is not None and not key_by_caller
            operator_key = operator_key or key_holder is not None
            operator_key = operator_key or (self.trusted and bool(config.options))
            if host_by_caller and operator_key and not allow_caller_host:
                holder = f"virtual key {key_holder!r}" if key_holder else "a stored config"
                raise ConfigError(
                    f"{path}: the request pairs a key the gateway holds ({holder}) with a "
                    f"custom host it chose ({custom_host!r}); keys held by the gateway are "
                    "only sent to their own hosts. Send your own provider key with a custom "
                    "host, or ask the operator to set allow_caller_host = true on the "
                    "virtual key",
                    code="credential_host_mismatch",
                )
        return Target(
            provider=provider,
            api_key=api_key,
            custom_host=custom_host.rstrip("/") if custom_host else None,
            override_params=params,
            options=options,
            virtual_key=virtual_key,
            forward_headers=tuple(h.lower() for h in config.forward_headers or ()),
            host_chosen_by_caller=host_by_caller if custom_host else False,
            **common,
        )

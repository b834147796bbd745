"""The hooks a hookgate plugin can implement.

A request flows through five hooks::

    pre_request ─► cache_lookup ─► call_provider ⇄ on_error ─► post_response
    (every plugin)  (first hit)     (the target's   (first       (every plugin,
                                     provider)       decision)    after the answer)

and more tie plugins to the process: ``startup`` and ``shutdown`` open and close their
connection pools, ``ready`` reports backends' health, ``backend_addresses`` names them (so
no request may reach them), ``register_routes`` and ``register_commands`` add HTTP routes
and CLI subcommands, ``server_services`` names the processes ``hookgate serve`` runs beside
its workers. Three let a plugin hold what plugins.toml declares statically (the control
plane's store): ``authenticate`` turns a gateway key into a :class:`~hookgate.auth.Principal`,
``resolve_config`` a config id into a stored config, ``resolve_virtual_key`` a virtual key's
slug into its provider and key. They run on the request path, so an implementation answers
from memory (a snapshot it refreshes in the background), never from a database. ``query_logs`` and
``aggregate_logs`` let one plugin read the request records another stores (see
:mod:`hookgate.logquery`).

pluggy calls implementations synchronously, and a coroutine is never None, so:

- ``call_provider``, ``on_error``, ``query_logs`` and ``aggregate_logs`` stop at the first non-None result: implement them with
  plain ``def``, return None to decline and an awaitable (or, for ``on_error``, a
  :class:`~hookgate.context.Decision`) to claim. The loader rejects ``async def`` for them.
- ``authenticate``, ``resolve_config`` and ``resolve_virtual_key`` stop at the first non-None
  result too and answer synchronously (plain ``def``, no awaitable): the loader rejects
  ``async def`` for them.
- ``pre_request``, ``cache_lookup``, ``post_response``, ``startup``, ``shutdown`` and
  ``ready`` may be ``async def`` or plain ``def``. The core calls them one implementation at
  a time and awaits each before calling the next, so sync and async implementations run in
  exactly the listed order. ``wrapper=True``/``hookwrapper=True`` implementations of these
  hooks are refused at load time: a wrapper could only see coroutines, never their results.
  Wrappers of the other hooks work as pluggy defines them.

Hooks run in the order plugins are listed in ``[gateway] plugins``, except where an
implementation pins itself with ``tryfirst``/``trylast``, and except that every exact-match
cache's ``cache_lookup`` runs before any similarity cache's (``cache_match = "similar"``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pluggy import HookimplMarker, HookspecMarker

if TYPE_CHECKING:
    import click

    from .auth import Principal
    from .config import StoredConfig
    from .context import Decision, RequestContext
    from .errors import ProviderError
    from .gateway import Gateway
    from .logquery import AggregateQuery, Aggregates, LogPage, LogQuery
    from .observe import Gauge, Usage
    from .responses import Response, StreamResponse
    from .routing import Target
    from .services import Service
    from .settings import VirtualKey

__all__ = ["PROJECT", "hookimpl", "hookspec"]

PROJECT = "hookgate"
hookspec = HookspecMarker(PROJECT)
hookimpl = HookimplMarker(PROJECT)


@hookspec
def pre_request(ctx: RequestContext) -> Awaitable[None] | None:
    """Inspect or amend a request before anything answers it.

    Every plugin's implementation runs, in order, each finished before the next starts.
    Amend ``ctx.body`` or ``ctx.metadata``, or steer the routing: a strategy plugin (one that
    declares ``strategies = ("mode", ...)``) writes ``ctx.route_order[group.path]``, the
    indices of the group's targets in the order to try them, for each group of
    ``ctx.plan`` whose ``mode`` it declared (a load-balance pick, targets a circuit breaker
    skips). A group left alone is tried in config order.

    :param ctx: the request, its resolved plan in ``ctx.plan``.
    :raises GatewayError: to reject the request with that error's status.
    """


@hookspec
def cache_lookup(ctx: RequestContext) -> Awaitable[Response | StreamResponse | None] | None:
    """Answer the request from a cache, or return None.

    Runs once, after ``pre_request`` and before any provider is called. Exact-match caches
    are asked first, then similarity caches (a plugin's ``cache_match``), each in listed
    order; the first answer that is not None wins and later lookups are not run. Derive the
    key from ``ctx.body`` and ``ctx.plan.describe()``, never from a load-balance pick. Call
    ``ctx.cache_consulted()`` for every request your cache serves (hit, miss, or skipped for
    ``ctx.cache_force_refresh``); a similarity hit also sets ``ctx.cache_similarity``. The core
    alone sets ``ctx.cache_status`` from that, so one cache plugin never changes what another
    reports. A broken backend must count as a miss, never raise. For a streaming request
    return a :class:`StreamResponse`.
    """


@hookspec(firstresult=True)
def call_provider(
    ctx: RequestContext, target: Target
) -> Awaitable[Response | StreamResponse] | None:
    """Call the upstream if this plugin serves ``target.provider``.

    Decide synchronously: return None if not yours, else the awaitable that makes the call.
    Stops at the first non-None result. Send ``ctx.request_for(target)`` (the body with the
    target's ``override_params``) in the wire format of ``ctx.endpoint``. A streaming call
    resolves once the upstream has answered with its status and headers.

    :param target: provider, key, custom host, override params and options.
    :raises ProviderError: carrying the upstream's ``status``, ``body`` and ``retry_after``,
        or one of its subclasses when no answer came (connection, timeout, garbage).
    """


@hookspec(firstresult=True)
def on_error(
    ctx: RequestContext, target: Target, error: ProviderError
) -> Decision | Awaitable[Decision | None] | None:
    """Decide what follows a failed call to ``target``.

    Return ``Decision.retry(delay, last=...)`` to call the same target again (``last``: it is
    the final retry allowed, so its failure exhausts the target's retries),
    ``Decision.fallback(group=path)`` to move on to the next child of group ``path`` (what
    is left of the groups inside it is skipped; without ``group``: the next target of the
    walk), ``Decision.stop()`` to give up with ``error``, or None for no opinion. The first
    decision wins; with none, the core stops. Retry policies decide first (``tryfirst``), so
    a target's retries are spent before a strategy moves on. ``ctx.attempts`` holds every
    attempt so far, the failed one last; the core records each decision on its attempt.
    Never edit ``ctx.route_order`` here: the core applies the decision.
    """


@hookspec
def post_response(
    ctx: RequestContext, response: Response | StreamResponse | None
) -> Awaitable[None] | None:
    """Observe the outcome: store in caches, log, count, account tokens and cost.

    Every implementation runs, once per request, after the answer is complete (for a
    stream: after its last event, with the events in ``ctx.events``); ``response`` is None
    and ``ctx.error`` is set when the request failed. An implementation that raises is
    logged and skipped; it never changes what the client gets. Keep it quick: hand slow
    work (disk, network) to a background task.
    """


@hookspec
def startup(gateway: Gateway) -> Awaitable[None] | None:
    """Open connection pools and clients, once per process, before the first request."""


@hookspec
def shutdown(gateway: Gateway) -> Awaitable[None] | None:
    """Close what ``startup`` opened and flush buffers. Errors are logged, not raised."""


@hookspec
def ready(gateway: Gateway) -> Awaitable[Sequence[str] | None] | Sequence[str] | None:
    """Report what keeps this plugin from serving: ``GET /ready`` answers 503 with them.

    Return (or await to) a list of short problems, e.g. ``["redis at localhost:6379:
    connection refused"]``; an empty list or None means ready. Called only by ``/ready``
    (a load balancer's readiness probe), after ``startup``, never on the request path: a
    cheap check such as a ping with a short timeout (≤ 1 s), no secrets in the text. A
    plugin that raises is reported as not ready with the exception's type and message.
    """


@hookspec(firstresult=True)
def deployment_secret(gateway: Gateway) -> Awaitable[str] | None:
    """Keep the deployment secret where every instance finds it: a shared store answers.

    Asked (through :meth:`Gateway.deployment_secret`) only when neither ``[gateway] secret``
    nor ``HOOKGATE_SECRET`` is set, possibly before this plugin's ``startup``. A plugin whose
    store several instances share returns the awaitable of the secret it keeps there,
    generating it the first time (once, even when instances ask together); any other plugin
    returns None, and the secret is then kept in a file beside plugins.toml. Plain ``def``;
    the awaitable works off the event loop.

    :raises Exception: when the store cannot be reached (the gateway then uses a secret of
        this process only, and says so in the log).
    """


@hookspec
def backend_addresses(gateway: Gateway) -> Sequence[str] | None:
    """Name the backends this plugin connects to, so no request can reach them.

    Return URLs (``redis://127.0.0.1:6380/0``, ``postgresql://db:5432/hookgate``,
    ``http://127.0.0.1:8000``) or ``host:port`` strings; their ports are refused as a custom
    host's port. Called when the gateway is built and again after ``startup`` (so a backend
    a plugin started, such as a supervised Chroma server, is included). Never put a
    password into the answer: only the port is kept.
    """


@hookspec
def server_services(gateway: Gateway) -> Sequence[Service] | None:
    """Name the processes ``hookgate serve`` must run for its workers (a shared store).

    Called once, synchronously, in the server's parent process, after the gateway is built
    and before any worker is forked; never in embedded use. Return :class:`~hookgate.services.Service`
    commands (or None). The contract:

    - The parent starts every service before it forks the workers, but does not wait for
      them: a worker may get requests before a service answers, so the plugin must treat a
      service it cannot reach yet like a broken backend (a miss and a warning) and say so in
      its ``ready`` hook.
    - A service that exits while the server runs is started again (after 0.2 s, doubling up
      to 5 s while it keeps failing); it must pick up its state from disk.
    - When the server stops, every service gets SIGTERM after the workers have finished, and
      SIGKILL ``stop_timeout`` seconds later.
    - The workers are forked from the process this hook ran in: what the implementation
      stores on the plugin object (an address, a token) is what each worker starts with.
    - Raise :class:`~hookgate.errors.SettingsError` to refuse to serve (a resource already in
      use by another server): ``hookgate serve`` exits with its message.
    """


@hookspec
def register_routes(gateway: Gateway) -> Sequence[Any] | None:
    """Return Starlette routes to add to ``hookgate serve`` (``/metrics``, a console).

    An endpoint that runs through the pipeline is better declared as an
    :class:`~hookgate.endpoints.EndpointSpec` in the plugin's ``endpoints``.

    Called once when the server app is built; never in embedded use.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add subcommands to the ``hookgate`` CLI with ``@cli.command()``."""


@hookspec(firstresult=True)
def request_usage(ctx: RequestContext, response: Response | StreamResponse | None) -> Usage | None:
    """The tokens an answered request used and their cost in US dollars, or None.

    Answered by the plugin that keeps prices (``logging``), for plugins that account for
    spend (``limits``). Call it from ``post_response``, once the answer is complete. Plain
    ``def``: it reads what is already on ``ctx`` and does no I/O.
    """


@hookspec
def metrics(gateway: Gateway) -> Sequence[Gauge] | None:
    """Gauges this plugin reports for the whole process group (shared counters' values).

    The plugin serving ``/metrics`` adds them to what it exposes. Called per scrape, off the
    request path; keep it quick and return at most a bounded number of series.
    """


@hookspec(firstresult=True)
def authenticate(token: str | None, headers: Mapping[str, str]) -> Principal | None:
    """Say who a gateway key belongs to.

    Called once per request (every route, the admin API's too) when the key is not one of
    ``[server] api_keys``. Return the key's :class:`~hookgate.auth.Principal`, or None when the
    key is not yours; the first principal wins. A plugin that manages keys refuses a request
    it must not let through by raising: once any key of its exists, a missing, unknown,
    revoked or expired key is a 401. With no principal and no ``[server] api_keys`` the
    request goes on anonymously (``ctx.principal`` is None). Answer from memory: a hash and a
    dictionary look-up, never a database query.

    :param token: the key from ``x-portkey-api-key`` (or ``Authorization`` when the deployment
        accepts gateway keys there); None when the request carries none.
    :param headers: the request's headers, lower-case names.
    :raises AuthenticationError: to refuse the request with a 401.
    """


@hookspec(firstresult=True)
def query_logs(gateway: Gateway, query: LogQuery) -> Awaitable[LogPage] | None:
    """Read stored request records: the store that keeps them answers (first result wins).

    Decide synchronously: None if this plugin keeps no records, else the awaitable that
    reads them off the event loop (a thread, an async driver): never block the loop, and
    never slow the request path. Records come newest first (``ts``, then insertion order),
    at most ``query.limit``, each matching every field of ``query.filter``; ``next_cursor``
    continues after the last one (keyset pagination, opaque to the caller).

    :param query: filter, page size and cursor (:class:`hookgate.logquery.LogQuery`).
    :raises BadRequestError: for a cursor this store did not make.
    """


@hookspec(firstresult=True)
def resolve_config(
    config_id: str, version: str | None, principal: Principal | None
) -> StoredConfig | None:
    """Find a stored config by id: ``x-portkey-config: pc-abc`` or ``pc-abc@<version>``.

    Called for ids plugins.toml does not declare. Return the current version (or the one
    ``version`` pins), or None when the id is not yours; the core answers an id nobody knows
    with a 400 ``config_not_found``. A config the ``principal`` may not see (another
    workspace's) is None as well: to that key it does not exist. The core reuses the routing
    plan of a ``(slug, version)`` it has seen, so an answer must be immutable.

    :param principal: who asks; None when the deployment has no gateway keys.
    :raises ConfigError: for a pinned version the config does not have.
    """


@hookspec(firstresult=True)
def resolve_virtual_key(slug: str, principal: Principal | None) -> VirtualKey | None:
    """Find a stored virtual key by slug: its provider, decrypted key, custom host and
    provider fields. Return None when it is not yours or ``principal`` may not use it.

    Called while a routing plan is built, for slugs plugins.toml does not declare. Plans
    are reused, so a plugin whose keys change calls :meth:`Gateway.invalidate_plans`.
    """


@hookspec(firstresult=True)
def aggregate_logs(gateway: Gateway, query: AggregateQuery) -> Awaitable[Aggregates] | None:
    """Monitoring numbers over a time range from stored records (first result wins).

    Same contract as ``query_logs``: plain ``def``, None to decline, an awaitable that works
    off the event loop to answer. Stores should pre-aggregate so that a day of a million
    records answers within a second.

    :param query: the range and filter, the bucket width, an optional metadata key.
    """

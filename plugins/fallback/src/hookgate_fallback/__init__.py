"""hookgate plugin: fallback and weighted load balancing across targets, with a circuit breaker.

It provides the ``fallback`` and ``loadbalance`` strategy modes of Portkey's config schema.
The core walks the plan with :func:`hookgate.routing.candidates`; this plugin steers it:

- ``pre_request`` writes ``ctx.route_order`` for every group: a loadbalance group gets its one
  weighted random pick, a fallback group its children in order; targets whose circuit is open
  are left out (when every one is open, the least recently failed one stays in).
- ``on_error`` (after retry's) says ``fallback`` to the nearest enclosing fallback group that
  has a later candidate and for which the error qualifies, else ``stop``. An inner fallback
  group whose ``on_status_codes`` exclude the error is passed over: the decision names the
  outer group (``Decision.fallback(group=...)``), and the core skips the rest of the inner
  one and moves straight on to the outer group's next child, as Portkey does.
- ``post_response`` feeds every attempt of the request to the circuit breaker.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import TYPE_CHECKING, Annotated, Any

import structlog
from hookgate import (
    ConfigError,
    Decision,
    Group,
    ProviderError,
    RequestContext,
    Target,
    hookimpl,
)
from pydantic import BaseModel, ConfigDict, Field

from .breaker import CircuitState, MemoryBreaker, RedisBreaker, target_id

if TYPE_CHECKING:
    from hookgate import Gateway
    from hookgate.routing import Node

__all__ = ["BreakerSettings", "FallbackSettings", "Plugin", "Settings"]

log = structlog.get_logger("hookgate_fallback")

StatusCode = Annotated[int, Field(ge=100, le=599)]
NAME = "fallback"


class BreakerSettings(BaseModel):
    """``[plugins.fallback.circuit_breaker]``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    failure_threshold: Annotated[int, Field(ge=1)] = 5
    """Failures within ``window`` that open a target's circuit."""
    window: Annotated[float, Field(gt=0)] = 60.0
    """Seconds."""
    cooldown: Annotated[float, Field(gt=0)] = 30.0
    """Seconds an open circuit keeps the target out of routing before a trial call."""
    trial_timeout: Annotated[float, Field(gt=0)] = 60.0
    """Seconds a half-open target is reserved for the request making its trial call (others
    skip it meanwhile); a request that ends without calling it gives the claim back."""
    failure_status_codes: list[StatusCode] = Field(
        default_factory=lambda: [408, 429, 500, 502, 503, 504, 529]
    )
    """Upstream statuses that count as the target failing (no answer at all always counts;
    other 4xx are the caller's problem, not the target's)."""
    redis_url: str | None = None
    """Share circuits between gateway processes through Redis; unset: this process only."""
    redis_prefix: str = "hookgate:cb:"
    redis_timeout: Annotated[float, Field(gt=0)] = 0.25
    """Seconds a Redis command may take before the breaker falls back to this process's
    memory (and warns, at most every ``warn_every`` seconds)."""
    warn_every: Annotated[float, Field(ge=0)] = 30.0


class FallbackSettings(BaseModel):
    """``[plugins.fallback]`` in plugins.toml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fallback_on_client_errors: bool = True
    """As Portkey: a fallback group without ``on_status_codes`` moves on for any non-2xx.
    False: the statuses in ``client_error_codes`` stop the request instead (the request
    itself is wrong, another provider will not fix it)."""
    client_error_codes: list[StatusCode] = Field(default_factory=lambda: [400, 404, 422])
    seed: int | None = None
    """Seed the load-balance choice (tests, reproducible benchmarks)."""
    circuit_breaker: BreakerSettings = Field(default_factory=BreakerSettings)


Settings = FallbackSettings
"""The name the loader and older code use."""


class Plugin:
    """The ``fallback`` plugin."""

    Settings = FallbackSettings
    strategies = ("fallback", "loadbalance")

    def __init__(self, settings: FallbackSettings | None = None) -> None:
        self.settings = settings = settings or FallbackSettings()
        self.random = random.Random(settings.seed)
        cb = settings.circuit_breaker
        self.memory = MemoryBreaker(cb.failure_threshold, cb.window, cb.cooldown)
        self.shared: RedisBreaker | None = None
        self._failing_codes = frozenset(cb.failure_status_codes)
        self._tasks: set[asyncio.Task[None]] = set()
        self._warned_at = float("-inf")

    # ---- life cycle -------------------------------------------------------------------

    @hookimpl
    def backend_addresses(self, gateway: Gateway) -> list[str]:
        cb = self.settings.circuit_breaker
        return [cb.redis_url] if cb.enabled and cb.redis_url else []

    @hookimpl
    async def startup(self, gateway: Gateway) -> None:
        cb = self.settings.circuit_breaker
        if not cb.enabled or cb.redis_url is None:
            return
        from redis.asyncio import Redis

        client = Redis.from_url(
            cb.redis_url,
            socket_timeout=cb.redis_timeout,
            socket_connect_timeout=cb.redis_timeout,
            decode_responses=True,
        )
        self.shared = RedisBreaker(
            client, cb.redis_prefix, cb.failure_threshold, cb.window, cb.cooldown
        )

    @hookimpl
    async def ready(self, gateway: Gateway) -> list[str]:
        if self.shared is None:
            return []
        try:
            await asyncio.wait_for(self.shared.client.ping(), timeout=1.0)
        except Exception as exc:  # any failure to answer a PING means not ready
            return [f"circuit-breaker redis: {type(exc).__name__}"]
        return []

    @hookimpl
    async def shutdown(self, gateway: Gateway) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.shared is not None:
            await self.shared.aclose()
            self.shared = None

    # ---- routing ----------------------------------------------------------------------

    @hookimpl
    async def pre_request(self, ctx: RequestContext) -> None:
        root = ctx.plan.root
        if isinstance(root, Target):
            return
        states: dict[str, CircuitState] = {}
        ids: dict[int, str] = {}
        if self.settings.circuit_breaker.enabled:
            leaves = list(ctx.plan.leaves())
            ids = {id(leaf): target_id(leaf) for leaf in leaves}
            states = await self._states(set(ids.values()))
            half_open = [tid for tid, s in states.items() if s.state == "half_open"]
            if half_open:
                claimed = await self._claim(half_open)
                ctx.state[NAME] = claimed
                for tid in half_open:
                    if tid not in claimed:  # another request holds the trial call
                        states[tid] = CircuitState("open", states[tid].last_failure)
        skipped: list[str] = []
        for group in ctx.plan.groups():
            if group.mode not in self.strategies:
                continue
            if group.mode == "loadbalance" and not any(c.weight > 0 for c in group.targets):
                raise ConfigError(
                    f"{group.path}: every target of a loadbalance strategy has weight 0"
                )
            ctx.route_order[group.path] = self._order(group, ids, states, skipped)
        if skipped:
            log.info("circuit_skipped", trace_id=ctx.trace_id, targets=skipped)

    def _order(
        self,
        group: Group,
        ids: dict[int, str],
        states: dict[str, CircuitState],
        skipped: list[str],
    ) -> list[int]:
        children = group.targets
        if group.mode == "loadbalance":
            # A zero weight means "never picked", whatever the breaker says.
            children_in = [i for i, child in enumerate(children) if child.weight > 0]
        else:
            children_in = list(range(len(children)))
        available = [i for i in children_in if self._available(children[i], ids, states)]
        if not available:
            # Every target open: rather than failing without a call, try the one whose last
            # failure is oldest; it is the likeliest to have recovered.
            available = [
                min(children_in, key=lambda i: self._last_failure(children[i], ids, states))
            ]
        skipped += [children[i].path for i in children_in if i not in available]
        if group.mode == "fallback":
            return available
        weights = [children[i].weight for i in available]
        return [self.random.choices(available, weights)[0]]

    def _available(self, node: Node, ids: dict[int, str], states: dict[str, CircuitState]) -> bool:
        if not states:
            return True
        if isinstance(node, Target):
            return states[ids[id(node)]].state != "open"
        return any(self._available(child, ids, states) for child in node.targets)

    def _last_failure(
        self, node: Node, ids: dict[int, str], states: dict[str, CircuitState]
    ) -> float:
        if isinstance(node, Target):
            return states[ids[id(node)]].last_failure
        return min(self._last_failure(child, ids, states) for child in node.targets)

    # ---- errors -----------------------------------------------------------------------

    @hookimpl
    def on_error(
        self, ctx: RequestContext, target: Target, error: ProviderError
    ) -> Decision | None:
        declined: list[str] = []
        node: Node = target
        for group in target.ancestors():
            if group.mode == "fallback":
                order = ctx.route_order.get(group.path) or range(len(group.targets))
                position = order.index(node.index) if node.index in order else len(order)
                if position + 1 < len(order):
                    if self.qualifies(group, error):
                        log.info(
                            "fallback",
                            trace_id=ctx.trace_id,
                            failed=target.path,
                            status=error.upstream_status,
                            error=error.code,
                            group=group.path,
                        )
                        return Decision.fallback(
                            f"{group.path}: {target.path} failed", group=group.path
                        )
                    # This group does not move on for this error: an enclosing fallback
                    # group gets the say (the core skips what is left of this one).
                    declined.append(group.path)
            node = group
        if declined:
            log.info(
                "fallback_declined",
                trace_id=ctx.trace_id,
                failed=target.path,
                status=error.upstream_status,
                groups=declined,
            )
            return Decision.stop(f"status {error.upstream_status} is not in on_status_codes")
        return None

    def qualifies(self, group: Group, error: ProviderError) -> bool:
        """Does ``error`` make ``group`` move on to its next child?"""
        status = error.upstream_status
        if group.on_status_codes is not None:
            # No answer counts as what the client would see for it (502, 504).
            return (status if status is not None else error.http_status) in group.on_status_codes
        if status is None:
            return True
        if not self.settings.fallback_on_client_errors:
            return status not in self.settings.client_error_codes
        return status >= 300 or status < 200

    # ---- observing --------------------------------------------------------------------

    @hookimpl
    async def post_response(self, ctx: RequestContext, response: Any) -> None:
        attempts = ctx.attempts
        if len(attempts) > 1 and not isinstance(ctx.plan.root, Target):
            log.info(
                "route_taken",
                trace_id=ctx.trace_id,
                path=[f"{a.path}#{a.retry}:{a.status or a.error}" for a in attempts],
                answered=ctx.last_used_option if ctx.error is None else None,
            )
        if not self.settings.circuit_breaker.enabled:
            return
        leaves = {leaf.path: leaf for leaf in ctx.plan.leaves()}
        outcomes = []
        for attempt in attempts:
            leaf = leaves.get(attempt.path)
            if leaf is None:
                continue
            failed = attempt.error is not None and (
                attempt.status is None or attempt.status in self._failing_codes
            )
            succeeded = attempt.error is None and attempt.status is not None
            if failed or succeeded:
                outcomes.append((target_id(leaf), failed))
        claimed: set[str] = ctx.state.get(NAME) or set()
        unused = claimed - {tid for tid, _ in outcomes}
        if not outcomes and not unused:
            return
        if self.shared is None:
            self.memory.release_now(unused)
            self.memory.record_now(outcomes)
            return
        # Redis is a network round trip: off the response's path.
        task = asyncio.get_running_loop().create_task(self._record_shared(outcomes, unused))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- the shared store, degrading to memory ----------------------------------------

    async def _states(self, ids: set[str]) -> dict[str, CircuitState]:
        if self.shared is not None:
            try:
                async with asyncio.timeout(self.settings.circuit_breaker.redis_timeout):
                    return await self.shared.states(ids)
            except Exception as exc:  # any Redis trouble: route on local knowledge
                self._warn(exc)
        return self.memory.states_now(ids)

    async def _claim(self, ids: list[str]) -> set[str]:
        ttl = self.settings.circuit_breaker.trial_timeout
        if self.shared is not None:
            try:
                async with asyncio.timeout(self.settings.circuit_breaker.redis_timeout):
                    return await self.shared.claim(ids, ttl)
            except Exception as exc:
                self._warn(exc)
        return self.memory.claim_now(ids, ttl)

    async def _record_shared(self, outcomes: list[tuple[str, bool]], unused: set[str]) -> None:
        assert self.shared is not None
        try:
            async with asyncio.timeout(self.settings.circuit_breaker.redis_timeout * 4):
                if unused:
                    await self.shared.release(unused)
                await self.shared.record(outcomes)
            return
        except Exception as exc:
            self._warn(exc)
        self.memory.release_now(unused)
        self.memory.record_now(outcomes)

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at >= self.settings.circuit_breaker.warn_every:
            self._warned_at = now
            log.warning(
                "circuit_breaker_redis_unavailable",
                error=type(exc).__name__,
                fallback="memory",
            )

"""Small plugins the core tests register: classes with @hookimpl methods, nothing mocked."""

from __future__ import annotations

from typing import Any

from hookgate import Decision, GatewayError, RequestContext, Response, hookimpl


class AsyncCallProvider:
    providers = ("broken",)

    @hookimpl
    async def call_provider(self, ctx, target):  # the mistake the loader must catch
        return None


class MisspelledHook:
    @hookimpl
    def pre_reqest(self, ctx):
        return None


class Recorder:
    """Records what each hook saw."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    @hookimpl
    async def pre_request(self, ctx: RequestContext) -> None:
        self.seen.append(("pre_request", ctx.trace_id))

    @hookimpl
    async def post_response(self, ctx: RequestContext, response: Any) -> None:
        self.seen.append(("post_response", (ctx.status, ctx.completed, len(ctx.events), ctx.error)))


class Rejecter:
    @hookimpl
    async def pre_request(self, ctx: RequestContext) -> None:
        raise GatewayError("not today", status=403, code="forbidden")


class BrokenObserver:
    @hookimpl
    async def post_response(self, ctx: RequestContext, response: Any) -> None:
        raise RuntimeError("observer bug")


class BrokenSyncObserver:
    @hookimpl
    def post_response(self, ctx: RequestContext, response: Any) -> None:
        raise ValueError("sync observer bug")


class FixedCache:
    """Answers every lookup with a fixed body."""

    def __init__(self, body: dict[str, Any] | None) -> None:
        self.body = body
        self.lookups = 0

    @hookimpl
    async def cache_lookup(self, ctx: RequestContext) -> Response | None:
        self.lookups += 1
        ctx.cache_consulted()  # the core reports MISS or HIT
        if self.body is None:
            return None
        return Response.from_json(self.body)


class RetryAlways:
    """Retries every failure after ``delay``, up to ``limit`` retries per target."""

    def __init__(self, delay: float = 0.0, limit: int = 2) -> None:
        self.delay = delay
        self.limit = limit

    @hookimpl(tryfirst=True)
    def on_error(self, ctx: RequestContext, target, error) -> Decision | None:
        done = ctx.attempts[-1].retry
        if done < self.limit:
            return Decision.retry(self.delay, last=done + 1 == self.limit)
        return None


class NextTarget:
    """A minimal strategy plugin: moves to the next target on any failure."""

    strategies = ("fallback",)

    @hookimpl
    def on_error(self, ctx: RequestContext, target, error) -> Decision:
        return Decision.fallback()


class PickLast:
    """Routes every group to its last child only (a load-balance pick, say)."""

    strategies = ("loadbalance",)

    @hookimpl
    async def pre_request(self, ctx: RequestContext) -> None:
        for group in ctx.plan.groups():
            ctx.route_order[group.path] = [len(group.targets) - 1]

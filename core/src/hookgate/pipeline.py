"""The request flow: pre_request → cache_lookup → call_provider ⇄ on_error → post_response.

The core owns the loop over the routing plan, the sleeping between retries and the request's
time budget; plugins only decide. A stream is handed back once its first event has arrived,
so a failure before the first byte still goes through retry and fallback; ``post_response``
runs after its last event.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from time import perf_counter

import structlog

from .context import Attempt, RequestContext
from .endpoints import Bridge, EndpointCatalog
from .errors import (
    BadRequestError,
    GatewayError,
    ProviderError,
    RequestTimeoutError,
    UpstreamProtocolError,
)
from .plugins import Hooks
from .responses import Response, SSEEvent, StreamResponse
from .routing import Target, Walk

__all__ = ["Pipeline"]

log = structlog.get_logger("hookgate.pipeline")

_NO_EVENT = SSEEvent(None)


class Pipeline:
    def __init__(self, hooks: Hooks, catalog: EndpointCatalog | None = None) -> None:
        self.hooks = hooks
        self.catalog = catalog or EndpointCatalog()
        """Which provider serves which endpoint (the gateway keeps it current)."""

    async def run(self, ctx: RequestContext) -> Response | StreamResponse:
        """Answer ``ctx``. Raises the :class:`GatewayError` the client should see."""
        hooks = self.hooks
        timings = ctx.timings
        try:
            start = perf_counter()
            await hooks.pre_request(ctx)
            looked_up = perf_counter()
            timings["pre_request"] = looked_up - start
            response = await hooks.cache_lookup(ctx)
            routed = perf_counter()
            timings["cache_lookup"] = routed - looked_up
            first = _NO_EVENT
            if response is None:
                response, first = await self._route(ctx)
                timings["upstream"] = perf_counter() - routed
        except GatewayError as exc:
            ctx.error = exc
            ctx.finished = perf_counter()
            await self._observe(ctx, None)
            raise
        except Exception as exc:
            # A plugin bug: the client gets a clean 500, the log gets the traceback.
            log.error("request_failed", trace_id=ctx.trace_id, exc_info=True)
            error = GatewayError(f"internal error ({type(exc).__name__})", code="internal_error")
            ctx.error = error
            ctx.finished = perf_counter()
            await self._observe(ctx, None)
            raise error from exc

        ctx.response = response
        if ctx.first_byte is None:
            ctx.first_byte = perf_counter()
        if isinstance(response, StreamResponse):
            return StreamResponse(
                events=self._relay(ctx, response, first),
                status=response.status,
                headers=response.headers,
                done_marker=response.done_marker,
                media_type=response.media_type,
            )
        ctx.completed = True
        ctx.finished = perf_counter()
        await self._observe(ctx, response)
        return response

    async def _route(self, ctx: RequestContext) -> tuple[Response | StreamResponse, SSEEvent]:
        budget = asyncio.timeout(ctx.timeout)
        try:
            async with budget:
                return await self._try_targets(ctx)
        except TimeoutError as exc:
            if not budget.expired():
                raise
            raise RequestTimeoutError(f"the request timed out after {ctx.timeout:g} s") from exc

    async def _try_targets(self, ctx: RequestContext) -> tuple[Response | StreamResponse, SSEEvent]:
        error: ProviderError | None = None
        deadline = ctx.started + ctx.timeout
        walk = Walk(ctx.plan.root, ctx.route_order)
        for target in walk:
            retry = 0
            delay = 0.0
            last_retry = False
            while True:
                ctx.target = target
                attempt = Attempt(target.path, target.provider, retry, delay, perf_counter())
                attempt.last_retry = last_retry
                ctx.attempts.append(attempt)
                try:
                    response, first = await self._call(ctx, target)
                except ProviderError as exc:
                    attempt.latency = perf_counter() - attempt.started
                    attempt.status = exc.upstream_status
                    attempt.error = exc.code or type(exc).__name__
                    error = exc
                    decision = await self.hooks.on_error(ctx, target, exc)
                    attempt.decision = decision
                    if decision is None or decision.action == "stop":
                        raise
                    if decision.action == "retry":
                        if perf_counter() + decision.delay >= deadline:
                            raise  # waiting would spend the whole budget: answer now
                        await asyncio.sleep(decision.delay)
                        retry += 1
                        delay = decision.delay
                        last_retry = decision.last
                        continue
                    if decision.group is not None and not walk.leave(decision.group):
                        log.warning(
                            "fallback_group_not_on_route",
                            trace_id=ctx.trace_id,
                            target=target.path,
                            group=decision.group,
                        )
                    break  # fallback: the next target of the walk
                attempt.latency = perf_counter() - attempt.started
                attempt.status = response.status
                return response, first
        if error is None:
            raise GatewayError(
                "no target of the routing plan is available", status=503, code="no_target"
            )
        raise error

    async def _call(
        self, ctx: RequestContext, target: Target
    ) -> tuple[Response | StreamResponse, SSEEvent]:
        bridge = self.catalog.route(target.provider, ctx.endpoint)  # raises when unserved
        call = (
            self.hooks.call_provider(ctx, target)
            if bridge is None
            else self._bridged(ctx, target, bridge)
        )
        if call is None:
            raise GatewayError(
                f"no enabled plugin answered for provider {target.provider!r}",
                code="provider_not_served",
            )
        timeout = target.inherited("request_timeout") if target is not ctx.plan.root else None
        if timeout is None:
            return await self._first_event(await call)
        limit = asyncio.timeout(timeout)
        try:
            async with limit:
                return await self._first_event(await call)
        except TimeoutError as exc:
            if not limit.expired():
                raise
            raise ProviderError(
                f"{target.path} did not answer within its request_timeout",
                provider=target.provider,
                status=408,
                code="request_timeout",
            ) from exc

    async def _bridged(
        self, ctx: RequestContext, target: Target, bridge: Bridge
    ) -> Response | StreamResponse:
        """Call ``target`` through the endpoint it serves (``bridge.via``), translating the
        request there and the answer back."""
        body = ctx.request_for(target)
        try:
            translated = bridge.request(body)
        except BadRequestError as exc:
            # A ProviderError, so that a fallback group can hand the request to a target
            # that serves the endpoint natively; alone, it is the client's 400.
            raise ProviderError(
                exc.message,
                provider=target.provider,
                status=400,
                body=exc.to_dict(),
                code=exc.code,
            ) from exc
        inner = dataclasses.replace(ctx, endpoint=bridge.via, body=translated, spec=None)
        inner_target = dataclasses.replace(target, override_params={})  # applied above
        call = self.hooks.call_provider(inner, inner_target)
        if call is None:
            raise GatewayError(
                f"no enabled plugin answered for provider {target.provider!r}",
                code="provider_not_served",
            )
        answer = await call
        if isinstance(answer, StreamResponse):
            return StreamResponse(
                events=_closing(bridge.stream(body, answer.events), answer),
                status=answer.status,
                headers=answer.headers,
                done_marker=bridge.done_marker,
            )
        try:
            data = bridge.response(body, answer.json())
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise UpstreamProtocolError(
                f"the {bridge.via} answer could not be translated to {ctx.endpoint}",
                provider=target.provider,
            ) from exc
        return Response.from_json(data, answer.status, answer.headers)

    @staticmethod
    async def _first_event(
        response: Response | StreamResponse,
    ) -> tuple[Response | StreamResponse, SSEEvent]:
        # Wait for a stream's first event, so that a failure before the first byte
        # still reaches on_error (retry, fallback) instead of the client.
        if not isinstance(response, StreamResponse):
            return response, _NO_EVENT
        try:
            return response, await anext(aiter(response.events), _NO_EVENT)
        except BaseException:
            await response.aclose()
            raise

    async def _relay(
        self, ctx: RequestContext, response: StreamResponse, first: SSEEvent
    ) -> AsyncIterator[SSEEvent]:
        events = ctx.events
        try:
            if first is not _NO_EVENT:
                events.append(first)
                yield first
            async for event in response.events:
                events.append(event)
                yield event
            ctx.completed = True
        except GatewayError as exc:
            ctx.error = exc
            raise
        except Exception as exc:
            log.error("stream_failed", trace_id=ctx.trace_id, exc_info=True)
            error = GatewayError(f"internal error ({type(exc).__name__})", code="internal_error")
            ctx.error = error
            raise error from exc
        finally:
            ctx.finished = perf_counter()
            await response.aclose()
            await self._observe(ctx, response if ctx.error is None else None)

    async def _observe(
        self, ctx: RequestContext, response: Response | StreamResponse | None
    ) -> None:
        start = perf_counter()
        await self.hooks.post_response(ctx, response)
        ctx.timings["post_response"] = perf_counter() - start


async def _closing(
    events: AsyncIterator[SSEEvent], upstream: StreamResponse
) -> AsyncIterator[SSEEvent]:
    """``events``, then the upstream stream they were made from closed, however they end."""
    try:
        async for event in events:
            yield event
    finally:
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()
        await upstream.aclose()

"""Plugins for tests/core/test_hook_order.py: the same hooks, sync in one class, async in the
other, told apart by their ``label`` setting.

Each records ``(label, hook)`` in the shared ``CALLS`` list. The async ones yield to the event
loop before recording, so a core that merely collected coroutines and awaited them later would
record them after the sync ones listed behind them.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hookgate import BadRequestError, Decision, ProviderError, RequestContext, Response, hookimpl
from pydantic import BaseModel

CALLS: list[tuple[str, str]] = []


class Label(BaseModel):
    label: str
    decide_retry: bool = False


class AsyncRecorder:
    Settings = Label

    def __init__(self, settings: Label) -> None:
        self.label = settings.label

    async def _note(self, hook: str) -> None:
        await asyncio.sleep(0)
        CALLS.append((self.label, hook))

    @hookimpl
    async def startup(self, gateway: Any) -> None:
        await self._note("startup")

    @hookimpl
    async def pre_request(self, ctx: RequestContext) -> None:
        await self._note("pre_request")

    @hookimpl
    async def cache_lookup(self, ctx: RequestContext) -> None:
        await self._note("cache_lookup")

    @hookimpl
    def call_provider(self, ctx: RequestContext, target: Any) -> None:
        CALLS.append((self.label, "call_provider"))  # claiming hooks are plain def

    @hookimpl
    def on_error(self, ctx: RequestContext, target: Any, error: Any) -> None:
        CALLS.append((self.label, "on_error"))

    @hookimpl
    async def post_response(self, ctx: RequestContext, response: Any) -> None:
        await self._note("post_response")

    @hookimpl
    async def ready(self, gateway: Any) -> list[str]:
        await self._note("ready")
        return []

    @hookimpl
    async def shutdown(self, gateway: Any) -> None:
        await self._note("shutdown")


class SyncRecorder:
    Settings = Label

    def __init__(self, settings: Label) -> None:
        self.label = settings.label
        self.decide_retry = settings.decide_retry

    def _note(self, hook: str) -> None:
        CALLS.append((self.label, hook))

    @hookimpl
    def startup(self, gateway: Any) -> None:
        self._note("startup")

    @hookimpl
    def pre_request(self, ctx: RequestContext) -> None:
        self._note("pre_request")

    @hookimpl
    def cache_lookup(self, ctx: RequestContext) -> None:
        self._note("cache_lookup")

    @hookimpl
    def call_provider(self, ctx: RequestContext, target: Any) -> None:
        self._note("call_provider")

    @hookimpl
    def on_error(self, ctx: RequestContext, target: Any, error: Any) -> Decision | None:
        self._note("on_error")
        return Decision.retry(0, last=True) if self.decide_retry else None

    @hookimpl
    def post_response(self, ctx: RequestContext, response: Any) -> None:
        self._note("post_response")

    @hookimpl
    def ready(self, gateway: Any) -> list[str]:
        self._note("ready")
        return ["not ready on purpose"]

    @hookimpl
    def shutdown(self, gateway: Any) -> None:
        self._note("shutdown")


class FlakyProvider:
    """Serves provider ``flaky``: its first call of each request fails with a 503."""

    providers = ("flaky",)

    @hookimpl
    def call_provider(self, ctx: RequestContext, target: Any) -> Any:
        if target.provider != "flaky":
            return None
        return self._call(ctx)

    async def _call(self, ctx: RequestContext) -> Response:
        if len(ctx.attempts) == 1:
            raise ProviderError("flaky error: first call", provider="flaky", status=503)
        return Response.from_json(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 0,
                "model": "m",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "second call"},
                        "finish_reason": "stop",
                    }
                ],
            }
        )


class RaisingSync:
    """Rejects every request in ``pre_request``, synchronously."""

    @hookimpl
    def pre_request(self, ctx: RequestContext) -> None:
        CALLS.append(("raising", "pre_request"))
        raise BadRequestError("rejected by a sync pre_request")


class PreRequestWrapper:
    """A wrapper of an awaited hook: refused at load time."""

    @hookimpl(wrapper=True)
    def pre_request(self, ctx: RequestContext) -> Any:
        return (yield)


class OnErrorWrapper:
    """A wrapper of a sync firstresult hook: it runs as pluggy defines and sees the decision."""

    seen: list[Any] = []

    @hookimpl(wrapper=True)
    def on_error(self, ctx: RequestContext, target: Any, error: Any) -> Any:
        decision = yield
        OnErrorWrapper.seen.append(decision)
        return decision

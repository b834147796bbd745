"""Small plugins the logging tests register: classes with @hookimpl methods, nothing mocked."""

from __future__ import annotations

from typing import Any

from hookgate import Decision, RequestContext, Response, hookimpl


class RetryOnce:
    """Retries a failed target once, at once (what the retry plugin does with attempts=1)."""

    @hookimpl(tryfirst=True)
    def on_error(self, ctx: RequestContext, target: Any, error: Any) -> Decision | None:
        if ctx.attempts[-1].retry < 1:
            return Decision.retry(0, last=True)
        return None


class NextTarget:
    """A minimal strategy plugin: moves to the next target on any failure."""

    strategies = ("fallback",)

    @hookimpl
    def on_error(self, ctx: RequestContext, target: Any, error: Any) -> Decision:
        return Decision.fallback()


class CacheWith:
    """Answers every lookup from a fixed cached completion; with a ``similarity`` the core
    reports it as a ``SEMANTIC HIT``, without one as a ``HIT``."""

    def __init__(self, body: dict[str, Any], similarity: float | None = None) -> None:
        self.body = body
        self.similarity = similarity

    @hookimpl
    async def cache_lookup(self, ctx: RequestContext) -> Response:
        ctx.cache_consulted()
        ctx.cache_similarity = self.similarity
        return Response.from_json(self.body)


class CacheWhenAsked:
    """A cache that hits when the request's metadata says ``cached: yes``."""

    @hookimpl
    async def cache_lookup(self, ctx: RequestContext) -> Response | None:
        ctx.cache_consulted()  # the core reports HIT or MISS
        if ctx.metadata.get("cached") == "yes":
            return Response.from_json(completion(ctx.model or "m", 50, 10))
        return None


def completion(model: str, prompt: int, completion: int, cached: int = 0) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if cached:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    return {
        "id": "chatcmpl-cached",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "from the cache"},
                "finish_reason": "stop",
            }
        ],
        "usage": usage,
    }

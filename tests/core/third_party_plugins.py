"""Third-party plugins, written only against hookgate's public API, for
tests/core/test_third_party_plugins.py: a strategy, two caches and a provider."""

from __future__ import annotations

import itertools
from typing import Any

from hookgate import (
    Decision,
    HTTPProvider,
    HTTPProviderSettings,
    ProviderError,
    RequestContext,
    Response,
    Target,
    hookimpl,
)


class RoundRobin:
    """Strategy mode ``round_robin``: each request starts at the next target of its group and
    falls back through the others in turn."""

    strategies = ("round_robin",)

    def __init__(self) -> None:
        self._turns: dict[str, itertools.count[int]] = {}

    @hookimpl
    def pre_request(self, ctx: RequestContext) -> None:
        for group in ctx.plan.groups():
            if group.mode == "round_robin":
                turn = next(self._turns.setdefault(group.path, itertools.count()))
                size = len(group.targets)
                ctx.route_order[group.path] = [(turn + i) % size for i in range(size)]

    @hookimpl
    def on_error(self, ctx: RequestContext, target: Target, error: ProviderError) -> Any:
        parent = target.parent
        if parent is not None and parent.mode == "round_robin":
            return Decision.fallback("next in turn", group=parent.path)
        return None


class InOrder:
    """Strategy mode ``in_order``: it never orders anything, so the core tries the group's
    targets in config order; on a failure it moves on."""

    strategies = ("in_order",)

    @hookimpl
    def on_error(self, ctx: RequestContext, target: Target, error: ProviderError) -> Any:
        if target.parent is not None and target.parent.mode == "in_order":
            return Decision.fallback()
        return None


def _key(ctx: RequestContext) -> str:
    return repr((ctx.endpoint, sorted(ctx.body.items()), ctx.plan.describe()))


class MemoCache:
    """An exact-match cache for its own mode ``memo``, in a dict."""

    cache_modes = ("memo",)

    def __init__(self) -> None:
        self.entries: dict[str, bytes] = {}
        self.lookups = 0

    @hookimpl
    def cache_lookup(self, ctx: RequestContext) -> Response | None:
        block = ctx.plan.root.cache
        if block is None or block.mode != "memo" or ctx.stream:
            return None
        self.lookups += 1
        ctx.cache_consulted()
        body = self.entries.get(_key(ctx))
        return None if body is None or ctx.cache_force_refresh else Response(body)

    @hookimpl
    def post_response(self, ctx: RequestContext, response: Any) -> None:
        block = ctx.plan.root.cache
        answered = isinstance(response, Response) and ctx.target is not None
        if block is not None and block.mode == "memo" and answered and ctx.error is None:
            self.entries[_key(ctx)] = response.body


class LooseCache:
    """A similarity cache for Portkey's ``semantic`` mode that answers any earlier question
    of the same model (a caricature of meaning, enough to test who reports what)."""

    cache_modes = ("semantic",)
    cache_match = "similar"

    def __init__(self) -> None:
        self.entries: dict[str, bytes] = {}

    @hookimpl
    def cache_lookup(self, ctx: RequestContext) -> Response | None:
        block = ctx.plan.root.cache
        if block is None or block.mode != "semantic":
            return None
        ctx.cache_consulted()
        body = self.entries.get(str(ctx.model))
        if body is None:
            return None
        ctx.cache_similarity = 0.9
        return Response(body)

    @hookimpl
    def post_response(self, ctx: RequestContext, response: Any) -> None:
        block = ctx.plan.root.cache
        answered = isinstance(response, Response) and ctx.target is not None
        if block is not None and block.mode == "semantic" and answered:
            self.entries[str(ctx.model)] = response.body


class Echo:
    """Provider ``echo``: answers with the target's ``say`` option, or fails with its
    ``fail`` status."""

    providers = ("echo",)

    @hookimpl
    def call_provider(self, ctx: RequestContext, target: Target) -> Any:
        if target.provider != "echo":
            return None
        return self._call(ctx, target)

    async def _call(self, ctx: RequestContext, target: Target) -> Response:
        status = target.options.get("fail")
        if status:
            raise ProviderError(f"echo error: {status}", provider="echo", status=int(status))
        return Response.from_json(
            {
                "id": "chatcmpl-echo",
                "object": "chat.completion",
                "created": 0,
                "model": ctx.model or "echo",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": target.options.get("say")},
                        "finish_reason": "stop",
                    }
                ],
            }
        )


class AcmeSettings(HTTPProviderSettings):
    base_url: str = "https://api.acme.invalid/v1"


class Acme(HTTPProvider):
    """Provider ``acme``, an OpenAI-compatible HTTP upstream, on the provider base class:
    settings, client life cycle, headers and dispatch come from HTTPProvider."""

    name = "acme"
    providers = ("acme",)
    Settings = AcmeSettings

    def auth_headers(self, key: str, target: Target) -> dict[str, str]:
        return {"x-acme-key": key}

    async def serve_chat_completions(self, ctx: RequestContext, target: Target) -> Any:
        url = (target.custom_host or self.settings.base_url) + "/chat/completions"
        return await self.send(url, ctx.request_for(target), self.headers(ctx, target))

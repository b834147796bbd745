"""hookgate-gemini: Google Gemini (Google AI Studio), behind OpenAI's chat-completions API.

Serves the providers ``google`` (Portkey's slug) and ``gemini`` (an alias). Clients speak
OpenAI; this plugin translates each request to ``POST {base}/models/{model}:generateContent``
(``:streamGenerateContent?alt=sse`` when streaming) and each answer back to a chat completion
or a stream of chunks. Embeddings go to ``:batchEmbedContents``; the model list to
``GET {base}/models``. The key travels in ``x-goog-api-key``. See :mod:`.translate` for the
mapping of every field, finish reasons and usage::

    [plugins.gemini]
    api_key = "${GEMINI_API_KEY:-}"
    base_url = "https://generativelanguage.googleapis.com/v1beta"
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from hookgate import (
    HTTPProvider,
    HTTPProviderSettings,
    ProviderError,
    RequestContext,
    Response,
    SSEEvent,
    StreamResponse,
    Target,
)
from pydantic import Field

from . import translate

__all__ = ["GeminiSettings", "Plugin", "Settings"]

DEFAULT_BASE = "https://generativelanguage.googleapis.com/v1beta"


class GeminiSettings(HTTPProviderSettings):
    """``[plugins.gemini]``: the shared provider settings (``api_key``, ``headers``,
    timeouts, pool size), plus Gemini's own."""

    base_url: str = DEFAULT_BASE
    safety_settings: list[dict[str, str]] = Field(default_factory=list)
    """Sent as ``safetySettings`` with every generateContent request
    (``[{category = "HARM_CATEGORY_HARASSMENT", threshold = "BLOCK_ONLY_HIGH"}]``)."""


Settings = GeminiSettings
"""The name the loader and older code use."""


class Plugin(HTTPProvider):
    """The ``google`` provider (alias ``gemini``)."""

    name = translate.PROVIDER
    providers = ("google", "gemini")
    serves = {"google": ("chat.completions", "embeddings", "models")}
    aliases = {"gemini": "google"}
    presets = {"google": DEFAULT_BASE}
    Settings = GeminiSettings
    settings: GeminiSettings

    def __init__(self, settings: GeminiSettings | None = None) -> None:
        super().__init__(settings)
        self.base_url = self.settings.base_url.rstrip("/")
        self.presets = {"google": self.base_url}

    def auth_headers(self, key: str, target: Target) -> dict[str, str]:
        return {"x-goog-api-key": key}

    async def call(self, ctx: RequestContext, target: Target) -> Response | StreamResponse:
        try:
            return await super().call(ctx, target)
        except ProviderError as exc:
            raise translate.openai_error(exc) from None

    def _base(self, target: Target) -> str:
        return target.custom_host or self.base_url

    @staticmethod
    def _model(body: dict[str, Any]) -> tuple[str, str]:
        model = str(body.get("model") or "").removeprefix("models/")
        return model, quote(model, safe="-._")

    async def serve_models(self, ctx: RequestContext, target: Target) -> Response:
        return await self._models(self._base(target), self.headers(ctx, target))

    async def serve_embeddings(self, ctx: RequestContext, target: Target) -> Response:
        body = ctx.request_for(target)
        model, quoted = self._model(body)
        answer = await self.client.request_json(
            "POST",
            f"{self._base(target)}/models/{quoted}:batchEmbedContents",
            headers=self.headers(ctx, target),
            body=translate.embed_request(body, model),
        )
        data = translate.embed_response(answer.json(), model)
        return Response.from_json(data, headers=answer.headers)

    async def serve_chat_completions(
        self, ctx: RequestContext, target: Target
    ) -> Response | StreamResponse:
        body = ctx.request_for(target)
        model, quoted = self._model(body)
        url = f"{self._base(target)}/models/{quoted}"
        headers = self.headers(ctx, target)
        request = translate.chat_request(body)
        if self.settings.safety_settings:
            request["safetySettings"] = [dict(s) for s in self.settings.safety_settings]
        if body.get("stream"):
            upstream = await self.client.stream_events(
                f"{url}:streamGenerateContent?alt=sse",
                headers=headers,
                body=request,
                done_marker=False,
            )
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            translator = translate.StreamTranslator(model, include_usage)
            return StreamResponse(
                events=_chunks(upstream, translator),
                status=upstream.status,
                headers=upstream.headers,
            )
        answer = await self.client.request_json(
            "POST", f"{url}:generateContent", headers=headers, body=request
        )
        return Response.from_json(
            translate.chat_response(answer.json(), model), headers=answer.headers
        )

    async def _models(self, base: str, headers: dict[str, str]) -> Response:
        answer = await self.client.request_json("GET", f"{base}/models", headers=headers)
        models = answer.json().get("models") or []
        data = {
            "object": "list",
            "data": [
                {
                    "id": str(m.get("name", "")).removeprefix("models/"),
                    "object": "model",
                    "created": 0,
                    "owned_by": "google",
                }
                for m in models
            ],
        }
        return Response.from_json(data, headers=answer.headers)


async def _chunks(
    upstream: StreamResponse, translator: translate.StreamTranslator
) -> AsyncIterator[SSEEvent]:
    try:
        async for event in upstream.events:
            for chunk in translator.feed(event.data):
                yield SSEEvent(chunk)
        for chunk in translator.close():
            yield SSEEvent(chunk)
    finally:
        await upstream.aclose()

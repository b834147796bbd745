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
from typing import Annotated, Any
from urllib.parse import quote

from hookgate import (
    Gateway,
    ProviderError,
    RequestContext,
    Response,
    SSEEvent,
    StreamResponse,
    Target,
    hookimpl,
)
from hookgate.http import UpstreamClient
from pydantic import BaseModel, ConfigDict, Field

from . import translate

__all__ = ["GeminiSettings", "Plugin", "Settings"]

DEFAULT_BASE = "https://generativelanguage.googleapis.com/v1beta"


class GeminiSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = DEFAULT_BASE
    api_key: str | None = Field(default=None, repr=False)
    """Used for targets that bring no key of their own; empty means none."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra headers sent with every request."""
    safety_settings: list[dict[str, str]] = Field(default_factory=list)
    """Sent as ``safetySettings`` with every generateContent request
    (``[{category = "HARM_CATEGORY_HARASSMENT", threshold = "BLOCK_ONLY_HIGH"}]``)."""
    connect_timeout: Annotated[float, Field(gt=0)] = 10.0
    read_timeout: Annotated[float, Field(gt=0)] = 600.0
    max_connections: Annotated[int, Field(ge=1)] = 1024


Settings = GeminiSettings
"""The name the loader and older code use."""


class Plugin:
    """The ``google`` provider (alias ``gemini``)."""

    providers = ("google", "gemini")
    aliases = {"gemini": "google"}
    presets = {"google": DEFAULT_BASE}
    Settings = GeminiSettings

    def __init__(self, settings: GeminiSettings | None = None) -> None:
        self.settings = settings or GeminiSettings()
        self.base_url = self.settings.base_url.rstrip("/")
        self.presets = {"google": self.base_url}
        self.client = UpstreamClient(
            translate.PROVIDER,
            connect_timeout=self.settings.connect_timeout,
            read_timeout=self.settings.read_timeout,
            max_connections=self.settings.max_connections,
        )

    @hookimpl
    async def startup(self, gateway: Gateway) -> None:
        await self.client.start()

    @hookimpl
    async def shutdown(self, gateway: Gateway) -> None:
        await self.client.aclose()

    @hookimpl
    def call_provider(self, ctx: RequestContext, target: Target) -> Any:
        if target.provider not in self.providers:
            return None
        return self.call(ctx, target)

    def headers(self, ctx: RequestContext, target: Target) -> dict[str, str]:
        headers = dict(self.settings.headers)
        headers.update(ctx.forwarded_headers(target))
        key = target.api_key or self.settings.api_key
        if key:
            headers["x-goog-api-key"] = key
        return headers

    async def call(self, ctx: RequestContext, target: Target) -> Response | StreamResponse:
        try:
            return await self._call(ctx, target)
        except ProviderError as exc:
            raise translate.openai_error(exc) from None

    async def _call(self, ctx: RequestContext, target: Target) -> Response | StreamResponse:
        base = target.custom_host or self.base_url
        headers = self.headers(ctx, target)
        if ctx.endpoint == "models":
            return await self._models(base, headers)
        body = ctx.request_for(target)
        model = str(body.get("model") or "").removeprefix("models/")
        url = f"{base}/models/{quote(model, safe='-._')}"
        if ctx.endpoint == "embeddings":
            request = translate.embed_request(body, model)
            answer = await self.client.request_json(
                "POST", f"{url}:batchEmbedContents", headers=headers, body=request
            )
            data = translate.embed_response(answer.json(), model)
            return Response.from_json(data, headers=answer.headers)
        if ctx.endpoint != "chat.completions":
            raise ProviderError(
                f"the google provider does not serve {ctx.endpoint}",
                provider=translate.PROVIDER,
                status=404,
            )
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

"""hookgate-anthropic: Anthropic's Messages API behind hookgate.

Two ways in:

- ``/v1/chat/completions`` (and the embedded API) with an ``anthropic`` target: the OpenAI
  request is translated to a Messages request and the answer back to OpenAI's shape, streams
  event by event (see :mod:`hookgate_anthropic.translate` and :mod:`hookgate_anthropic.stream`).
- ``POST /v1/messages``, Anthropic's own endpoint, which this plugin declares (see
  :mod:`hookgate_anthropic.messages`) and ``hookgate serve`` mounts: the request and the
  answer (JSON or SSE) pass through unchanged, but through the whole pipeline (retries,
  fallbacks, caches, logs, cost), so the ``anthropic`` SDK can use hookgate as its
  ``base_url``. Errors on this endpoint are in Anthropic's shape.

Anthropic's 529 ``overloaded_error`` and 429 ``rate_limit_error`` keep their status and
``retry-after``, so the retry and fallback plugins see them as they are.

::

    [plugins.anthropic]
    api_key = "${ANTHROPIC_API_KEY:-}"      # targets without a key of their own use this
    # base_url = "https://api.anthropic.com/v1"
    # anthropic_version = "2023-06-01"
    # default_max_tokens = 4096             # when an OpenAI request gives no max_tokens
    # beta = ["prompt-caching-2024-07-31"]  # anthropic-beta header on every call
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Annotated, Any

from hookgate import (
    BadRequestError,
    HTTPProvider,
    HTTPProviderSettings,
    ProviderError,
    RequestContext,
    Response,
    StreamResponse,
    Target,
)
from hookgate.endpoints import EndpointSpec
from hookgate.errors import UpstreamProtocolError
from pydantic import Field

from .messages import MESSAGES, MessagesRequest, render_error
from .stream import PROVIDER, relay, to_chunks
from .translate import chat_completion, openai_error_body, to_messages_request

__all__ = [
    "DEFAULT_BASE_URL",
    "MESSAGES",
    "AnthropicSettings",
    "MessagesRequest",
    "Plugin",
    "Settings",
    "render_error",
]

DEFAULT_BASE_URL = "https://api.anthropic.com/v1"


class AnthropicSettings(HTTPProviderSettings):
    """``[plugins.anthropic]`` in plugins.toml: the shared provider settings (``api_key``,
    ``headers``, timeouts, pool size), plus Anthropic's own."""

    base_url: str = DEFAULT_BASE_URL
    """With the version path, like a target's ``custom_host``; ``/messages`` is appended."""
    anthropic_version: str = "2023-06-01"
    """The ``anthropic-version`` header; on ``/v1/messages`` the client's own wins."""
    default_max_tokens: Annotated[int, Field(ge=1)] = 4096
    """``max_tokens`` for OpenAI requests that set neither ``max_tokens`` nor
    ``max_completion_tokens`` (Anthropic requires it; OpenAI does not)."""
    beta: list[str] = Field(default_factory=list)
    """``anthropic-beta`` features to enable on every call (merged with a client's own)."""
    messages_route: bool = True
    """Declare Anthropic's ``POST /v1/messages`` (served by ``hookgate serve``, and
    ``gw.request("messages", ...)`` embedded); false leaves it out."""


def _models(listing: Any) -> dict[str, Any]:
    data = []
    for model in listing.get("data") or [] if isinstance(listing, dict) else []:
        try:
            created = int(datetime.fromisoformat(model.get("created_at")).timestamp())
        except (TypeError, ValueError):
            created = 0
        data.append(
            {"id": model.get("id"), "object": "model", "created": created, "owned_by": PROVIDER}
        )
    return {"object": "list", "data": data}


Settings = AnthropicSettings
"""The name the loader and older code use."""


class Plugin(HTTPProvider):
    """The ``anthropic`` provider, and Anthropic's ``/v1/messages`` endpoint."""

    name = PROVIDER
    providers = (PROVIDER,)
    endpoints: tuple[EndpointSpec, ...] = (MESSAGES,)
    # Anthropic's own endpoint and OpenAI's chat; the Responses API is bridged through chat.
    serves: Mapping[str, tuple[str, ...]] = MappingProxyType(
        {PROVIDER: ("chat.completions", "models", "messages")}
    )
    # `hookgate providers` shows the base URL: the default here, the configured one on an instance.
    presets: Mapping[str, str] = MappingProxyType({PROVIDER: DEFAULT_BASE_URL})
    Settings = AnthropicSettings
    settings: AnthropicSettings

    def __init__(self, settings: AnthropicSettings | None = None) -> None:
        super().__init__(settings)
        self.base_url = self.settings.base_url.rstrip("/")
        self.presets = MappingProxyType({PROVIDER: self.base_url})
        if not self.settings.messages_route:
            self.endpoints = ()

    def auth_headers(self, key: str, target: Target) -> dict[str, str]:
        return {"x-api-key": key}

    def headers(self, ctx: RequestContext, target: Target) -> dict[str, str]:
        settings = self.settings
        headers = super().headers(ctx, target)  # settings headers, forwarded ones, x-api-key
        version = settings.anthropic_version
        beta = list(settings.beta)
        if ctx.endpoint == "messages":  # the client speaks Anthropic: its version and betas
            version = ctx.headers.get("anthropic-version") or version
            beta += [b.strip() for b in ctx.headers.get("anthropic-beta", "").split(",")]
        headers["anthropic-version"] = version
        beta = list(dict.fromkeys(b for b in beta if b))
        if beta:
            headers["anthropic-beta"] = ",".join(beta)
        return headers

    def _base(self, target: Target) -> str:
        return target.custom_host or self.base_url

    async def serve_messages(
        self, ctx: RequestContext, target: Target
    ) -> Response | StreamResponse:
        """Anthropic's own ``/v1/messages``, passed through unchanged."""
        url = self._base(target) + "/messages"
        body = ctx.request_for(target)
        response = await self.send(url, body, self.headers(ctx, target), done_marker=False)
        if isinstance(response, StreamResponse):
            response.events = relay(response.events)
        return response

    async def serve_chat_completions(
        self, ctx: RequestContext, target: Target
    ) -> Response | StreamResponse:
        return await self._chat(ctx, target, self._base(target), self.headers(ctx, target))

    async def serve_models(self, ctx: RequestContext, target: Target) -> Response:
        listing = await self._openai_errors(
            self.client.request_json(
                "GET", self._base(target) + "/models", headers=self.headers(ctx, target)
            )
        )
        return Response.from_json(_models(listing.json()), headers=listing.headers)

    def unserved(self, ctx: RequestContext) -> ProviderError:
        return ProviderError(
            f"the anthropic provider does not serve {ctx.endpoint}",
            provider=PROVIDER,
            status=404,
            body={
                "error": {
                    "message": f"anthropic does not serve {ctx.endpoint}",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "unsupported_endpoint",
                }
            },
        )

    async def _chat(
        self, ctx: RequestContext, target: Target, base: str, headers: dict[str, str]
    ) -> Response | StreamResponse:
        body = ctx.request_for(target)
        try:
            request = to_messages_request(body, self.settings.default_max_tokens)
        except BadRequestError as exc:
            # A ProviderError, so that a fallback group can hand the request to a target
            # that can serve it (n > 1, audio, ...); alone, it is the client's 400.
            raise ProviderError(
                exc.message, provider=PROVIDER, status=400, body=exc.to_dict(), code=exc.code
            ) from exc
        url = base + "/messages"
        if request.get("stream"):
            upstream = await self._openai_errors(
                self.client.stream_events(url, headers=headers, body=request, done_marker=False)
            )
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamResponse(
                events=to_chunks(upstream.events, include_usage=include_usage),
                status=upstream.status,
                headers=upstream.headers,
                done_marker=True,
            )
        answer = await self._openai_errors(
            self.client.request_json("POST", url, headers=headers, body=request)
        )
        message = answer.json()
        if not isinstance(message, dict) or message.get("type") != "message":
            raise UpstreamProtocolError(
                "the upstream's answer is not an Anthropic message", provider=PROVIDER
            )
        return Response.from_json(chat_completion(message), answer.status, answer.headers)

    @staticmethod
    async def _openai_errors(call: Any) -> Any:
        """Await ``call``; an Anthropic error body becomes OpenAI's, status and delay kept."""
        try:
            return await call
        except ProviderError as exc:
            if exc.answered:
                exc.body = openai_error_body(exc.body, exc.http_status)
                exc.message = exc.body["error"]["message"]
            raise

"""hookgate-openai: any upstream that speaks OpenAI's API.

Chat completions (JSON and SSE, passed through event by event), legacy completions,
embeddings and the model list. The upstream is ``base_url`` from plugins.toml, or a request's
``custom_host``; the key is the target's (config, virtual key or the caller's
``Authorization``), else ``api_key`` from plugins.toml.

::

    [plugins.openai]
    base_url = "https://api.openai.com/v1"
    api_key = "${OPENAI_API_KEY:-}"
"""

from __future__ import annotations

from typing import Annotated, Any

from hookgate import (
    Gateway,
    ProviderError,
    RequestContext,
    Response,
    StreamResponse,
    Target,
    hookimpl,
)
from hookgate.http import UpstreamClient
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Plugin", "Settings"]

_PATHS = {
    "chat.completions": "/chat/completions",
    "completions": "/completions",
    "embeddings": "/embeddings",
}


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = "https://api.openai.com/v1"
    api_key: str | None = Field(default=None, repr=False)
    """Used for targets that bring no key of their own; empty means none."""
    organization: str | None = None
    project: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra headers sent with every request."""
    connect_timeout: Annotated[float, Field(gt=0)] = 10.0
    read_timeout: Annotated[float, Field(gt=0)] = 600.0
    """Longest silence while waiting for (more of) an answer, in seconds."""
    max_connections: Annotated[int, Field(ge=1)] = 1024


class Plugin:
    """The ``openai`` provider."""

    providers = ("openai",)
    Settings = Settings

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.base_url = self.settings.base_url.rstrip("/")
        self.client = UpstreamClient(
            "openai",
            connect_timeout=self.settings.connect_timeout,
            read_timeout=self.settings.read_timeout,
            max_connections=self.settings.max_connections,
        )
        static = dict(self.settings.headers)
        if self.settings.organization:
            static["openai-organization"] = self.settings.organization
        if self.settings.project:
            static["openai-project"] = self.settings.project
        self._static_headers = static

    @hookimpl
    async def startup(self, gateway: Gateway) -> None:
        await self.client.start()

    @hookimpl
    async def shutdown(self, gateway: Gateway) -> None:
        await self.client.aclose()

    @hookimpl
    def call_provider(self, ctx: RequestContext, target: Target) -> Any:
        if target.provider != "openai":
            return None
        return self.call(ctx, target)

    def headers(self, ctx: RequestContext, target: Target) -> dict[str, str]:
        headers = dict(self._static_headers)
        for name in target.forward_headers:
            if name in ctx.headers:
                headers[name] = ctx.headers[name]
        key = target.api_key or self.settings.api_key
        if key:
            headers["authorization"] = f"Bearer {key}"
        return headers

    async def call(self, ctx: RequestContext, target: Target) -> Response | StreamResponse:
        base = target.custom_host or self.base_url
        headers = self.headers(ctx, target)
        if ctx.endpoint == "models":
            return await self.client.request_json("GET", f"{base}/models", headers=headers)
        path = _PATHS.get(ctx.endpoint)
        if path is None:
            raise ProviderError(
                f"the openai provider does not serve {ctx.endpoint}",
                provider="openai",
                status=404,
            )
        body = ctx.request_for(target)
        if body.get("stream"):
            return await self.client.stream_events(base + path, headers=headers, body=body)
        return await self.client.request_json("POST", base + path, headers=headers, body=body)

"""hookgate-azure-openai: Azure OpenAI deployments.

Azure speaks OpenAI's bodies (JSON and SSE) on deployment-based URLs, so requests and answers
pass through untouched; only the URL and the auth header differ::

    https://{resource_name}.openai.azure.com/openai/deployments/{deployment_id}/chat/completions
        ?api-version={api_version}

``resource_name``, ``deployment_id`` and ``api_version`` come from the target (a config target
or a virtual key, Portkey's field names, snake_case or camelCase), else from plugins.toml. A
target without a deployment uses the request's ``model`` as the deployment name. A
``custom_host`` replaces ``https://{resource_name}.openai.azure.com/openai``.

The key goes in ``api-key``; with ``auth = "entra"`` (or a target's
``azure_auth_mode = "entra"``) it is sent as ``Authorization: Bearer`` (a Microsoft Entra ID
token) instead::

    [plugins.azure-openai]
    resource_name = "my-resource"
    api_version = "2024-10-21"
    api_key = "${AZURE_OPENAI_API_KEY:-}"
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal
from urllib.parse import quote

from hookgate import (
    ConfigError,
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

__all__ = ["AzureOpenAISettings", "Plugin", "Settings"]

PROVIDER = "azure-openai"
_PATHS = {
    "chat.completions": "/chat/completions",
    "completions": "/completions",
    "embeddings": "/embeddings",
}
_TEMPLATE = "https://{resource_name}.openai.azure.com/openai"

Auth = Literal["api-key", "entra"]


class AzureOpenAISettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    resource_name: str | None = None
    """Default Azure resource (``{resource_name}.openai.azure.com``)."""
    deployment_id: str | None = None
    """Default deployment; without one, the request's ``model`` names the deployment."""
    api_version: str = "2024-10-21"
    base_url: str | None = None
    """Replaces ``https://{resource_name}.openai.azure.com/openai`` (a proxy, a sovereign cloud)."""
    api_key: str | None = Field(default=None, repr=False)
    """Used for targets that bring no key of their own; empty means none."""
    auth: Auth = "api-key"
    """``api-key`` header, or ``entra``: the key is an Entra ID token sent as a Bearer."""
    headers: dict[str, str] = Field(default_factory=dict)
    connect_timeout: Annotated[float, Field(gt=0)] = 10.0
    read_timeout: Annotated[float, Field(gt=0)] = 600.0
    max_connections: Annotated[int, Field(ge=1)] = 1024


def _option(options: Mapping[str, Any], snake: str, camel: str) -> Any:
    value = options.get(snake)
    return options.get(camel) if value is None else value


Settings = AzureOpenAISettings
"""The name the loader and older code use."""


class Plugin:
    """The ``azure-openai`` provider."""

    providers = (PROVIDER,)
    presets: Mapping[str, str] = {PROVIDER: _TEMPLATE}
    Settings = AzureOpenAISettings

    def __init__(self, settings: AzureOpenAISettings | None = None) -> None:
        self.settings = settings or AzureOpenAISettings()
        self.client = UpstreamClient(
            PROVIDER,
            connect_timeout=self.settings.connect_timeout,
            read_timeout=self.settings.read_timeout,
            max_connections=self.settings.max_connections,
        )
        self.presets = {PROVIDER: self.settings.base_url or _TEMPLATE}

    @hookimpl
    async def startup(self, gateway: Gateway) -> None:
        await self.client.start()

    @hookimpl
    async def shutdown(self, gateway: Gateway) -> None:
        await self.client.aclose()

    @hookimpl
    def call_provider(self, ctx: RequestContext, target: Target) -> Any:
        if target.provider != PROVIDER:
            return None
        return self.call(ctx, target)

    def base(self, target: Target) -> str:
        if target.custom_host:
            return target.custom_host
        if self.settings.base_url:
            return self.settings.base_url.rstrip("/")
        resource = _option(target.options, "resource_name", "resourceName")
        resource = resource or self.settings.resource_name
        if not resource:
            raise ConfigError(
                f"{target.path}: azure-openai needs a resource_name (in the target, its "
                "virtual key or [plugins.azure-openai]) or a custom_host",
                code="missing_resource_name",
            )
        return _TEMPLATE.format(resource_name=quote(str(resource), safe=""))

    def headers(self, ctx: RequestContext, target: Target) -> dict[str, str]:
        headers = dict(self.settings.headers)
        headers.update(ctx.forwarded_headers(target))
        options = target.options
        token = _option(options, "azure_ad_token", "azureAdToken")
        auth = _option(options, "azure_auth_mode", "azureAuthMode") or self.settings.auth
        key = target.api_key or self.settings.api_key
        if token:
            headers["authorization"] = f"Bearer {token}"
        elif key and auth == "entra":
            headers["authorization"] = f"Bearer {key}"
        elif key:
            headers["api-key"] = key
        return headers

    async def call(self, ctx: RequestContext, target: Target) -> Response | StreamResponse:
        base = self.base(target)
        headers = self.headers(ctx, target)
        options = target.options
        version = _option(options, "api_version", "apiVersion") or self.settings.api_version
        query = f"?api-version={quote(str(version), safe='')}"
        if ctx.endpoint == "models":
            return await self.client.request_json("GET", f"{base}/models{query}", headers=headers)
        path = _PATHS.get(ctx.endpoint)
        if path is None:
            raise ProviderError(
                f"the azure-openai provider does not serve {ctx.endpoint}",
                provider=PROVIDER,
                status=404,
            )
        body = ctx.request_for(target)
        deployment = (
            _option(options, "deployment_id", "deploymentId")
            or self.settings.deployment_id
            or body.get("model")
        )
        if not deployment:
            raise ConfigError(
                f"{target.path}: azure-openai needs a deployment_id (or a model naming one)",
                code="missing_deployment_id",
            )
        url = f"{base}/deployments/{quote(str(deployment), safe='')}{path}{query}"
        if body.get("stream"):
            return await self.client.stream_events(url, headers=headers, body=body)
        return await self.client.request_json("POST", url, headers=headers, body=body)

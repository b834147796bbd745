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
from typing import Any, Literal
from urllib.parse import quote

from hookgate import (
    ConfigError,
    HTTPProvider,
    HTTPProviderSettings,
    RequestContext,
    Response,
    StreamResponse,
    Target,
)

__all__ = ["AzureOpenAISettings", "Plugin", "Settings"]

PROVIDER = "azure-openai"
_TEMPLATE = "https://{resource_name}.openai.azure.com/openai"

Auth = Literal["api-key", "entra"]


class AzureOpenAISettings(HTTPProviderSettings):
    """``[plugins.azure-openai]``: the shared provider settings (``api_key``, ``headers``,
    timeouts, pool size), plus Azure's own."""

    resource_name: str | None = None
    """Default Azure resource (``{resource_name}.openai.azure.com``)."""
    deployment_id: str | None = None
    """Default deployment; without one, the request's ``model`` names the deployment."""
    api_version: str = "2024-10-21"
    responses_api_version: str = "2025-04-01-preview"
    """``api-version`` for the Responses API (``/openai/responses``), which the GA
    versions of the deployment API do not have."""
    base_url: str | None = None
    """Replaces ``https://{resource_name}.openai.azure.com/openai`` (a proxy, a sovereign cloud)."""
    auth: Auth = "api-key"
    """``api-key`` header, or ``entra``: the key is an Entra ID token sent as a Bearer."""


def _option(options: Mapping[str, Any], snake: str, camel: str) -> Any:
    value = options.get(snake)
    return options.get(camel) if value is None else value


Settings = AzureOpenAISettings
"""The name the loader and older code use."""


class Plugin(HTTPProvider):
    """The ``azure-openai`` provider."""

    name = PROVIDER
    providers = (PROVIDER,)
    # Azure keeps responses (create, retrieve, delete) like OpenAI; other OpenAI endpoints
    # are refused with a 404 naming the provider.
    serves: Mapping[str, tuple[str, ...]] = {
        PROVIDER: (
            "chat.completions",
            "completions",
            "embeddings",
            "models",
            "responses",
            "responses.retrieve",
            "responses.delete",
            "responses.cancel",
            "responses.input_items",
        )
    }
    presets: Mapping[str, str] = {PROVIDER: _TEMPLATE}
    Settings = AzureOpenAISettings
    settings: AzureOpenAISettings

    def __init__(self, settings: AzureOpenAISettings | None = None) -> None:
        super().__init__(settings)
        self.presets = {PROVIDER: self.settings.base_url or _TEMPLATE}

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
        token = _option(target.options, "azure_ad_token", "azureAdToken")
        if not token:
            return super().headers(ctx, target)
        headers = dict(self.settings.headers)
        headers.update(ctx.forwarded_headers(target))
        headers["authorization"] = f"Bearer {token}"  # a per-target Entra token wins
        return headers

    def auth_headers(self, key: str, target: Target) -> dict[str, str]:
        auth = _option(target.options, "azure_auth_mode", "azureAuthMode") or self.settings.auth
        return {"authorization": f"Bearer {key}"} if auth == "entra" else {"api-key": key}

    def _query(self, target: Target) -> str:
        version = _option(target.options, "api_version", "apiVersion") or self.settings.api_version
        return f"?api-version={quote(str(version), safe='')}"

    async def call(self, ctx: RequestContext, target: Target) -> Response | StreamResponse:
        if ctx.spec is None:
            return await super().call(ctx, target)
        # A declared endpoint (the Responses API): per resource, the model names the
        # deployment, and it needs a preview api-version.
        options = target.options
        version = _option(options, "responses_api_version", "responsesApiVersion")
        version = version or self.settings.responses_api_version
        return await self.client.forward(
            ctx,
            target,
            self.base(target),
            headers=self.headers(ctx, target),
            query=f"api-version={quote(str(version))}",
        )

    async def serve_models(self, ctx: RequestContext, target: Target) -> Response:
        url = f"{self.base(target)}/models{self._query(target)}"
        return await self.client.request_json("GET", url, headers=self.headers(ctx, target))

    async def serve_chat_completions(
        self, ctx: RequestContext, target: Target
    ) -> Response | StreamResponse:
        return await self._deployment(ctx, target, "/chat/completions")

    async def serve_completions(
        self, ctx: RequestContext, target: Target
    ) -> Response | StreamResponse:
        return await self._deployment(ctx, target, "/completions")

    async def serve_embeddings(
        self, ctx: RequestContext, target: Target
    ) -> Response | StreamResponse:
        return await self._deployment(ctx, target, "/embeddings")

    async def _deployment(
        self, ctx: RequestContext, target: Target, path: str
    ) -> Response | StreamResponse:
        base = self.base(target)
        body = ctx.request_for(target)
        deployment = (
            _option(target.options, "deployment_id", "deploymentId")
            or self.settings.deployment_id
            or body.get("model")
        )
        if not deployment:
            raise ConfigError(
                f"{target.path}: azure-openai needs a deployment_id (or a model naming one)",
                code="missing_deployment_id",
            )
        url = f"{base}/deployments/{quote(str(deployment), safe='')}{path}{self._query(target)}"
        return await self.send(url, body, self.headers(ctx, target))

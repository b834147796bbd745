"""hookgate-openai: any upstream that speaks OpenAI's API.

Chat completions (JSON and SSE, passed through event by event), legacy completions,
embeddings and the model list. The ``openai`` upstream is ``base_url`` from plugins.toml, or a
request's ``custom_host``; the key is the target's (config, virtual key or the caller's
``Authorization``), else ``api_key`` from plugins.toml.

The same plugin serves the OpenAI-compatible vendors as named presets, each under Portkey's
provider slug (plus friendly aliases): ``lingyi`` (01.AI, aliases ``01-ai``/``yi``),
``deepseek``, ``groq``, ``mistral-ai``, ``together-ai``, ``openrouter``, ``ollama`` and
``vllm``. A deployment gives a preset its key, overrides its URL, or declares an upstream of
its own under ``[plugins.openai.upstreams.<name>]``::

    [plugins.openai]
    base_url = "https://api.openai.com/v1"
    api_key = "${OPENAI_API_KEY:-}"

    [plugins.openai.upstreams.lingyi]
    api_key = "${LINGYI_API_KEY:-}"

    [plugins.openai.upstreams.gpu-box]          # a new provider name: "gpu-box"
    base_url = "http://10.0.0.7:8000/v1"
    auth = "none"
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from hookgate import (
    HTTPProvider,
    HTTPProviderSettings,
    ProviderError,
    RequestContext,
    Response,
    SSEEvent,
    StreamResponse,
    Target,
    hookimpl,
)
from hookgate.errors import SettingsError
from pydantic import BaseModel, ConfigDict, Field

from .endpoints import OPENAI_API

__all__ = ["PRESETS", "OpenAISettings", "Plugin", "Preset", "Settings", "Upstream"]

_PATHS = {
    "chat.completions": "/chat/completions",
    "completions": "/completions",
    "embeddings": "/embeddings",
}
CORE = ("chat.completions", "completions", "embeddings", "models")
OPENAI_ENDPOINTS = (
    *CORE,
    "responses",
    "responses.retrieve",
    "responses.delete",
    "responses.cancel",
    "responses.input_items",
    "moderations",
    "images.generations",
    "audio.speech",
    "audio.transcriptions",
    "audio.translations",
    "files.create",
    "files.list",
    "files.retrieve",
    "files.delete",
    "files.content",
    "batches.create",
    "batches.list",
    "batches.retrieve",
    "batches.cancel",
)
"""What OpenAI itself serves: requests of these endpoints pass through as they are (the
endpoints other than the core's are declared by the plugins that add them)."""

Auth = Literal["bearer", "none"]


@dataclass(frozen=True, slots=True)
class Preset:
    """A known OpenAI-compatible vendor."""

    base_url: str
    auth: Auth = "bearer"
    endpoints: tuple[str, ...] = CORE
    """The endpoints the vendor serves in OpenAI's format; the rest are translated (the
    Responses API through chat) or refused with a 404 naming the provider."""
    """``bearer``: ``Authorization: Bearer <key>`` with the target's key, else the configured one;
    ``none``: a local server without keys: only a key configured in plugins.toml is sent, never
    the caller's (an SDK's placeholder key stays on the client)."""
    aliases: tuple[str, ...] = ()


PRESETS: Mapping[str, Preset] = MappingProxyType(
    {
        "openai": Preset("https://api.openai.com/v1", endpoints=OPENAI_ENDPOINTS),
        "lingyi": Preset("https://api.lingyiwanwu.com/v1", aliases=("01-ai", "yi")),
        "deepseek": Preset("https://api.deepseek.com"),
        "groq": Preset(
            "https://api.groq.com/openai/v1",
            endpoints=(*CORE, "audio.transcriptions", "audio.translations", "audio.speech"),
        ),
        "mistral-ai": Preset("https://api.mistral.ai/v1", endpoints=(*CORE, "moderations")),
        "together-ai": Preset(
            "https://api.together.xyz/v1", endpoints=(*CORE, "images.generations")
        ),
        "openrouter": Preset("https://openrouter.ai/api/v1"),
        "ollama": Preset("http://localhost:11434/v1", auth="none"),
        "vllm": Preset("http://localhost:8000/v1", auth="none"),
    }
)
"""Portkey's provider slug -> the vendor's base URL and auth style."""


class Upstream(BaseModel):
    """``[plugins.openai.upstreams.<name>]``: a preset's key and overrides, or a new upstream."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str | None = None
    """Required for a name that is not a preset."""
    api_key: str | None = Field(default=None, repr=False)
    """Used for targets that bring no key of their own; empty means none."""
    auth: Auth | None = None
    aliases: list[str] = Field(default_factory=list)
    """More provider names for this upstream."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra headers sent with every request to this upstream."""
    endpoints: list[str] | None = None
    """The endpoints it serves in OpenAI's format (default: the preset's list, or chat
    completions, completions, embeddings and models for a new upstream)."""


class OpenAISettings(HTTPProviderSettings):
    """``[plugins.openai]``: the shared provider settings (``api_key`` for ``openai`` targets
    that bring no key of their own, ``headers`` sent to every upstream, timeouts, pool size),
    plus OpenAI's own and the OpenAI-compatible upstreams."""

    base_url: str = "https://api.openai.com/v1"
    organization: str | None = None
    project: str | None = None
    upstreams: dict[str, Upstream] = Field(default_factory=dict)
    """Per preset (by slug) or new provider name: key, base URL, auth, aliases, headers."""


@dataclass(frozen=True, slots=True)
class _Resolved:
    name: str
    base_url: str
    auth: Auth
    api_key: str | None
    headers: Mapping[str, str]
    endpoints: tuple[str, ...] = CORE


def _names(presets: Mapping[str, Preset]) -> dict[str, str]:
    served = {}
    for name, preset in presets.items():
        served[name] = name
        for alias in preset.aliases:
            served[alias] = name
    return served


Settings = OpenAISettings
"""The name the loader and older code use."""


class Plugin(HTTPProvider):
    """The ``openai`` provider and its OpenAI-compatible presets: one pooled client for all."""

    # Class-level: what an installed (not yet configured) plugin serves; an instance adds the
    # deployment's own upstreams. `hookgate providers` reads `presets` and `aliases`.
    providers: tuple[str, ...] = tuple(_names(PRESETS))
    aliases: Mapping[str, str] = MappingProxyType(
        {alias: name for name, p in PRESETS.items() for alias in p.aliases}
    )
    presets: Mapping[str, str] = MappingProxyType({n: p.base_url for n, p in PRESETS.items()})
    # OpenAI's other endpoints (moderations, images, audio, files, batches), declared here
    # because this plugin is what serves them.
    endpoints = OPENAI_API
    serves: Mapping[str, tuple[str, ...]] = MappingProxyType(
        {n: p.endpoints for n, p in PRESETS.items()}
    )
    Settings = OpenAISettings
    settings: OpenAISettings
    name = "openai"

    def __init__(self, settings: OpenAISettings | None = None) -> None:
        super().__init__(settings)
        static = dict(self.settings.headers)
        if self.settings.organization:
            static["openai-organization"] = self.settings.organization
        if self.settings.project:
            static["openai-project"] = self.settings.project
        self._static_headers = static
        self._upstreams = self._resolve(self.settings)
        self.base_url = self._upstreams["openai"].base_url
        served = _names(PRESETS)
        for name, upstream in self.settings.upstreams.items():
            served[name.lower()] = name.lower()
            for alias in upstream.aliases:
                served[alias.lower()] = name.lower()
        self._served = served
        self.providers = tuple(served)
        self.aliases = MappingProxyType({a: n for a, n in served.items() if a != n})
        self.presets = MappingProxyType({n: u.base_url for n, u in self._upstreams.items()})
        self.serves = MappingProxyType({n: u.endpoints for n, u in self._upstreams.items()})

    def _resolve(self, settings: OpenAISettings) -> dict[str, _Resolved]:
        resolved = {}
        configured = {name.lower(): up for name, up in settings.upstreams.items()}
        for name in sorted(set(PRESETS) | set(configured)):
            preset = PRESETS.get(name)
            upstream = configured.get(name, Upstream())
            base: str | None
            if name == "openai":
                base = upstream.base_url or settings.base_url
                key = upstream.api_key or settings.api_key
            else:
                base = upstream.base_url or (preset.base_url if preset else None)
                key = upstream.api_key
            if base is None:
                raise SettingsError(
                    f"[plugins.openai.upstreams.{name}] is not a preset "
                    f"({', '.join(PRESETS)}): give it a base_url"
                )
            auth = upstream.auth or (preset.auth if preset else "bearer")
            endpoints = (
                tuple(upstream.endpoints)
                if upstream.endpoints is not None
                else preset.endpoints
                if preset
                else CORE
            )
            resolved[name] = _Resolved(
                name,
                base.rstrip("/"),
                auth,
                key or None,
                {**self._static_headers, **upstream.headers},
                endpoints,
            )
        return resolved

    @hookimpl
    def call_provider(self, ctx: RequestContext, target: Target) -> Any:
        # Every preset and configured upstream (and their aliases), not just `providers`.
        name = self._served.get(target.provider)
        if name is None:
            return None
        return self.call(ctx, target, self._upstreams[name])

    def headers(
        self, ctx: RequestContext, target: Target, upstream: _Resolved | None = None
    ) -> dict[str, str]:
        upstream = upstream or self._upstreams["openai"]
        headers = dict(upstream.headers)
        headers.update(ctx.forwarded_headers(target))
        if upstream.auth == "none":  # a keyless local server: never the caller's key
            key = target.operator_key(upstream.api_key)
        else:
            key = target.api_key or target.operator_key(upstream.api_key)
        if key:
            headers["authorization"] = f"Bearer {key}"
        return headers

    async def call(
        self, ctx: RequestContext, target: Target, upstream: _Resolved | None = None
    ) -> Response | StreamResponse:
        upstream = upstream or self._upstreams["openai"]
        if upstream.name == "openai":
            return await self._call(ctx, target, upstream)
        # One pooled client serves every upstream; errors name the preset, not "openai".
        try:
            response = await self._call(ctx, target, upstream)
        except ProviderError as exc:
            exc.provider = upstream.name
            raise
        if isinstance(response, StreamResponse):
            response.events = _renamed(response.events, upstream.name)
        return response

    async def _call(
        self, ctx: RequestContext, target: Target, upstream: _Resolved
    ) -> Response | StreamResponse:
        base = target.custom_host or upstream.base_url
        headers = self.headers(ctx, target, upstream)
        if ctx.endpoint == "models":
            return await self.client.request_json("GET", f"{base}/models", headers=headers)
        if ctx.spec is not None:  # a plugin's endpoint in OpenAI's format: as it came
            return await self.client.forward(ctx, target, base, headers=headers)
        path = _PATHS.get(ctx.endpoint)
        if path is None:
            raise ProviderError(
                f"the {upstream.name} provider does not serve {ctx.endpoint}",
                provider=upstream.name,
                status=404,
            )
        return await self.send(base + path, ctx.request_for(target), headers)


async def _renamed(events: AsyncIterator[SSEEvent], provider: str) -> AsyncIterator[SSEEvent]:
    try:
        async for event in events:
            yield event
    except ProviderError as exc:
        exc.provider = provider
        raise
    finally:
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()

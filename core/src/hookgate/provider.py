"""A base class for provider plugins that call an HTTP upstream.

It owns what every such provider repeats: the shared settings (``api_key``, ``headers`` and
the client's timeouts and pool size), the :class:`~hookgate.http.UpstreamClient` life cycle
(opened in ``startup``, closed in ``shutdown``), claiming ``call_provider`` for the names in
``providers``, the request headers (static, forwarded, auth) and the dispatch by endpoint to
``serve_<endpoint>`` methods::

    class AcmeSettings(HTTPProviderSettings):
        base_url: str = "https://api.acme.example/v1"

    class Acme(HTTPProvider):
        name = "acme"
        providers = ("acme",)
        Settings = AcmeSettings

        async def serve_chat_completions(self, ctx, target):
            url = (target.custom_host or self.settings.base_url) + "/chat/completions"
            return await self.send(url, ctx.request_for(target), self.headers(ctx, target))

An endpoint without a ``serve_`` method is answered with a 404 naming the provider. A
subclass overriding a hook implementation (``startup``, ``call_provider``, ...) must mark
it ``@hookimpl`` again and call ``super()`` where it keeps the behaviour.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from .errors import ProviderError
from .hookspecs import hookimpl
from .http import UpstreamClient
from .responses import Response, StreamResponse

if TYPE_CHECKING:
    from .context import RequestContext
    from .gateway import Gateway
    from .routing import Target

__all__ = ["HTTPProvider", "HTTPProviderSettings"]

Handler = Callable[["RequestContext", "Target"], Awaitable[Response | StreamResponse]]


class HTTPProviderSettings(BaseModel):
    """The settings every HTTP provider takes in its ``[plugins.<name>]`` table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    api_key: str | None = Field(default=None, repr=False)
    """Used for targets that bring no key of their own; empty means none."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra headers sent with every request."""
    connect_timeout: Annotated[float, Field(gt=0)] = 10.0
    read_timeout: Annotated[float, Field(gt=0)] = 600.0
    """Longest silence while waiting for (more of) an answer, in seconds."""
    max_connections: Annotated[int, Field(ge=1)] = 1024


class HTTPProvider:
    """Subclass it, set ``name``, ``providers`` and ``Settings``, write ``serve_*`` methods."""

    name: ClassVar[str] = ""
    """The provider's canonical name: the client's and the errors' (``acme error: ...``)."""
    providers: tuple[str, ...] = ()
    """Provider names this plugin's ``call_provider`` claims (the first is the default
    ``name``)."""
    Settings: ClassVar[type[HTTPProviderSettings]] = HTTPProviderSettings

    def __init__(self, settings: HTTPProviderSettings | None = None) -> None:
        self.settings: Any = settings if settings is not None else type(self).Settings()
        self.provider = self.name or (self.providers[0] if self.providers else "")
        if not self.provider:
            raise TypeError(f"{type(self).__name__} sets neither name nor providers")
        self.client = UpstreamClient(
            self.provider,
            connect_timeout=self.settings.connect_timeout,
            read_timeout=self.settings.read_timeout,
            max_connections=self.settings.max_connections,
        )

    # ---- life cycle -------------------------------------------------------------------

    @hookimpl
    async def startup(self, gateway: Gateway) -> None:
        await self.client.start()

    @hookimpl
    async def shutdown(self, gateway: Gateway) -> None:
        await self.client.aclose()

    # ---- claiming and dispatch ----------------------------------------------------------

    def claims(self, target: Target) -> bool:
        """Whether ``call_provider`` claims ``target`` (by default: a name in ``providers``)."""
        return target.provider in self.providers

    @hookimpl
    def call_provider(
        self, ctx: RequestContext, target: Target
    ) -> Awaitable[Response | StreamResponse] | None:
        if not self.claims(target):
            return None
        return self.call(ctx, target)

    async def call(self, ctx: RequestContext, target: Target) -> Response | StreamResponse:
        """Answer ``ctx`` with the ``serve_<endpoint>`` method (``serve_chat_completions``)."""
        handler: Handler | None = getattr(self, "serve_" + ctx.endpoint.replace(".", "_"), None)
        if handler is None:
            raise self.unserved(ctx)
        return await handler(ctx, target)

    def unserved(self, ctx: RequestContext) -> ProviderError:
        """The error for an endpoint without a ``serve_`` method (a 404 naming it)."""
        return ProviderError(
            f"the {self.provider} provider does not serve {ctx.endpoint}",
            provider=self.provider,
            status=404,
        )

    # ---- building the upstream request --------------------------------------------------

    def api_key(self, target: Target) -> str | None:
        """The key to send: the target's own, else the one in this plugin's settings, which
        goes only to the plugin's own host (a 400 when the request chose the host)."""
        return target.api_key or target.operator_key(self.settings.api_key)

    def auth_headers(self, key: str, target: Target) -> dict[str, str]:
        """How the upstream takes its key; by default ``Authorization: Bearer``."""
        return {"authorization": f"Bearer {key}"}

    def headers(self, ctx: RequestContext, target: Target) -> dict[str, str]:
        """Settings headers, then the headers ``target`` forwards, then the key's."""
        headers = dict(self.settings.headers)
        headers.update(ctx.forwarded_headers(target))
        key = self.api_key(target)
        if key:
            headers.update(self.auth_headers(key, target))
        return headers

    async def send(
        self,
        url: str,
        body: dict[str, Any],
        headers: dict[str, str],
        *,
        done_marker: bool = True,
    ) -> Response | StreamResponse:
        """POST ``body``: as an event stream when it asks for one, else as JSON."""
        if body.get("stream"):
            return await self.client.stream_events(
                url, headers=headers, body=body, done_marker=done_marker
            )
        return await self.client.request_json("POST", url, headers=headers, body=body)

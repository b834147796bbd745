"""Endpoints: the kinds of request hookgate answers, and which provider serves which.

The core knows only its own endpoints (:data:`CORE_ENDPOINTS`: chat completions, completions,
embeddings, the model list). Every other endpoint is *declared* by the plugin that implements
it, as an :class:`EndpointSpec` in the plugin's ``endpoints`` attribute::

    class Plugin:
        endpoints = (
            EndpointSpec(name="moderations", path="/v1/moderations", request_model=...),
        )

A declared endpoint is served by ``hookgate serve`` at its path (and the same path without
``/v1``) and runs through the whole pipeline: gateway key, routing plan, retries, fallbacks,
caches, logs, cost. In embedded use it is ``await gw.request("moderations", body)``.

Provider plugins say which endpoints each of their providers serves with a ``serves``
attribute (provider name -> endpoint names). A provider that declares nothing is offered
every request (its ``call_provider`` decides). When a target's provider does not serve the
request's endpoint, the core either answers through the endpoint's :class:`Bridge` (the
Responses API through a provider's chat API, say) or fails the call with a 404 in OpenAI's
error shape naming the provider and the endpoint: a ``ProviderError``, so a fallback can try
a target that serves it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .errors import ProviderError, SettingsError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from .responses import SSEEvent

__all__ = [
    "CORE_ENDPOINTS",
    "Bridge",
    "EndpointCatalog",
    "EndpointSpec",
    "Upload",
    "unsupported_endpoint",
]

CORE_ENDPOINTS = frozenset({"chat.completions", "completions", "embeddings", "models"})
"""What the core serves itself; every other endpoint is a plugin's."""

BodyKind = Literal["json", "multipart", "none"]

_NAME = re.compile(r"^[a-z][a-z0-9_.-]*$")
_PARAM = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


@dataclass(frozen=True, slots=True)
class Upload:
    """A file part of a multipart request (``file`` of ``/v1/audio/transcriptions``)."""

    filename: str
    content_type: str
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Bridge:
    """How to serve an endpoint through another one a provider does serve.

    ``request`` turns the client's body into a body of endpoint ``via`` (raise
    :class:`~hookgate.errors.BadRequestError` naming the field that cannot be translated);
    ``response`` turns ``via``'s JSON answer back (it gets the client's body too);
    ``stream`` turns ``via``'s events into this endpoint's events.
    """

    via: str
    request: Callable[[dict[str, Any]], dict[str, Any]]
    response: Callable[[dict[str, Any], Any], Any]
    stream: Callable[[dict[str, Any], AsyncIterator[SSEEvent]], AsyncIterator[SSEEvent]]
    done_marker: bool = False
    """Whether the translated stream ends with ``data: [DONE]``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointSpec:
    """One operation a plugin adds to the gateway: a method on a path, and what it takes."""

    name: str
    """Dotted lower-case name, what ``ctx.endpoint`` says: ``responses``, ``files.create``."""
    path: str
    """Where ``hookgate serve`` mounts it, ``/v1/...``; ``{name}`` segments are path
    parameters (``ctx.params``)."""
    method: str = "POST"
    body: BodyKind = "json"
    """``json`` (an object, validated with ``request_model``), ``multipart`` (form fields in
    ``ctx.body``, files in ``ctx.uploads``) or ``none`` (``ctx.body`` is empty; the query
    string is in ``ctx.query``)."""
    request_model: type[BaseModel] | None = None
    """Validates the JSON body, or a form's text fields (a missing field is a 400 naming
    it); also documents it in ``/openapi.json``."""
    files: tuple[str, ...] = ()
    """The file parts a multipart body must have (``("file",)``)."""
    streams: bool = False
    """``"stream": true`` in the body makes the answer an event stream."""
    done_marker: bool = False
    """Whether that stream ends with ``data: [DONE]``."""
    byte_stream: bool = False
    """The answer is bytes relayed as they arrive (speech audio), not one JSON body."""
    upstream_path: str | None = None
    """The path under a provider's base URL (``/responses/{response_id}``); by default
    ``path`` without its ``/v1``."""
    bridge: Bridge | None = None
    cacheable: bool = False
    """Whether an answer is a function of the request, so caches may keep it."""
    render_error: Callable[..., Any] | None = None
    """Shapes errors for this API's clients (``render_error(error, headers)`` returns a
    Starlette response); by default OpenAI's ``{"error": {...}}``."""
    operation: str = ""
    """What kind of call it is for traces and logs: a GenAI semantic-convention
    ``gen_ai.operation.name`` (``chat``, ``embeddings``, ...); by default the name."""
    summary: str = ""
    response_media_type: str = "application/json"
    """What a successful answer is, for ``/openapi.json``: JSON, ``audio/mpeg``, ..."""
    tag: str = ""

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise SettingsError(f"endpoint name {self.name!r} must be dotted lower-case")
        if not self.path.startswith("/"):
            raise SettingsError(f"endpoint {self.name!r}: path {self.path!r} must start with /")
        if self.method not in ("GET", "POST", "DELETE", "PUT", "PATCH"):
            raise SettingsError(f"endpoint {self.name!r}: unknown method {self.method!r}")

    @property
    def path_params(self) -> tuple[str, ...]:
        return tuple(_PARAM.findall(self.path))

    def upstream(self, params: Mapping[str, str]) -> str:
        """The upstream path with the request's path parameters filled in (URL-quoted)."""
        from urllib.parse import quote

        template = self.upstream_path
        if template is None:
            template = self.path.removeprefix("/v1") or "/"
        return _PARAM.sub(lambda m: quote(params.get(m.group(1), ""), safe=""), template)


def unsupported_endpoint(provider: str, endpoint: str, spec: EndpointSpec | None) -> ProviderError:
    """The 404 for a provider that does not serve ``endpoint``, in OpenAI's shape."""
    where = f" ({spec.method} {spec.path})" if spec is not None else ""
    message = f"provider {provider!r} does not serve the {endpoint} endpoint{where}"
    return ProviderError(
        message,
        provider=provider,
        status=404,
        code="unsupported_endpoint",
        body={
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": "unsupported_endpoint",
            }
        },
    )


class EndpointCatalog:
    """Every endpoint the enabled plugins declare, and what each provider serves."""

    def __init__(
        self,
        declared: Iterable[tuple[str, EndpointSpec]] = (),
        serves: Iterable[tuple[str, Mapping[str, Collection[str]]]] = (),
    ) -> None:
        self.specs: dict[str, EndpointSpec] = {}
        self.owners: dict[str, str] = {}
        routes: dict[tuple[str, str], str] = {}
        for plugin, spec in declared:
            if spec.name in CORE_ENDPOINTS:
                raise SettingsError(
                    f"plugin {plugin!r} declares endpoint {spec.name!r}, which the core serves"
                )
            if spec.name in self.specs:
                raise SettingsError(
                    f"plugins {self.owners[spec.name]!r} and {plugin!r} both declare "
                    f"endpoint {spec.name!r}"
                )
            route = (spec.method, spec.path)
            if route in routes:
                raise SettingsError(
                    f"endpoints {routes[route]!r} and {spec.name!r} both claim "
                    f"{spec.method} {spec.path}"
                )
            routes[route] = spec.name
            self.specs[spec.name] = spec
            self.owners[spec.name] = plugin
        self.serves: dict[str, frozenset[str]] = {}
        for _plugin, table in serves:
            for provider, names in table.items():
                known = self.serves.get(provider.lower(), frozenset())
                self.serves[provider.lower()] = known | frozenset(names)

    def spec(self, endpoint: str) -> EndpointSpec | None:
        return self.specs.get(endpoint)

    def served_by(self, provider: str) -> frozenset[str] | None:
        """Endpoints ``provider`` declares it serves; None when it declares nothing."""
        return self.serves.get(provider)

    def route(self, provider: str, endpoint: str) -> Bridge | None:
        """How to call ``provider`` for ``endpoint``: None to call it as it is, a
        :class:`Bridge` to translate; raise the 404 when neither can serve it."""
        served = self.serves.get(provider)
        if served is None or endpoint in served:
            return None
        spec = self.specs.get(endpoint)
        bridge = spec.bridge if spec is not None else None
        if bridge is not None and bridge.via in served:
            return bridge
        raise unsupported_endpoint(provider, endpoint, spec)

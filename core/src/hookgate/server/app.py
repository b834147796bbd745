"""The OpenAI-compatible HTTP API: a Starlette app around a :class:`~hookgate.Gateway`.

Every answer, success or error, is JSON in OpenAI's shape (or an SSE stream) and carries the
``x-portkey-*`` / ``x-hookgate-*`` headers. Plugins add routes with ``register_routes``.

The hot routes (``POST /v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings`` and
``GET /health``) are answered by a plain ASGI fast path that skips Starlette's routing,
``Request`` and middleware objects; it gives the same answers as the routes (which remain,
for introspection, and serve a path a plugin overrides). Everything else goes to Starlette.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import orjson
import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response as StarletteResponse
from starlette.responses import StreamingResponse
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from ..context import Endpoint, RequestContext
from ..endpoints import EndpointSpec, Upload
from ..errors import (
    AuthenticationError,
    BadRequestError,
    GatewayError,
    NotFoundError,
    PayloadTooLargeError,
)
from ..gateway import Gateway
from ..responses import Response, StreamResponse
from .gate import GATEWAY_KEY, Gate, admitted, normalise_path, principal_of, scope_headers
from .headers import request_options, response_headers

__all__ = [
    "HookgateApp",
    "app_from_env",
    "create_app",
    "declared_routes",
    "error_response",
    "read_json",
]

log = structlog.get_logger("hookgate.server")

JSON = "application/json"


def error_response(error: GatewayError, headers: dict[str, str] | None = None) -> StarletteResponse:
    return StarletteResponse(
        error.to_json(), status_code=error.http_status, media_type=JSON, headers=headers
    )


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"the request body is larger than {limit} bytes")


def parse_json(body: bytes) -> Any:
    """A request body as JSON, or the 400 that says why not."""
    if not body:
        raise BadRequestError("the request body is empty; send a JSON object", code="invalid_json")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(
            f"the request body is not valid JSON: {exc}", code="invalid_json"
        ) from exc


async def read_bytes(request: Request, limit: int) -> bytes:
    """The request body; 413 past ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, limit: int) -> Any:
    """The request body as JSON; 413 past ``limit`` bytes, 400 when it is not JSON."""
    return parse_json(await read_bytes(request, limit))


async def read_multipart(
    request: Request, limit: int, uploads: dict[str, Upload]
) -> dict[str, Any]:
    """A ``multipart/form-data`` body: its text fields (returned) and files (into
    ``uploads``); 413 past ``limit`` bytes, 400 when it is not a form."""
    from starlette.formparsers import MultiPartException, MultiPartParser

    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise BadRequestError(
            "send this endpoint a multipart/form-data body", code="invalid_content_type"
        )
    raw = await read_bytes(request, limit)

    async def once() -> AsyncGenerator[bytes, None]:
        yield raw

    try:
        form = await MultiPartParser(request.headers, once(), max_part_size=limit).parse()
    except MultiPartException as exc:
        raise BadRequestError(f"the form could not be read: {exc}", code="invalid_form") from exc
    fields: dict[str, Any] = {}
    try:
        for name, value in form.multi_items():
            if isinstance(value, str):
                fields[name] = value
            else:
                uploads[name] = Upload(
                    value.filename or name,
                    value.content_type or "application/octet-stream",
                    await value.read(),
                )
    finally:
        await form.close()
    return fields


ErrorRenderer = Callable[[GatewayError, dict[str, str]], StarletteResponse]


class API:
    """The route handlers, bound to one gateway."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.server = gateway.settings.server

    async def answer(
        self,
        headers: Mapping[str, str],
        endpoint: Endpoint,
        body: Any,
        read_body: Callable[[], Awaitable[Any]] | None,
        scope: Mapping[str, Any],
        **request: Any,
    ) -> tuple[Response | StreamResponse | GatewayError, dict[str, str]]:
        """Run one request through the pipeline: the answer (or the error to show) and the
        ``x-portkey-*`` headers. ``read_body`` is awaited for the JSON body. The gate has
        checked the caller already and left what it found on ``scope``. ``request``: a
        declared endpoint's ``params``, ``query`` and ``uploads``."""
        ctx: RequestContext | None = None
        try:
            if not admitted(scope):  # an open route that runs the pipeline: never
                raise AuthenticationError(
                    "a valid gateway key is required in the x-portkey-api-key header"
                )
            if read_body is not None:
                body = await read_body()
            config, options = request_options(
                headers, self.server, scope.get(GATEWAY_KEY), principal_of(scope)
            )
            ctx = self.gateway.context(endpoint, body, config=config, options=options, **request)
            response = await self.gateway.handle(ctx)
        except GatewayError as exc:
            return exc, response_headers(ctx) if ctx is not None else _trace_header(headers)
        return response, response_headers(ctx)

    async def handle(
        self,
        request: Request,
        endpoint: Endpoint,
        body: Any = None,
        render_error: ErrorRenderer | None = None,
    ) -> StarletteResponse:
        """Run one request of ``endpoint`` through the pipeline and answer it over HTTP."""
        limit = self.server.max_body_bytes
        reader = (lambda: read_json(request, limit)) if body is None else None
        response, headers = await self.answer(
            request.headers, endpoint, body, reader, request.scope
        )
        return _render(response, headers, render_error)

    async def declared(self, request: Request, spec: EndpointSpec) -> StarletteResponse:
        """A plugin's endpoint: its body read the way it declares, its path parameters and
        query string kept, then the whole pipeline as for the core's endpoints."""
        limit = self.server.max_body_bytes
        uploads: dict[str, Upload] = {}
        reader: Callable[[], Awaitable[Any]] | None
        body: Any = None
        if spec.body == "json":
            reader = lambda: read_json(request, limit)  # noqa: E731
        elif spec.body == "multipart":
            reader = lambda: read_multipart(request, limit, uploads)  # noqa: E731
        else:
            reader, body = None, {}
        response, headers = await self.answer(
            request.headers,
            spec.name,
            body,
            reader,
            request.scope,
            params={k: str(v) for k, v in request.path_params.items()},
            query=request.url.query,
            uploads=uploads,
        )
        return _render(response, headers, spec.render_error)

    async def chat_completions(self, request: Request) -> StarletteResponse:
        return await self.handle(request, "chat.completions")

    async def completions(self, request: Request) -> StarletteResponse:
        return await self.handle(request, "completions")

    async def embeddings(self, request: Request) -> StarletteResponse:
        return await self.handle(request, "embeddings")

    async def models(self, request: Request) -> StarletteResponse:
        return await self.handle(request, "models", body={})

    async def health(self, request: Request) -> StarletteResponse:
        return StarletteResponse(_HEALTHY, media_type=JSON)

    async def ready(self, request: Request) -> StarletteResponse:
        """200 when every plugin is loaded and started and no plugin reports a problem with
        its backends (``ready`` hook); 503 with the problems otherwise. Only a caller with a
        gateway key (or any caller of a deployment without keys) sees the details."""
        problems: list[str] = []
        if not self.gateway.started:
            problems.append("the gateway has not started")
        else:
            problems.extend(await self.gateway.readiness())
        body: dict[str, Any] = {"status": "not ready" if problems else "ready"}
        if admitted(request.scope):
            body["problems"] = problems
            body["plugins"] = [p.name for p in self.gateway.plugins]
            body["providers"] = sorted(self.gateway.providers)
        return StarletteResponse(
            orjson.dumps(body), status_code=503 if problems else 200, media_type=JSON
        )


_HEALTHY = b'{"status":"ok"}'


def _render(
    response: Response | StreamResponse | GatewayError,
    headers: dict[str, str],
    render_error: ErrorRenderer | None = None,
) -> StarletteResponse:
    if isinstance(response, GatewayError):
        if render_error is not None:
            return render_error(response, headers)
        return error_response(response, headers)
    if isinstance(response, StreamResponse):
        return _streaming(response, headers)
    return StarletteResponse(
        response.body,
        status_code=response.status,
        media_type=response.media_type,
        headers={**response.headers, **headers},
    )


def declared_routes(gateway: Gateway, api: API | None = None) -> list[Route]:
    """One route per endpoint the enabled plugins declare (see :mod:`hookgate.endpoints`)."""
    api = api or API(gateway)
    routes = []
    for spec in gateway.endpoints.specs.values():

        async def handler(request: Request, spec: EndpointSpec = spec) -> StarletteResponse:
            return await api.declared(request, spec)

        routes.append(Route(spec.path, handler, methods=[spec.method], name=spec.name))
    return routes


def endpoint_route(
    gateway: Gateway,
    path: str,
    endpoint: Endpoint,
    *,
    render_error: ErrorRenderer | None = None,
) -> Route:
    """A POST route that runs ``endpoint`` through the whole pipeline (retries, fallback,
    caches, logs) and answers with its JSON or SSE; for plugins' ``register_routes`` that
    mount an endpoint at another path. ``render_error`` shapes errors for that API's
    clients. A new endpoint is declared instead (:class:`~hookgate.endpoints.EndpointSpec`)."""
    api = API(gateway)

    async def handler(request: Request) -> StarletteResponse:
        return await api.handle(request, endpoint, render_error=render_error)

    return Route(path, handler, methods=["POST"])


def _trace_header(headers: Mapping[str, str]) -> dict[str, str]:
    trace = headers.get("x-portkey-trace-id", "")
    return {"x-portkey-trace-id": trace, "x-hookgate-trace-id": trace}


def _streaming(response: StreamResponse, headers: dict[str, str]) -> StreamingResponse:
    return StreamingResponse(
        _sse(response),
        status_code=response.status,
        media_type=response.media_type,
        headers={**response.headers, **headers, "cache-control": "no-cache"},
    )


async def _sse(response: StreamResponse) -> AsyncGenerator[bytes, None]:
    try:
        async for event in response.events:
            yield event.encode()
    except GatewayError as exc:
        # Headers are gone already: tell the client in the stream, then end it cleanly.
        if not response.media_type.startswith("text/event-stream"):
            log.warning("byte_stream_failed", error=exc.message)
            return  # a byte stream (audio) cannot carry an error: it ends short
        if response.done_marker:
            yield b"data: " + exc.to_json() + b"\n\n"
        else:
            yield b"event: error\ndata: " + exc.to_json() + b"\n\n"
        return
    finally:
        # The client went away (or the stream ended): release the upstream at once.
        await response.aclose()
    if response.done_marker:
        yield b"data: [DONE]\n\n"


async def _not_found(request: Request, exc: Exception) -> StarletteResponse:
    if isinstance(exc, HTTPException) and exc.status_code == 405:
        error = GatewayError(
            f"{request.method} is not allowed on {request.url.path}",
            status=405,
            code="method_not_allowed",
        )
        error.type = "invalid_request_error"
        return error_response(error)
    message = f"no route for {request.method} {request.url.path}"
    app = request.scope.get("app")
    owner = None
    if isinstance(app, HookgateApp):
        owner = await app.declared_elsewhere(request.method, request.url.path)
    if owner is None:
        return error_response(NotFoundError(message))
    plugin, spec = owner
    return error_response(
        NotFoundError(
            f"{message}: the {spec.name!r} endpoint is declared by the {plugin!r} plugin, "
            f"which is not enabled; add {plugin!r} to [gateway] plugins",
            code="endpoint_not_enabled",
        )
    )


async def _internal_error(request: Request, exc: Exception) -> StarletteResponse:
    log.error("unhandled_error", path=request.url.path, exc_info=exc)
    return error_response(GatewayError("internal error", code="internal_error"))


# ---- the fast path --------------------------------------------------------------------

_FAST_POST: dict[str, Endpoint] = {
    "/v1/chat/completions": "chat.completions",
    "/v1/completions": "completions",
    "/v1/embeddings": "embeddings",
}
_JSON_HEADER = (b"content-type", b"application/json")
_HEALTH_HEADERS = [_JSON_HEADER, (b"content-length", str(len(_HEALTHY)).encode())]


def _path_pattern(path: str) -> re.Pattern[str]:
    """``/v1/files/{file_id}`` as a pattern matching its paths."""
    parts = re.split(r"(\{[a-z_][a-z0-9_]*\})", path)
    return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts))


def _latin1(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


class HookgateApp(Starlette):
    """Starlette, plus the fast path for the hot routes (see the module docstring)."""

    def __init__(self, api: API, routes: list[BaseRoute], **kwargs: Any) -> None:
        super().__init__(routes=routes, **kwargs)
        # A trailing slash is normalised away by the gate: never answer it with a redirect
        # (Starlette would build its Location from the Host header).
        self.router.redirect_slashes = False
        self.api = api
        self.gate = Gate(api.server, api.gateway.hooks, routes)
        self._elsewhere: list[tuple[str, EndpointSpec, re.Pattern[str]]] | None = None
        taken = {getattr(route, "path", None) for route in routes[: -len(_CORE_PATHS)]}
        self._fast_post = {p: e for p, e in _FAST_POST.items() if p not in taken}
        self._fast_health = "/health" not in taken
        self._limit = api.server.max_body_bytes
        # OpenAI's API answers without its version prefix too (LiteLLM serves
        # /chat/completions): the first segments under /v1 that also work bare.
        paths = [getattr(route, "path", "") for route in routes]
        self._bare = frozenset(
            p.split("/")[2] for p in paths if p.startswith("/v1/") and len(p.split("/")) > 2
        ) - {p.split("/")[1] for p in paths if not p.startswith("/v1/")}
        # CORS for browser apps, when [server] cors_origins lists origins: preflights are
        # answered here, before any route (a browser sends no keys with them); the requests
        # that follow meet the gateway-key check as every request does.
        self._cors: Any = None
        origins = api.server.cors_origins
        if origins:
            from starlette.middleware.cors import CORSMiddleware

            self._cors = CORSMiddleware(
                self._dispatch,
                allow_origins=origins,
                allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
                allow_headers=["*"],
                expose_headers=_EXPOSED,
                max_age=api.server.cors_max_age,
            )

    async def declared_elsewhere(self, method: str, path: str) -> tuple[str, EndpointSpec] | None:
        """The installed plugin, not enabled, that declares the endpoint at ``path`` (with or
        without ``/v1``): what a 404 names. The installed plugins are read once, off the
        event loop."""
        if self._elsewhere is None:
            from ..plugins import endpoints_elsewhere

            enabled = {p.name for p in self.api.gateway.plugins}
            found = await asyncio.to_thread(endpoints_elsewhere, enabled)
            self._elsewhere = [(name, spec, _path_pattern(spec.path)) for name, spec in found]
        candidates = (path, "/v1" + path) if not path.startswith("/v1/") else (path,)
        for name, spec, pattern in self._elsewhere:
            if spec.method == method and any(pattern.fullmatch(p) for p in candidates):
                return name, spec
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._cors is not None:
            return await self._cors(scope, receive, send)
        return await self._dispatch(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http" or kind == "websocket":
            path = scope["path"]
            normal = normalise_path(path)
            if normal != path:
                scope["path"] = normal
                path = normal
            if not path.startswith("/v1/") and path.split("/", 2)[1] in self._bare:
                path = "/v1" + path
                scope["path"] = path
            if kind == "http" and scope["method"] == "POST":
                endpoint = self._fast_post.get(path)
                if endpoint is not None:
                    return await self._post(endpoint, scope, receive, send)
            try:
                self.gate.admit(scope)
            except AuthenticationError as exc:
                return await _refuse(exc, scope, receive, send)
            if path == "/health" and self._fast_health and scope.get("method") == "GET":
                await send(
                    {"type": "http.response.start", "status": 200, "headers": _HEALTH_HEADERS}
                )
                return await send({"type": "http.response.body", "body": _HEALTHY})
        await super().__call__(scope, receive, send)

    async def _post(self, endpoint: Endpoint, scope: Scope, receive: Receive, send: Send) -> None:
        headers = scope_headers(scope)
        try:
            self.gate.admit(scope, headers)
        except AuthenticationError as exc:
            return await _refuse(exc, scope, receive, send)
        limit = self._limit

        async def read_body() -> Any:
            declared = headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise _too_large(limit)
            body = b""
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    raise BadRequestError("the client went away", code="client_disconnected")
                body += message.get("body", b"")
                if len(body) > limit:
                    raise _too_large(limit)
                if not message.get("more_body", False):
                    return parse_json(body)

        try:
            response, extra = await self.api.answer(headers, endpoint, None, read_body, scope)
            if isinstance(response, StreamResponse):
                return await _relay_stream(response, extra, receive, send)
            if isinstance(response, GatewayError):
                status, body, out = response.http_status, response.to_json(), extra
            else:
                assert isinstance(response, Response)
                status, body = response.status, response.body
                out = {**response.headers, **extra} if response.headers else extra
        except Exception as exc:  # a bug of ours: a clean 500, the traceback in the log
            log.error("unhandled_error", path=scope["path"], exc_info=exc)
            error = GatewayError("internal error", code="internal_error")
            status, body, out = error.http_status, error.to_json(), {}
        raw = _latin1(out)
        raw.append(_JSON_HEADER)
        raw.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})


async def _refuse(error: GatewayError, scope: Scope, receive: Receive, send: Send) -> None:
    """The gate's 401: JSON for HTTP, a policy-violation close for a websocket."""
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        return await send({"type": "websocket.close", "code": 1008})
    body = error.to_json()
    headers = [_JSON_HEADER, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": error.http_status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]


async def _relay_stream(
    response: StreamResponse, extra: dict[str, str], receive: Receive, send: Send
) -> None:
    """Send an SSE answer as it comes; when the client hangs up, stop at once and close the
    upstream (the same behaviour as Starlette's ``StreamingResponse``, for less work)."""
    headers = {**response.headers, **extra} if response.headers else extra
    headers.pop("cache-control", None)
    raw = _latin1(headers)
    raw.extend(_SSE_HEADERS)
    task = asyncio.current_task()
    assert task is not None
    finished = False

    def hung_up(watcher: asyncio.Future[Any]) -> None:
        if not finished and not watcher.cancelled():
            task.cancel()

    watcher = asyncio.ensure_future(receive())  # http.disconnect: the client went away
    watcher.add_done_callback(hung_up)
    events = _sse(response)
    try:
        await send({"type": "http.response.start", "status": response.status, "headers": raw})
        async for chunk in events:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        finished = True
        await send({"type": "http.response.body", "body": b""})
    except asyncio.CancelledError:
        if finished or not watcher.done():
            raise  # not the client hanging up: the server is stopping
        task.uncancel()
    finally:
        finished = True
        watcher.cancel()
        await events.aclose()
        await response.aclose()


_CORE_PATHS = (
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/models",
    "/health",
    "/ready",
    "/openapi.json",
)
_EXPOSED = [
    "x-portkey-trace-id",
    "x-portkey-provider",
    "x-portkey-cache-status",
    "x-portkey-last-used-option-index",
    "x-portkey-retry-attempt-count",
    "x-hookgate-trace-id",
    "x-hookgate-provider",
    "x-hookgate-cache-status",
    "x-hookgate-last-used-option-index",
    "x-hookgate-retry-attempt-count",
    "x-request-id",
    "retry-after",
]


def create_app(gateway: Gateway) -> Starlette:
    """The ASGI app serving ``gateway``; plugins' routes come first, so they may add paths."""
    api = API(gateway)
    registered = gateway.hooks.register_routes(gateway)
    document: list[bytes] = []

    async def openapi(request: Request) -> StarletteResponse:
        if not document:  # built on first use: every route is known by then
            from .openapi import openapi_document

            specs = gateway.endpoints.specs.values()
            document.append(orjson.dumps(openapi_document(specs, registered)))
        return StarletteResponse(document[0], media_type=JSON)

    routes: list[BaseRoute] = [
        *registered,
        *declared_routes(gateway, api),
        Route("/v1/chat/completions", api.chat_completions, methods=["POST"]),
        Route("/v1/completions", api.completions, methods=["POST"]),
        Route("/v1/embeddings", api.embeddings, methods=["POST"]),
        Route("/v1/models", api.models, methods=["GET"]),
        Route("/health", api.health, methods=["GET"]),
        Route("/ready", api.ready, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.aclose()

    return HookgateApp(
        api,
        routes,
        lifespan=lifespan,
        exception_handlers={404: _not_found, 405: _not_found, Exception: _internal_error},
    )


def app_from_env() -> Starlette:
    """ASGI factory for worker processes: the gateway from ``$HOOKGATE_CONFIG``."""
    return create_app(Gateway.from_toml(os.environ.get("HOOKGATE_CONFIG")))

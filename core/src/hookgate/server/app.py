"""The OpenAI-compatible HTTP API: a Starlette app around a :class:`~hookgate.Gateway`.

Every answer, success or error, is JSON in OpenAI's shape (or an SSE stream) and carries the
``x-portkey-*`` / ``x-hookgate-*`` headers. Plugins add routes with ``register_routes``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ..context import Endpoint, RequestContext
from ..errors import (
    BadRequestError,
    GatewayError,
    NotFoundError,
    PayloadTooLargeError,
)
from ..gateway import Gateway
from ..responses import StreamResponse
from .headers import check_gateway_key, request_options, response_headers

__all__ = ["app_from_env", "create_app", "error_response", "read_json"]

log = structlog.get_logger("hookgate.server")

JSON = "application/json"


def error_response(error: GatewayError, headers: dict[str, str] | None = None) -> Response:
    return Response(
        error.to_json(), status_code=error.http_status, media_type=JSON, headers=headers
    )


async def read_json(request: Request, limit: int) -> Any:
    """The request body as JSON; 413 past ``limit`` bytes, 400 when it is not JSON."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"the request body is larger than {limit} bytes")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"the request body is larger than {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body:
        raise BadRequestError("the request body is empty; send a JSON object", code="invalid_json")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(
            f"the request body is not valid JSON: {exc}", code="invalid_json"
        ) from exc


ErrorRenderer = Callable[[GatewayError, dict[str, str]], Response]


class API:
    """The route handlers, bound to one gateway."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.server = gateway.settings.server

    async def handle(
        self,
        request: Request,
        endpoint: Endpoint,
        body: Any = None,
        render_error: ErrorRenderer | None = None,
    ) -> Response:
        """Run one request of ``endpoint`` through the pipeline and answer it over HTTP."""
        ctx: RequestContext | None = None
        try:
            check_gateway_key(request.headers, self.server)
            if body is None:
                body = await read_json(request, self.server.max_body_bytes)
            config, options = request_options(request.headers, self.server)
            ctx = self.gateway.context(endpoint, body, config=config, options=options)
            response = await self.gateway.handle(ctx)
        except GatewayError as exc:
            headers = response_headers(ctx) if ctx is not None else _trace_header(request)
            if render_error is not None:
                return render_error(exc, headers)
            return error_response(exc, headers)
        headers = response_headers(ctx)
        if isinstance(response, StreamResponse):
            return StreamingResponse(
                _sse(response),
                status_code=response.status,
                media_type="text/event-stream",
                headers={**response.headers, **headers, "cache-control": "no-cache"},
            )
        return Response(
            response.body,
            status_code=response.status,
            media_type=JSON,
            headers={**response.headers, **headers},
        )

    async def chat_completions(self, request: Request) -> Response:
        return await self.handle(request, "chat.completions")

    async def completions(self, request: Request) -> Response:
        return await self.handle(request, "completions")

    async def embeddings(self, request: Request) -> Response:
        return await self.handle(request, "embeddings")

    async def models(self, request: Request) -> Response:
        return await self.handle(request, "models", body={})

    async def health(self, request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type=JSON)

    async def ready(self, request: Request) -> Response:
        body = {
            "status": "ready",
            "plugins": [p.name for p in self.gateway.plugins],
            "providers": sorted(self.gateway.providers),
        }
        return Response(orjson.dumps(body), media_type=JSON)


def endpoint_route(
    gateway: Gateway,
    path: str,
    endpoint: Endpoint,
    *,
    render_error: ErrorRenderer | None = None,
) -> Route:
    """A POST route that runs ``endpoint`` through the whole pipeline (retries, fallback,
    caches, logs) and answers with its JSON or SSE; for plugins' ``register_routes``
    (``/v1/messages``). ``render_error`` shapes errors for that API's clients."""
    api = API(gateway)

    async def handler(request: Request) -> Response:
        return await api.handle(request, endpoint, render_error=render_error)

    return Route(path, handler, methods=["POST"])


def _trace_header(request: Request) -> dict[str, str]:
    trace = request.headers.get("x-portkey-trace-id", "")
    return {"x-portkey-trace-id": trace, "x-hookgate-trace-id": trace}


async def _sse(response: StreamResponse) -> AsyncIterator[bytes]:
    try:
        async for event in response.events:
            yield event.encode()
    except GatewayError as exc:
        # Headers are gone already: tell the client in the stream, then end it cleanly.
        if response.done_marker:
            yield b"data: " + exc.to_json() + b"\n\n"
        else:
            yield b"event: error\ndata: " + exc.to_json() + b"\n\n"
        return
    if response.done_marker:
        yield b"data: [DONE]\n\n"


async def _not_found(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException) and exc.status_code == 405:
        error = GatewayError(
            f"{request.method} is not allowed on {request.url.path}",
            status=405,
            code="method_not_allowed",
        )
        error.type = "invalid_request_error"
        return error_response(error)
    return error_response(NotFoundError(f"no route for {request.method} {request.url.path}"))


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled_error", path=request.url.path, exc_info=exc)
    return error_response(GatewayError("internal error", code="internal_error"))


def create_app(gateway: Gateway) -> Starlette:
    """The ASGI app serving ``gateway``; plugins' routes come first, so they may add paths."""
    api = API(gateway)
    routes = [
        *gateway.hooks.register_routes(gateway),
        Route("/v1/chat/completions", api.chat_completions, methods=["POST"]),
        Route("/v1/completions", api.completions, methods=["POST"]),
        Route("/v1/embeddings", api.embeddings, methods=["POST"]),
        Route("/v1/models", api.models, methods=["GET"]),
        Route("/health", api.health, methods=["GET"]),
        Route("/ready", api.ready, methods=["GET"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.aclose()

    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={404: _not_found, 405: _not_found, Exception: _internal_error},
    )


def app_from_env() -> Starlette:
    """ASGI factory for worker processes: the gateway from ``$HOOKGATE_CONFIG``."""
    return create_app(Gateway.from_toml(os.environ.get("HOOKGATE_CONFIG")))

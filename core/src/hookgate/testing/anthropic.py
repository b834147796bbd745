"""A fake Anthropic upstream that speaks the Messages API's wire protocol.

Written from Anthropic's public API reference: ``POST /v1/messages`` (JSON, or SSE with
``message_start``, ``content_block_start``/``ping``/``content_block_delta``/
``content_block_stop`` per block, ``message_delta``, ``message_stop``), ``GET /v1/models``,
``x-api-key`` (or, as newer SDKs send it, ``Authorization: Bearer``) and
``anthropic-version`` headers, and the ``{"type": "error", "error": {...}}``
error body with its statuses (``overloaded_error`` is 529).

Every request body is checked against the ``anthropic`` SDK's own request type
(``MessageCreateParams``) and against the fields the API accepts; a request that fails is
answered with Anthropic's 400 and recorded with ``Received.invalid`` set.

Each request takes the next :class:`Reply` from the script (``fake.script(...)``), or answers
normally: ``fake: <last user text>``. A reply's ``message`` is the Message to answer with (its
stream is derived from it the way Anthropic streams); ``events`` replaces the stream outright.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, get_type_hints

import orjson
from aiohttp import web
from pydantic import TypeAdapter, ValidationError

from .servers import FakeServer, ServerThread

__all__ = [
    "FakeAnthropic",
    "Received",
    "Reply",
    "anthropic_error",
    "check_request",
    "echo_message",
    "message",
    "stream_events",
]

# Fields of POST /v1/messages: the SDK's request type, plus the sampling parameters the API
# reference documents (this SDK release no longer lists temperature, top_p and top_k).
_SAMPLING = {"temperature", "top_p", "top_k"}


@dataclass
class Reply:
    """What the fake does with one request."""

    status: int = 200
    message: dict[str, Any] | None = None
    """The Message to answer with (and to stream); None: the normal echo answer."""
    events: list[tuple[str, dict[str, Any]]] | None = None
    """For a stream: exactly these ``(event, data)`` pairs instead of the derived ones."""
    error_type: str | None = None
    """For a 4xx/5xx: Anthropic's error type (derived from the status when None)."""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False
    """Close the connection without answering."""
    drop_after: int | None = None
    """For a stream: close the connection after this many events."""
    stream_delay: float = 0.0


ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def anthropic_error(status: int, kind: str | None = None, message: str | None = None) -> dict:
    kind = kind or ERROR_TYPES.get(status, "api_error")
    return {
        "type": "error",
        "error": {"type": kind, "message": message or f"fake {kind}"},
        "request_id": "req_fake_error",
    }


@dataclass
class Received:
    path: str
    method: str
    headers: dict[str, str]
    json: Any
    at: float
    invalid: str | None = None
    """Why the body failed the SDK's request type, if it did."""
    outcome: str = "answered"


def _adapter() -> tuple[TypeAdapter[Any], frozenset[str]]:
    from anthropic.types import message_create_params

    params: Any = message_create_params.MessageCreateParams
    fields = set(get_type_hints(message_create_params.MessageCreateParamsStreaming)) | _SAMPLING
    return TypeAdapter(params), frozenset(fields)


class _Invalid(Exception):
    pass


def _describe(exc: ValidationError, path: str) -> str:
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    return f"{path}{'.' if path and loc else ''}{loc}: {first['msg']}"


def _consume(value: Any, path: str = "") -> Any:
    """Pydantic validates ``Iterable[...]`` fields lazily: walk them so every item is checked."""
    if isinstance(value, dict):
        return {k: _consume(v, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_consume(v, f"{path}.{i}") for i, v in enumerate(value)]
    if isinstance(value, str | bytes | int | float | bool) or value is None:
        return value
    if isinstance(value, Iterator) or type(value).__name__ == "ValidatorIterator":
        items: list[Any] = []
        try:
            for item in value:
                items.append(_consume(item, f"{path}.{len(items)}"))
        except ValidationError as exc:
            raise _Invalid(_describe(exc, f"{path}.{len(items)}")) from exc
        return items
    return value


def check_request(body: Any) -> str | None:
    """None when ``body`` is a valid Messages request, else what is wrong with it."""
    adapter, fields = _ADAPTER
    if not isinstance(body, dict):
        return "body must be a JSON object"
    unknown = sorted(set(body) - fields)
    if unknown:
        return f"{unknown[0]}: Extra inputs are not permitted"
    try:
        _consume(adapter.validate_python(body))
    except ValidationError as exc:
        return _describe(exc, "")
    except _Invalid as exc:
        return str(exc)
    return None


_ADAPTER = _adapter()


class FakeAnthropic(FakeServer):
    """The fake; start it with :meth:`start` in a :class:`ServerThread`."""

    def __init__(self, thread: ServerThread) -> None:
        super().__init__(thread)
        self.requests: list[Received] = []
        self._script: deque[Reply] = deque()
        self._ids = itertools.count(1)

    @property
    def url(self) -> str:
        """The base URL a provider or custom_host points at (with ``/v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *replies: Reply | int) -> None:
        """Queue replies; a bare int is that status with Anthropic's error body."""
        for reply in replies:
            self._script.append(Reply(status=reply) if isinstance(reply, int) else reply)

    def calls(self, path: str = "/v1/messages") -> list[Received]:
        return [r for r in self.requests if r.path == path]

    def start(self) -> FakeAnthropic:
        app = web.Application()
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_get("/v1/models", self._models)
        self.serve(app)
        return self

    # ---- handlers -----------------------------------------------------------------------

    def _headers(self, reply: Reply) -> dict[str, str]:
        return {"request-id": f"req_fake_{next(self._ids)}", **reply.headers}

    def _error(
        self, status: int, reply: Reply, kind: str | None = None, message: str | None = None
    ):
        return web.json_response(
            anthropic_error(status, kind, message),
            status=status,
            headers=self._headers(reply),
            dumps=_dumps,
        )

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            body = None
        received = Received(
            request.path,
            request.method,
            {k.lower(): v for k, v in request.headers.items()},
            body,
            time.monotonic(),
        )
        self.requests.append(received)
        reply = self._script.popleft() if self._script else Reply()
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.drop:
            received.outcome = "dropped"
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        bearer = received.headers.get("authorization", "").startswith("Bearer ")
        if "x-api-key" not in received.headers and not bearer:
            received.outcome = "failed"
            return self._error(401, reply, message="x-api-key header is required")
        if "anthropic-version" not in received.headers:
            received.outcome = "failed"
            return self._error(400, reply, message="anthropic-version: header is required")
        received.invalid = check_request(body)
        if received.invalid is not None:
            received.outcome = "failed"
            return self._error(400, reply, message=received.invalid)
        if reply.status >= 400:
            received.outcome = "failed"
            return self._error(reply.status, reply, reply.error_type)
        message = reply.message or echo_message(body)
        if body.get("stream"):
            events = reply.events if reply.events is not None else list(stream_events(message))
            return await self._stream(request, received, reply, events)
        return web.json_response(message, headers=self._headers(reply), dumps=_dumps)

    async def _stream(
        self,
        request: web.Request,
        received: Received,
        reply: Reply,
        events: list[tuple[str, dict[str, Any]]],
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            status=200,
            headers={**self._headers(reply), "content-type": "text/event-stream"},
        )
        await response.prepare(request)
        try:
            for count, (name, data) in enumerate(events):
                if reply.drop_after is not None and count >= reply.drop_after:
                    received.outcome = "dropped"
                    assert request.transport is not None
                    request.transport.close()
                    return response
                if count and reply.stream_delay:
                    await asyncio.sleep(reply.stream_delay)
                await response.write(
                    b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
                )
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            received.outcome = "disconnected"
            raise
        return response

    async def _models(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(
            Received(
                request.path,
                request.method,
                {k.lower(): v for k, v in request.headers.items()},
                None,
                time.monotonic(),
            )
        )
        models = [
            {
                "type": "model",
                "id": "claude-sonnet-5",
                "display_name": "Claude Sonnet 5",
                "created_at": "2025-09-29T00:00:00Z",
            }
        ]
        return web.json_response(
            {
                "data": models,
                "has_more": False,
                "first_id": models[0]["id"],
                "last_id": models[0]["id"],
            },
            headers={"request-id": "req_fake_models"},
        )


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _words(text: str) -> int:
    return max(1, len(text.split()))


def _last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        return " ".join(b.get("text", "") for b in content if b.get("type") == "text")
    return ""


def message(
    content: list[dict[str, Any]],
    *,
    stop_reason: str = "end_turn",
    usage: dict[str, Any] | None = None,
    model: str = "claude-sonnet-5",
    stop_sequence: str | None = None,
) -> dict[str, Any]:
    """An Anthropic Message, as the API answers it."""
    return {
        "id": "msg_fake_01",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage or {"input_tokens": 10, "output_tokens": 5},
    }


def echo_message(body: dict[str, Any]) -> dict[str, Any]:
    text = f"fake: {_last_user_text(body)}"
    return message(
        [{"type": "text", "text": text}],
        model=body.get("model", "claude-sonnet-5"),
        usage={
            "input_tokens": sum(_words(str(m.get("content"))) for m in body.get("messages", [])),
            "output_tokens": _words(text),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    )


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def stream_events(msg: dict[str, Any]) -> Iterable[tuple[str, dict[str, Any]]]:
    """The event sequence Anthropic sends for ``msg``."""
    usage = dict(msg["usage"])
    start_usage = {**usage, "output_tokens": 1}
    yield (
        "message_start",
        {
            "type": "message_start",
            "message": {
                **msg,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": start_usage,
            },
        },
    )
    for index, block in enumerate(msg["content"]):
        start: dict[str, Any]
        if block["type"] == "text":
            start = {"type": "text", "text": ""}
            deltas = [
                {"type": "text_delta", "text": piece} for piece in _split_words(block["text"])
            ]
        elif block["type"] == "tool_use":
            start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            arguments = orjson.dumps(block["input"]).decode() if block["input"] else ""
            deltas = [
                {"type": "input_json_delta", "partial_json": piece}
                for piece in _pieces(arguments, 7)
            ]
        else:
            raise ValueError(f"the fake cannot stream {block['type']} blocks")
        yield (
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": start},
        )
        if index == 0:
            yield "ping", {"type": "ping"}
        for delta in deltas:
            yield (
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": msg["stop_reason"], "stop_sequence": msg["stop_sequence"]},
            "usage": {"output_tokens": usage["output_tokens"]},
        },
    )
    yield "message_stop", {"type": "message_stop"}


def _split_words(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)]

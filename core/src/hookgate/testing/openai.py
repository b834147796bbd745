"""A fake OpenAI upstream that speaks the real wire protocol and can be told to misbehave.

It serves ``/v1/chat/completions`` (JSON and SSE), ``/v1/completions``, ``/v1/embeddings`` and
``/v1/models`` with OpenAI's bodies, headers and error shapes. Each request takes the next
:class:`Reply` from the script (``fake.script(...)``), or answers normally when the script is
empty. Everything it received is in ``fake.requests``.

Built on aiohttp.web rather than an ASGI app because a fake must be able to do what ASGI
cannot: drop the connection before answering, or in the middle of a stream.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from .servers import FakeServer, ServerThread

__all__ = [
    "FakeOpenAI",
    "Received",
    "Reply",
    "chat_chunks",
    "chat_completion",
    "embeddings",
    "openai_error",
    "text_completion",
]


@dataclass
class Reply:
    """What the fake does with one request."""

    status: int = 200
    json: Any = None
    """Body to send; None means the normal answer (or OpenAI's error body for a 4xx/5xx)."""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    """Seconds to wait before answering (a timeout test sets it above the gateway's limit)."""
    drop: bool = False
    """Close the connection without answering."""
    raw: bytes | None = None
    """Send these bytes as a 200 JSON body instead (garbage tests)."""
    drop_after: int | None = None
    """For a stream: close the connection after this many events."""
    stream_delay: float = 0.0
    """For a stream: seconds between events."""


def openai_error(status: int, message: str | None = None) -> dict[str, Any]:
    """OpenAI's error body for ``status``."""
    kind = {
        400: ("invalid_request_error", None),
        401: ("invalid_request_error", "invalid_api_key"),
        404: ("invalid_request_error", "model_not_found"),
        429: ("requests", "rate_limit_exceeded"),
    }.get(status, ("server_error", None))
    return {
        "error": {
            "message": message or f"fake upstream error {status}",
            "type": kind[0],
            "param": None,
            "code": kind[1],
        }
    }


@dataclass
class Received:
    path: str
    method: str
    headers: dict[str, str]
    json: Any
    at: float
    outcome: str = "answered"
    """answered, failed, dropped, or disconnected (the client went away mid-stream)."""


class FakeOpenAI(FakeServer):
    """The fake; start it with :meth:`start` in a :class:`ServerThread`."""

    def __init__(self, thread: ServerThread) -> None:
        super().__init__(thread)
        self.requests: list[Received] = []
        self._script: deque[Reply] = deque()
        self._ids = itertools.count(1)
        self.default = Reply()

    @property
    def url(self) -> str:
        """The base URL a provider or custom_host points at (with ``/v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *replies: Reply | int) -> None:
        """Queue replies; a bare int is that status with OpenAI's error body."""
        for reply in replies:
            self._script.append(Reply(status=reply) if isinstance(reply, int) else reply)

    def calls(self, path: str = "/v1/chat/completions") -> list[Received]:
        return [r for r in self.requests if r.path == path]

    def reset(self) -> None:
        self.requests.clear()
        self._script.clear()

    # ---- life cycle ---------------------------------------------------------------------

    def start(self) -> FakeOpenAI:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_get("/v1/models", self._models)
        self.serve(app)
        return self

    # ---- handlers -----------------------------------------------------------------------

    async def _begin(self, request: web.Request) -> tuple[Received, Reply]:
        try:
            body = await request.json() if request.can_read_body else None
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
        reply = self._script.popleft() if self._script else self.default
        if reply.delay:
            await asyncio.sleep(reply.delay)
        return received, reply

    def _common_headers(self, reply: Reply) -> dict[str, str]:
        return {
            "x-request-id": f"req_fake_{next(self._ids)}",
            "openai-processing-ms": "1",
            **reply.headers,
        }

    async def _answer(self, request: web.Request, normal: Any) -> web.StreamResponse:
        received, reply = await self._begin(request)
        if reply.drop:
            received.outcome = "dropped"
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        headers = self._common_headers(reply)
        if reply.raw is not None:
            return web.Response(
                body=reply.raw,
                status=reply.status,
                headers=headers,
                content_type="application/json",
            )
        if reply.status >= 400:
            received.outcome = "failed"
            body = reply.json if reply.json is not None else openai_error(reply.status)
            return web.json_response(body, status=reply.status, headers=headers, dumps=_dumps)
        body = reply.json if reply.json is not None else normal(received.json or {})
        if isinstance(body, dict) and (received.json or {}).get("stream") and "choices" in body:
            return await self._stream(request, received, reply, headers)
        return web.json_response(body, status=reply.status, headers=headers, dumps=_dumps)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(request, chat_completion)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(request, text_completion)

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(request, embeddings)

    async def _models(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(
            request,
            lambda _: {
                "object": "list",
                "data": [
                    {"id": "gpt-4o-mini", "object": "model", "created": 0, "owned_by": "openai"}
                ],
            },
        )

    async def _stream(
        self, request: web.Request, received: Received, reply: Reply, headers: dict[str, str]
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            status=200, headers={**headers, "content-type": "text/event-stream"}
        )
        await response.prepare(request)
        events = [orjson.dumps(chunk) for chunk in chat_chunks(received.json)] + [b"[DONE]"]
        try:
            for count, data in enumerate(events):
                if reply.drop_after is not None and count >= reply.drop_after:
                    received.outcome = "dropped"
                    assert request.transport is not None
                    request.transport.close()
                    return response
                if count and reply.stream_delay:
                    await asyncio.sleep(reply.stream_delay)
                await response.write(b"data: " + data + b"\n\n")
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            received.outcome = "disconnected"
            raise
        return response


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _last_user(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else str(content)
    return ""


def _words(text: str) -> int:
    return max(1, len(text.split()))


def chat_completion(body: dict[str, Any]) -> dict[str, Any]:
    content = f"fake: {_last_user(body)}"
    prompt = sum(_words(str(m.get("content", ""))) for m in body.get("messages") or [])
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1700000000,
        "model": body.get("model", "gpt-4o-mini"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": _words(content),
            "total_tokens": prompt + _words(content),
        },
        "system_fingerprint": "fp_fake",
    }


def chat_chunks(body: dict[str, Any]) -> Iterable[dict[str, Any]]:
    content = f"fake: {_last_user(body)}"
    base = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": body.get("model", "gpt-4o-mini"),
        "system_fingerprint": "fp_fake",
    }
    words = content.split(" ")
    yield {
        **base,
        "choices": [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": ""},
                "logprobs": None,
                "finish_reason": None,
            }
        ],
    }
    for i, word in enumerate(words):
        yield {
            **base,
            "choices": [
                {
                    "index": 0,
                    "delta": {"content": word if i == 0 else " " + word},
                    "logprobs": None,
                    "finish_reason": None,
                }
            ],
        }
    yield {
        **base,
        "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}],
    }
    if (body.get("stream_options") or {}).get("include_usage"):
        prompt = sum(_words(str(m.get("content", ""))) for m in body.get("messages") or [])
        yield {
            **base,
            "choices": [],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": len(words),
                "total_tokens": prompt + len(words),
            },
        }


def text_completion(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "cmpl-fake",
        "object": "text_completion",
        "created": 1700000000,
        "model": body.get("model", "gpt-3.5-turbo-instruct"),
        "choices": [
            {
                "index": 0,
                "text": f"fake: {body.get('prompt')}",
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
    }


def embeddings(body: dict[str, Any]) -> dict[str, Any]:
    inputs = body.get("input")
    texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": [0.1 * (i + 1), 0.2, 0.3]}
            for i, _ in enumerate(texts)
        ],
        "model": body.get("model", "text-embedding-3-small"),
        "usage": {"prompt_tokens": len(texts), "total_tokens": len(texts)},
    }

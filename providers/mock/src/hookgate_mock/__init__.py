"""hookgate-mock: an offline, deterministic provider for demos and tests.

It answers chat completions (JSON and streamed), completions, embeddings and the model list
the way OpenAI does, without a network or a key. It can be told to be slow or to fail, in
plugins.toml (the defaults) or per request through a config target's ``mock`` field::

    {"provider": "mock", "mock": {"fail_status": 503, "fail_times": 2, "retry_after": 0.1}}

``fail_times`` counts the calls to that target within one request, so "fail twice, then
answer" is deterministic however many requests run at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import struct
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from hookgate import (
    ConfigError,
    ProviderError,
    RequestContext,
    Response,
    SSEEvent,
    StreamResponse,
    Target,
    hookimpl,
)
from hookgate.errors import UpstreamConnectionError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = ["Behaviour", "Plugin"]


class Behaviour(BaseModel):
    """How the mock answers. Every field can be set in plugins.toml or per target."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reply: str | None = None
    """A fixed answer; by default the mock echoes the last user message."""
    latency_ms: Annotated[float, Field(ge=0)] = 0.0
    """Wait before answering (before the first event, for a stream)."""
    chunk_delay_ms: Annotated[float, Field(ge=0)] = 0.0
    """Wait between streamed events."""
    fail_status: Annotated[int, Field(ge=400, le=599)] | None = None
    """Answer with this status instead ..."""
    fail_times: Annotated[int, Field(ge=0)] | None = None
    """... for this many calls to the target per request (None: every call)."""
    retry_after: Annotated[float, Field(ge=0)] | None = None
    """Send ``Retry-After`` (seconds) with a failure."""
    drop_stream_after: Annotated[int, Field(ge=0)] | None = None
    """Cut a stream after this many events, as a dropped connection would."""
    embedding_dimensions: Annotated[int, Field(ge=1, le=4096)] = 8


class Plugin:
    """The ``mock`` provider."""

    providers = ("mock",)
    serves = {"mock": ("chat.completions", "completions", "embeddings", "models")}
    Settings = Behaviour

    def __init__(self, settings: Behaviour | None = None) -> None:
        self.settings = settings or Behaviour()

    @hookimpl
    def call_provider(self, ctx: RequestContext, target: Target) -> Any:
        if target.provider != "mock":
            return None
        return self._answer(ctx, target)

    def behaviour(self, target: Target) -> Behaviour:
        override = target.options.get("mock")
        if not override:
            return self.settings
        if not isinstance(override, dict):
            raise ConfigError(f"{target.path}.mock must be an object")
        try:
            return self.settings.model_copy(
                update=Behaviour.model_validate(override).model_dump(exclude_unset=True)
            )
        except ValidationError as exc:
            raise ConfigError(f"{target.path}.mock: {exc.errors()[0]['msg']}") from exc

    async def _answer(self, ctx: RequestContext, target: Target) -> Response | StreamResponse:
        behaviour = self.behaviour(target)
        if behaviour.latency_ms:
            await asyncio.sleep(behaviour.latency_ms / 1000)
        if behaviour.fail_status is not None:
            calls = sum(1 for attempt in ctx.attempts if attempt.path == target.path)
            if behaviour.fail_times is None or calls <= behaviour.fail_times:
                raise _failure(behaviour)
        body = ctx.request_for(target)
        if ctx.endpoint == "chat.completions":
            if body.get("stream"):
                return StreamResponse(events=_stream(body, behaviour))
            return Response.from_json(_completion(body, behaviour), headers=_HEADERS)
        if ctx.endpoint == "completions":
            return Response.from_json(_text_completion(body, behaviour), headers=_HEADERS)
        if ctx.endpoint == "embeddings":
            return Response.from_json(_embeddings(body, behaviour), headers=_HEADERS)
        if ctx.endpoint == "models":
            return Response.from_json(
                {
                    "object": "list",
                    "data": [{"id": "mock-1", "object": "model", "owned_by": "hookgate"}],
                }
            )
        raise ProviderError(
            f"the mock provider does not serve {ctx.endpoint}",
            provider="mock",
            status=404,
            body={
                "error": {
                    "message": f"unknown endpoint {ctx.endpoint}",
                    "type": "invalid_request_error",
                }
            },
        )


_HEADERS = {"x-request-id": "req-mock"}


def _failure(behaviour: Behaviour) -> ProviderError:
    status = behaviour.fail_status or 500
    headers = {}
    if behaviour.retry_after is not None:
        headers["retry-after"] = f"{behaviour.retry_after:g}"
    error_type = (
        "rate_limit_error"
        if status == 429
        else "server_error"
        if status >= 500
        else "invalid_request_error"
    )
    return ProviderError(
        f"mock failure {status}",
        provider="mock",
        status=status,
        body={
            "error": {
                "message": f"mock failure {status}",
                "type": error_type,
                "param": None,
                "code": None,
            }
        },
        headers=headers,
        retry_after=behaviour.retry_after,
    )


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def _reply(body: dict[str, Any], behaviour: Behaviour) -> str:
    if behaviour.reply is not None:
        return behaviour.reply
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            return f"[mock] you said: {_text(message.get('content'))}"
    return "[mock] hello"


def _tokens(text: str) -> int:
    return max(1, len(text.split()))


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


_ids = itertools.count(1)


def _id(prefix: str, body: dict[str, Any]) -> str:
    return f"{prefix}-mock-{next(_ids)}"


def _completion(body: dict[str, Any], behaviour: Behaviour) -> dict[str, Any]:
    reply = _reply(body, behaviour)
    prompt = sum(_tokens(_text(m.get("content"))) for m in body.get("messages") or [])
    return {
        "id": _id("chatcmpl", body),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "mock-1"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": _usage(prompt, _tokens(reply)),
        "system_fingerprint": "fp_mock",
    }


async def _stream(body: dict[str, Any], behaviour: Behaviour) -> AsyncIterator[SSEEvent]:
    reply = _reply(body, behaviour)
    words = reply.split(" ")
    base = {
        "id": _id("chatcmpl", body),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model", "mock-1"),
        "system_fingerprint": "fp_mock",
    }
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    deltas += [{"content": word if i == 0 else " " + word} for i, word in enumerate(words)]
    events = [
        {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}]}
        for delta in deltas
    ]
    events.append(
        {**base, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]}
    )
    options = body.get("stream_options") or {}
    if options.get("include_usage"):
        prompt = sum(_tokens(_text(m.get("content"))) for m in body.get("messages") or [])
        events.append({**base, "choices": [], "usage": _usage(prompt, _tokens(reply))})
    for count, event in enumerate(events):
        if behaviour.drop_stream_after is not None and count >= behaviour.drop_stream_after:
            raise UpstreamConnectionError(
                "the upstream closed the connection before answering in full", provider="mock"
            )
        if count and behaviour.chunk_delay_ms:
            await asyncio.sleep(behaviour.chunk_delay_ms / 1000)
        yield SSEEvent(event)


def _text_completion(body: dict[str, Any], behaviour: Behaviour) -> dict[str, Any]:
    prompt = (
        _text(body.get("prompt")) if not isinstance(body.get("prompt"), str) else body["prompt"]
    )
    reply = behaviour.reply if behaviour.reply is not None else f"[mock] {prompt}"
    return {
        "id": _id("cmpl", body),
        "object": "text_completion",
        "created": int(time.time()),
        "model": body.get("model", "mock-1"),
        "choices": [{"index": 0, "text": reply, "logprobs": None, "finish_reason": "stop"}],
        "usage": _usage(_tokens(prompt), _tokens(reply)),
    }


def _vector(text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector derived from the text."""
    raw = hashlib.shake_256(text.encode()).digest(4 * dimensions)
    values = [v / 2**32 - 0.5 for v in struct.unpack(f"<{dimensions}I", raw)]
    norm = sum(v * v for v in values) ** 0.5 or 1.0
    return [v / norm for v in values]


MAX_DIMENSIONS = 4096
MAX_FLOATS = 1_000_000
"""The most numbers one mock embeddings answer holds (inputs x dimensions): a bound on the
memory one request can make the mock allocate."""


def _bad_request(message: str, param: str) -> ProviderError:
    return ProviderError(
        message,
        provider="mock",
        status=400,
        body={
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": param,
                "code": None,
            }
        },
    )


def _embeddings(body: dict[str, Any], behaviour: Behaviour) -> dict[str, Any]:
    inputs = body.get("input")
    texts = [inputs] if isinstance(inputs, str) else [str(i) for i in inputs or []]
    dimensions = body.get("dimensions")
    if dimensions is None:
        dimensions = behaviour.embedding_dimensions
    if type(dimensions) is not int or not 1 <= dimensions <= MAX_DIMENSIONS:
        raise _bad_request(
            f"dimensions must be an integer from 1 to {MAX_DIMENSIONS} for the mock", "dimensions"
        )
    if len(texts) * dimensions > MAX_FLOATS:
        raise _bad_request(
            f"the mock answers at most {MAX_FLOATS} numbers per request "
            f"({len(texts)} inputs x {dimensions} dimensions asked)",
            "input",
        )
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": _vector(text, dimensions)}
            for i, text in enumerate(texts)
        ],
        "model": body.get("model", "mock-embed"),
        "usage": {
            "prompt_tokens": sum(_tokens(t) for t in texts),
            "total_tokens": sum(_tokens(t) for t in texts),
        },
    }

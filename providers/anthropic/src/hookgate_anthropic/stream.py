"""Anthropic's event stream, translated to OpenAI chunks or relayed as it is.

Anthropic streams ``message_start``, then per content block ``content_block_start``,
``content_block_delta``\\* (``text_delta``, ``input_json_delta``, ...) and
``content_block_stop``, then ``message_delta`` (stop reason, cumulative usage) and
``message_stop``; ``ping`` may come anywhere and ``error`` ends a failed stream.

As OpenAI chunks: a first chunk with the role; text deltas as ``content``; each ``tool_use``
block as one tool call (``index`` counts tool calls, not blocks) whose first delta carries
``id``, ``type`` and ``name`` and whose later deltas carry argument fragments; a last chunk
with the ``finish_reason``; then, when the request asked for ``stream_options.include_usage``,
a chunk with ``usage`` and no choices. A stream that ends without ``message_stop`` was cut.

On both routes the opening events (``message_start``, ``ping``; the role chunk) are held back
until the first content arrives, so an ``error`` right after ``message_start`` still counts as a
failure before the first byte, which retry and fallback handle.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from hookgate import ProviderError, SSEEvent
from hookgate.errors import UpstreamConnectionError

from .translate import (
    STATUS_OF_ERROR_TYPE,
    error_type_for_status,
    finish_reason,
    openai_error_body,
    openai_usage,
)

__all__ = ["NativeStreamError", "anthropic_error_body", "relay", "stream_error", "to_chunks"]

PROVIDER = "anthropic"


def anthropic_error_body(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


class NativeStreamError(ProviderError):
    """A failure in the middle of a ``/v1/messages`` stream, rendered the way Anthropic does
    (``event: error`` with ``{"type": "error", "error": {...}}``), for Anthropic's clients."""

    def to_dict(self) -> dict[str, Any]:
        if isinstance(self.body, dict) and self.body.get("type") == "error":
            return self.body
        return anthropic_error_body(error_type_for_status(self.http_status), self.message)


def stream_error(data: Any) -> ProviderError:
    """The :class:`ProviderError` for an ``error`` event (OpenAI-shaped body)."""
    error = data.get("error") if isinstance(data, dict) else None
    kind = error.get("type") if isinstance(error, dict) else None
    status = STATUS_OF_ERROR_TYPE.get(kind or "", 500)
    body = openai_error_body(data, status)
    return ProviderError(body["error"]["message"], provider=PROVIDER, status=status, body=body)


def _cut() -> UpstreamConnectionError:
    return UpstreamConnectionError(
        "the upstream closed the stream before it was complete", provider=PROVIDER
    )


async def _close(events: AsyncIterator[SSEEvent]) -> None:
    close = getattr(events, "aclose", None)
    if close is not None:
        await close()


async def _after_preamble(
    events: AsyncIterator[SSEEvent], preamble: Callable[[SSEEvent], bool]
) -> AsyncIterator[SSEEvent]:
    """``events``, but the leading ones ``preamble`` matches are held back until something
    else arrives. Anthropic may send ``message_start`` and then fail (``overloaded_error``)
    before any content: held back, that failure still comes before the first event the
    pipeline sees, so retry and fallback can act on it instead of the client."""
    held: list[SSEEvent] | None = []
    try:
        async for event in events:
            if held is not None:
                if preamble(event):
                    held.append(event)
                    continue
                for early in held:
                    yield early
                held = None
            yield event
        for early in held or ():
            yield early
    finally:
        await _close(events)


def _is_role_chunk(event: SSEEvent) -> bool:
    choices = event.data.get("choices")
    return bool(choices) and "role" in choices[0]["delta"]


def to_chunks(events: AsyncIterator[SSEEvent], *, include_usage: bool) -> AsyncIterator[SSEEvent]:
    """Anthropic's events as OpenAI ``chat.completion.chunk`` events."""
    return _after_preamble(_translate(events, include_usage=include_usage), _is_role_chunk)


async def _translate(
    events: AsyncIterator[SSEEvent], *, include_usage: bool
) -> AsyncIterator[SSEEvent]:
    base: dict[str, Any] = {"object": "chat.completion.chunk", "created": int(time.time())}
    usage: dict[str, Any] = {}
    tools: dict[int, int] = {}  # content block index -> tool call index
    sent_arguments: set[int] = set()
    stop_reason: str | None = None

    def chunk(delta: dict[str, Any], reason: str | None = None) -> SSEEvent:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
        return SSEEvent({**base, "choices": [choice]})

    try:
        async for event in events:
            data = event.data if isinstance(event.data, dict) else {}
            kind = data.get("type") or event.event
            if kind == "message_start":
                message = data.get("message") or {}
                base["id"] = message.get("id")
                base["model"] = message.get("model")
                usage.update(message.get("usage") or {})
                yield chunk({"role": "assistant", "content": ""})
            elif kind == "content_block_start":
                block = data.get("content_block") or {}
                if block.get("type") == "text" and block.get("text"):
                    yield chunk({"content": block["text"]})
                elif block.get("type") == "tool_use":
                    index = tools[data.get("index", 0)] = len(tools)
                    arguments = orjson.dumps(block["input"]).decode() if block.get("input") else ""
                    if arguments:
                        sent_arguments.add(index)
                    call = {
                        "index": index,
                        "id": block.get("id"),
                        "type": "function",
                        "function": {"name": block.get("name"), "arguments": arguments},
                    }
                    yield chunk({"tool_calls": [call]})
            elif kind == "content_block_delta":
                delta = data.get("delta") or {}
                if delta.get("type") == "text_delta" and delta.get("text"):
                    yield chunk({"content": delta["text"]})
                elif delta.get("type") == "input_json_delta" and delta.get("partial_json"):
                    call_index = tools.get(data.get("index", 0))
                    if call_index is not None:
                        sent_arguments.add(call_index)
                        arguments = delta["partial_json"]
                        call = {"index": call_index, "function": {"arguments": arguments}}
                        yield chunk({"tool_calls": [call]})
            elif kind == "content_block_stop":
                stopped = tools.get(data.get("index", 0))
                if stopped is not None and stopped not in sent_arguments:
                    # A call without arguments: "{}", so clients can json.loads() it.
                    sent_arguments.add(stopped)
                    empty = {"index": stopped, "function": {"arguments": "{}"}}
                    yield chunk({"tool_calls": [empty]})
            elif kind == "message_delta":
                # message_delta's usage is cumulative: it replaces what message_start said.
                usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
                stop_reason = (data.get("delta") or {}).get("stop_reason") or stop_reason
                yield chunk({}, finish_reason(stop_reason) or "stop")
            elif kind == "message_stop":
                if include_usage:
                    yield SSEEvent({**base, "choices": [], "usage": openai_usage(usage)})
                return
            elif kind == "error":
                raise stream_error(data)
            # ping and event types added later carry nothing an OpenAI client could use
        raise _cut()
    finally:
        await _close(events)


def relay(events: AsyncIterator[SSEEvent]) -> AsyncIterator[SSEEvent]:
    """Anthropic's events unchanged, for ``/v1/messages``; failures in Anthropic's shape."""
    return _after_preamble(_relay(events), lambda e: e.event in ("message_start", "ping"))


async def _relay(events: AsyncIterator[SSEEvent]) -> AsyncIterator[SSEEvent]:
    try:
        async for event in events:
            data = event.data
            if event.event == "error" or (isinstance(data, dict) and data.get("type") == "error"):
                error = data.get("error") if isinstance(data, dict) else None
                kind = error.get("type") if isinstance(error, dict) else None
                status = STATUS_OF_ERROR_TYPE.get(kind or "", 500)
                message = error.get("message") if isinstance(error, dict) else None
                raise NativeStreamError(
                    message or "the upstream reported an error",
                    provider=PROVIDER,
                    status=status,
                    body=data,
                )
            yield event
            if event.event == "message_stop":
                return
        raise _cut()
    except NativeStreamError:
        raise
    except ProviderError as exc:
        native = NativeStreamError(
            exc.message,
            provider=PROVIDER,
            status=exc.upstream_status,
            body=exc.body,
            headers=exc.headers,
            retry_after=exc.retry_after,
            code=exc.code,
        )
        native.status = exc.status  # 502/504 when no answer came
        native.type = exc.type
        raise native from exc
    finally:
        await _close(events)

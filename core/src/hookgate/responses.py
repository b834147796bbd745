"""What ``call_provider`` and ``cache_lookup`` return.

A :class:`Response` keeps the upstream's JSON body as bytes, so the server forwards it without
re-encoding; ``json()`` parses it once, on demand. A :class:`StreamResponse` has answered with
its status and headers and yields :class:`SSEEvent` objects, in the wire format of the endpoint
(OpenAI chunks for ``/v1/chat/completions``, a declared endpoint's own events for its path).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = ["RawChunk", "Response", "SSEEvent", "StreamResponse"]

_NOTHING: Any = object()


@dataclass(slots=True)
class Response:
    """A complete JSON answer."""

    body: bytes
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    """Upstream headers worth passing to the client (``x-request-id``, rate-limit headers)."""
    _parsed: Any = field(default=_NOTHING, repr=False)
    media_type: str = "application/json"
    """What ``body`` is: JSON, or (for audio, file contents) the upstream's content type."""

    @classmethod
    def from_json(
        cls, data: Any, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> Response:
        response = cls(orjson.dumps(data), status, headers or {})
        response._parsed = data
        return response

    def json(self) -> Any:
        if self._parsed is _NOTHING:
            self._parsed = orjson.loads(self.body)
        return self._parsed


@dataclass(slots=True)
class SSEEvent:
    """One server-sent event: ``data`` is a parsed JSON object; ``event`` its name, if any."""

    data: Any
    event: str | None = None

    def encode(self) -> bytes:
        data = orjson.dumps(self.data)
        if self.event is None:
            return b"data: " + data + b"\n\n"
        return b"event: " + self.event.encode() + b"\ndata: " + data + b"\n\n"


class RawChunk(SSEEvent):
    """A piece of a byte stream that is not server-sent events (speech audio): ``data`` is
    None, ``encode()`` gives the bytes as they came."""

    __slots__ = ("raw",)

    def __init__(self, raw: bytes) -> None:
        super().__init__(None)
        self.raw = raw

    def encode(self) -> bytes:
        return self.raw


@dataclass(slots=True)
class StreamResponse:
    """A streamed answer whose status and headers have arrived; ``events`` yields the rest."""

    events: AsyncIterator[SSEEvent]
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    done_marker: bool = True
    """Whether the wire format ends with ``data: [DONE]`` (OpenAI's does, Anthropic's not)."""
    media_type: str = "text/event-stream"
    """``text/event-stream``, or a byte stream's type (``audio/mpeg``) whose ``events`` are
    :class:`RawChunk` objects."""

    async def aclose(self) -> None:
        """Stop the upstream stream early (client gone, timeout): releases its connection."""
        close = getattr(self.events, "aclose", None)
        if close is not None:
            await close()

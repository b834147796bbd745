"""What a cache entry holds. The memory backend keeps :class:`Entry` objects; Redis keeps
their bytes, one line of JSON metadata, a newline, then the payload::

    {"v":1,"kind":"json","status":200,"headers":{...},"created":1732520000.1}\\n<body bytes>
    {"v":1,"kind":"sse","status":200,"headers":{...},"created":...,"done":true}\\n[[event, data], ...]

A JSON answer's body is kept byte for byte; a stream keeps its events (name and data) and
whether its wire format ends with ``data: [DONE]``. orjson never writes a raw newline, so the
first newline always ends the metadata.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from hookgate import Response, SSEEvent, StreamResponse

__all__ = ["Entry", "decode", "stream_failed"]

_FORMAT = 1
# Upstream headers that describe that one call, not the answer: never replayed.
_VOLATILE = frozenset(
    {
        "date",
        "age",
        "set-cookie",
        "retry-after",
        "openai-processing-ms",
        "x-envoy-upstream-service-time",
    }
)
_VOLATILE_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-", "x-portkey-", "x-hookgate-")


def _replayable(headers: Mapping[str, str]) -> dict[str, str]:
    return {
        name: value
        for name, value in headers.items()
        if name.lower() not in _VOLATILE and not name.lower().startswith(_VOLATILE_PREFIXES)
    }


@dataclass(slots=True, frozen=True)
class Entry:
    kind: str
    status: int
    headers: dict[str, str]
    created: float
    done_marker: bool
    payload: bytes
    """A JSON answer's body; a stream's ``[[event, data], ...]`` as JSON."""

    @classmethod
    def of_json(cls, response: Response, created: float) -> Entry:
        return cls(
            "json", response.status, _replayable(response.headers), created, True, response.body
        )

    @classmethod
    def of_stream(
        cls, events: Iterable[SSEEvent], response: StreamResponse, created: float
    ) -> Entry:
        payload = orjson.dumps([(event.event, event.data) for event in events])
        return cls(
            "sse",
            response.status,
            _replayable(response.headers),
            created,
            response.done_marker,
            payload,
        )

    @property
    def size(self) -> int:
        """Bytes, roughly: what the memory backend counts against its bound."""
        return len(self.payload) + 256

    def encode(self) -> bytes:
        meta = {
            "v": _FORMAT,
            "kind": self.kind,
            "status": self.status,
            "headers": self.headers,
            "created": self.created,
            "done": self.done_marker,
        }
        return orjson.dumps(meta) + b"\n" + self.payload

    def response(self, age: float) -> Response | StreamResponse:
        """A fresh answer for one hit (nothing mutable is shared between hits)."""
        headers = {**self.headers, "age": str(max(0, int(age)))}
        if self.kind == "json":
            return Response(self.payload, self.status, headers)
        events = [SSEEvent(data, event) for event, data in orjson.loads(self.payload)]
        return StreamResponse(
            events=_replay(events),
            status=self.status,
            headers=headers,
            done_marker=self.done_marker,
        )


async def _replay(events: list[SSEEvent]) -> AsyncIterator[SSEEvent]:
    for event in events:
        yield event


def decode(blob: bytes) -> Entry:
    """Raise ValueError (or orjson's subclass of it) for anything that is not an entry."""
    end = blob.index(b"\n")
    meta: Any = orjson.loads(blob[:end])
    if not isinstance(meta, dict) or meta.get("v") != _FORMAT:
        raise ValueError("not a hookgate-cache entry of this version")
    kind = meta["kind"]
    if kind not in ("json", "sse"):
        raise ValueError(f"unknown entry kind {kind!r}")
    return Entry(
        kind=kind,
        status=int(meta["status"]),
        headers=dict(meta["headers"]),
        created=float(meta["created"]),
        done_marker=bool(meta.get("done", True)),
        payload=blob[end + 1 :],
    )


def stream_failed(events: Iterable[SSEEvent]) -> bool:
    """True when a stream carried an error event: such a stream is never stored."""
    for event in events:
        if event.event == "error":
            return True
        data = event.data
        if isinstance(data, dict) and data.get("error") is not None:
            return True
    return False

"""uvicorn's httptools protocol with the limits a public server needs.

uvicorn closes an idle keep-alive connection, but it has no limit on how long a client may
take to send a request's headers or body, and none on a fresh connection that sends
nothing: a slowloris client holding thousands of such connections is never reaped. This
protocol adds, from ``[server]`` in plugins.toml:

- ``header_timeout_s``: a connection must deliver a request's complete headers this soon
  after it opened, or after its first byte following an answer; else it gets a 408 and is
  closed;
- ``body_timeout_s``: the body must be complete this soon after the headers; else a 408 (if
  the answer has not started) and the connection is closed;
- ``max_connections`` per worker: at the limit, the connection that has waited longest for a
  request (idle, or still sending its headers) is closed to make room, so holding
  connections open starves nobody; when every connection is busy, the new one gets a 503.

It also answers a request that is not valid HTTP (a NUL byte in a header, ...) with a 400 in
OpenAI's JSON error shape instead of uvicorn's plain text.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from ..settings import ServerSettings

__all__ = ["GuardedHttpToolsProtocol", "protocol_class"]


def _error(status: int, message: str, error_type: str, code: str) -> bytes:
    body = orjson.dumps(
        {"error": {"message": message, "type": error_type, "param": None, "code": code}}
    )
    return b"".join(
        [
            STATUS_LINE[status],
            b"content-type: application/json\r\n",
            b"content-length: ",
            str(len(body)).encode(),
            b"\r\nconnection: close\r\n\r\n",
            body,
        ]
    )


_HEADERS_TIMEOUT = _error(
    408,
    "the request's headers did not arrive in time",
    "invalid_request_error",
    "request_timeout",
)
_BODY_TIMEOUT = _error(
    408, "the request's body did not arrive in time", "invalid_request_error", "request_timeout"
)
_FULL = _error(
    503, "the server has no room for another connection", "api_error", "too_many_connections"
)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """See the module docstring. Made per server by :func:`protocol_class`."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 1000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self.waiting_since: float | None = None
        """``monotonic()`` since the connection waits for a request (None: one is in)."""

    # ---- the connection ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections and not self._make_room():
            self.connections.discard(self)
            transport.write(_FULL)
            transport.close()
            return
        self.waiting_since = time.monotonic()
        self._arm(self.header_timeout, _HEADERS_TIMEOUT)

    def _make_room(self) -> bool:
        """Close the connection that has waited longest for a request; False if none does."""
        oldest: GuardedHttpToolsProtocol | None = None
        for connection in self.connections:
            since = getattr(connection, "waiting_since", None)
            if connection is self or since is None:
                continue
            if oldest is None or since < (oldest.waiting_since or 0.0):
                oldest = connection  # type: ignore[assignment]
        if oldest is None:
            return False
        oldest._close(None)
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.waiting_since = None
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        self.waiting_since = None
        super().handle_websocket_upgrade()

    def send_400_response(self, msg: str) -> None:
        self._disarm()
        self.transport.write(
            _error(
                400,
                "the request is not valid HTTP (a malformed request line or header, or a "
                "control character such as NUL in one)",
                "invalid_request_error",
                "invalid_http",
            )
        )
        self.transport.close()

    # ---- one request ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._timer is None:  # the first byte after an answer: the headers' clock starts
            self._arm(self.header_timeout, _HEADERS_TIMEOUT)

    def on_headers_complete(self) -> None:
        self._disarm()
        self.waiting_since = None
        super().on_headers_complete()
        self._arm(self.body_timeout, _BODY_TIMEOUT)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self.waiting_since = time.monotonic()

    # ---- timers -----------------------------------------------------------------------

    def _arm(self, delay: float, answer: bytes) -> None:
        self._disarm()
        self._timer = self.loop.call_later(delay, self._close, answer)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _close(self, answer: bytes | None) -> None:
        self._timer = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        cycle = self.cycle
        if answer is not None and (cycle is None or not cycle.response_started):
            if cycle is not None:
                cycle.disconnected = True  # the app's answer, if any, goes nowhere now
            transport.write(answer)
        transport.close()


def protocol_class(settings: ServerSettings) -> type[GuardedHttpToolsProtocol]:
    """The protocol class for a server with ``settings``' limits."""
    return type(
        "HookgateHttpProtocol",
        (GuardedHttpToolsProtocol,),
        {
            "header_timeout": settings.header_timeout_s,
            "body_timeout": settings.body_timeout_s,
            "max_connections": settings.max_connections,
        },
    )

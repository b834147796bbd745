"""A would-be thief: a plain TCP listener on a free loopback port that records every byte it
is sent. Tests point custom hosts, redirects and allow-lists at it, then assert that no
credential ever reached it (or that nothing reached it at all)."""

from __future__ import annotations

import contextlib
import socket
import threading

import orjson

_ANSWER = orjson.dumps(
    {
        "id": "chatcmpl-thief",
        "object": "chat.completion",
        "created": 0,
        "model": "stolen",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "got it"},
                "finish_reason": "stop",
            }
        ],
    }
)


class Thief:
    """Accepts connections, records what arrives, answers a small chat completion (or a
    fixed raw ``reply``) and closes."""

    def __init__(self, reply: bytes | None = None) -> None:
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port: int = self._sock.getsockname()[1]
        self.reply = reply or (
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(_ANSWER)).encode()
            + b"\r\nconnection: close\r\n\r\n"
            + _ANSWER
        )
        self.connections: list[bytes] = []
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="thief", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def received(self) -> bytes:
        """Everything every connection sent, in arrival order."""
        with self._lock:
            return b"".join(self.connections)

    def _serve(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        data = b""
        conn.settimeout(2)
        with conn:
            try:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length" and value.strip().isdigit():
                        length = int(value.strip())
                while len(body) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    body += chunk
                    data += chunk
            except OSError:
                pass
            with self._lock:  # recorded before answering: the answer proves it arrived
                self.connections.append(data)
            with contextlib.suppress(OSError):
                conn.sendall(self.reply)

    def close(self) -> None:
        self._closed = True
        self._sock.close()

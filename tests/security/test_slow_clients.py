"""Finding 6: connections that never finish a request are reaped (headers, body, idle
keep-alive), holding many of them starves nobody, and a request that is not valid HTTP gets
JSON. Against a real ``hookgate serve`` process (httptools, as deployed), with short limits
so the test takes seconds."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.servers import free_port

HOOKGATE = str(Path(sys.executable).parent / "hookgate")
HELLO = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}


def start_server(tmp: Path, max_connections: int) -> tuple[subprocess.Popen[str], int]:
    config = tmp / "plugins.toml"
    config.write_text(
        f"""
[gateway]
plugins = ["mock"]
default_provider = "mock"
[server]
workers = 1
header_timeout_s = 1.0
body_timeout_s = 1.0
keep_alive_timeout_s = 1.0
max_connections = {max_connections}
"""
    )
    port = free_port()
    process = subprocess.Popen(
        [HOOKGATE, "serve", "--config", str(config), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 90  # a loaded CI machine starts slowly
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process, port
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise AssertionError("hookgate serve did not come up")


MAX_CONNECTIONS = 100


@pytest.fixture(scope="module")
def port(tmp_path_factory) -> Iterator[int]:
    process, port = start_server(tmp_path_factory.mktemp("slow"), MAX_CONNECTIONS)
    yield port
    process.terminate()
    try:
        process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()


def connect(port: int, send: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    if send:
        sock.sendall(send)
    return sock


def drain(sock: socket.socket, timeout: float = 3.0) -> bytes | None:
    """What the server sent until it closed; None if it kept the connection open."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    finally:
        sock.close()
    return data


PARTIAL_HEADERS = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nx-portkey-trace"
ENDLESS_BODY = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
    b'transfer-encoding: chunked\r\n\r\n5\r\n{"mod\r\n'
)


def test_slow_and_silent_clients_are_reaped_while_others_are_served(port):
    held = [connect(port) for _ in range(30)]  # silent
    held += [connect(port, PARTIAL_HEADERS) for _ in range(30)]  # slowloris headers
    held += [connect(port, ENDLESS_BODY) for _ in range(30)]  # a body that never ends
    opened = time.monotonic()
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        for _ in range(20):
            response = client.post("/v1/chat/completions", json=HELLO)
            assert response.status_code == 200
    answers = [drain(sock, timeout=max(0.1, opened + 5 - time.monotonic())) for sock in held]
    assert all(answer is not None for answer in answers), "a connection was left open"
    for answer in answers:
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), answer
        assert json.loads(body)["error"]["code"] == "request_timeout"


def test_idle_keep_alive_connections_are_closed(port):
    sock = connect(port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.2)
    assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    assert drain(sock, timeout=3) == b""  # closed after keep_alive_timeout_s


def test_holding_every_connection_starves_nobody(port):
    held = [connect(port, PARTIAL_HEADERS) for _ in range(MAX_CONNECTIONS + 50)]
    time.sleep(0.2)
    for _ in range(5):
        response = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=HELLO)
        assert response.status_code == 200
    for sock in held:
        sock.close()


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /health HTTP/1.1\r\nHost: x\r\nx-bad: a\x00b\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: x\r\nbad header: 1\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",  # TLS on the HTTP port
    ],
    ids=["nul-in-header", "space-in-name", "tls-hello"],
)
def test_invalid_http_gets_json(port, request_bytes):
    answer = drain(connect(port, request_bytes))
    assert answer is not None
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and b"application/json" in head
    assert json.loads(body)["error"]["code"] == "invalid_http"

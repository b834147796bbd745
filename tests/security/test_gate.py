"""Finding 4: every route needs the gateway key when keys are configured, plugin routes and
the fast path included; paths are matched after normalisation; /ready shows only its status
without the key; /metrics is closed unless the operator opens it; nothing answers with a
redirect built from the Host header. Over a real socket."""

from __future__ import annotations

import socket

import httpx
import pytest
from hookgate import Gateway, hookimpl
from hookgate.server.gate import open_route, principal_of
from starlette.responses import JSONResponse
from starlette.routing import Route

KEY = {"x-portkey-api-key": "gw-key-1"}
HELLO = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}


class Routes:
    """A plugin adding one closed and one open route, as register_routes does."""

    @hookimpl
    def register_routes(self, gateway: Gateway) -> list[Route]:
        async def secret(request):
            principal = principal_of(request.scope)
            key_id = principal.key_id if principal is not None else None
            return JSONResponse({"secret": "plugin data", "key_id": key_id})

        async def login(request):
            return JSONResponse({"login": "form"})

        return [
            Route("/plugin/secret", secret, methods=["GET"]),
            open_route(Route("/plugin/login", login, methods=["GET"])),
        ]


def keyed(write_toml, tmp_path, extra: str = "") -> Gateway:
    gateway = Gateway.from_toml(
        write_toml(f"""
            [gateway]
            plugins = ["mock", "logging"]
            default_provider = "mock"
            [server]
            api_keys = ["gw-key-1"]
            {extra}
            [plugins.logging]
            log_to = "none"
            store = {{ path = "{tmp_path / "logs.db"}" }}
        """)
    )
    gateway.register(Routes(), "routes")
    return gateway


@pytest.fixture
def server(write_toml, tmp_path, serve):
    with serve(keyed(write_toml, tmp_path)) as running:
        yield running


def raw_request(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/metrics"),
        ("GET", "/%6detrics"),  # percent-encoded
        ("GET", "/metrics/"),  # trailing slash
        ("GET", "//metrics"),
        ("GET", "/v1/../metrics"),
        ("GET", "/plugin/secret"),  # a plugin's route
        ("GET", "/plugin/secret/"),
        ("GET", "/v1/models"),
        ("POST", "/v1/chat/completions"),  # the fast path
        ("POST", "/v1/chat/completions/"),
        ("POST", "/v1/%63hat/completions"),
        ("POST", "/v1/embeddings"),
        ("POST", "/v1/messages"),
        ("GET", "/no/such/route"),  # a 401, not a 404 that maps the routes
        ("DELETE", "/health"),
    ],
)
def test_every_route_needs_the_key(server, method, path):
    response = httpx.request(method, server.url + path, json=HELLO)
    assert response.status_code == 401, response.text
    assert response.json()["error"]["type"] == "authentication_error"
    assert "location" not in response.headers
    assert "plugin data" not in response.text and "hookgate_requests" not in response.text


@pytest.mark.parametrize("path", ["/metrics", "/%6detrics", "/metrics/"])
def test_metrics_answer_with_the_key(server, path):
    response = httpx.get(server.url + path, headers=KEY)
    assert response.status_code == 200 and "hookgate_requests" in response.text


def test_plugin_routes_answer_with_the_key_and_see_the_principal(server):
    response = httpx.get(server.url + "/plugin/secret/", headers=KEY)
    assert response.status_code == 200
    assert response.json() == {"secret": "plugin data", "key_id": "server.api_keys"}


def test_a_plugin_can_open_a_route_and_only_that_route(server):
    assert httpx.get(server.url + "/plugin/login").json() == {"login": "form"}
    assert httpx.post(server.url + "/plugin/login").status_code == 401  # not its method


def test_trailing_slash_is_served_not_redirected(server):
    response = httpx.post(server.url + "/v1/chat/completions/", json=HELLO, headers=KEY)
    assert response.status_code == 200, response.text
    assert response.json()["object"] == "chat.completion"


def test_no_answer_builds_a_url_from_the_host_header(server):
    for request in (
        b"POST /v1/chat/completions/ HTTP/1.1\r\nHost: evil.example\r\ncontent-length: 2\r\n"
        b"connection: close\r\n\r\n{}",
        b"GET /ready/ HTTP/1.1\r\nHost: evil.example\r\nconnection: close\r\n\r\n",
        b"GET /v1/models/ HTTP/1.1\r\nHost: evil.example\r\nx-portkey-api-key: gw-key-1\r\n"
        b"connection: close\r\n\r\n",
    ):
        answer = raw_request(server.port, request)
        status = int(answer.split(b" ", 2)[1])
        assert status < 300 or status >= 400, answer
        assert b"evil.example" not in answer and b"location" not in answer.lower()


def test_health_stays_open(server):
    assert httpx.get(server.url + "/health").json() == {"status": "ok"}


def test_ready_without_the_key_shows_only_its_status(server):
    bare = httpx.get(server.url + "/ready")
    assert bare.status_code == 200 and bare.json() == {"status": "ready"}
    full = httpx.get(server.url + "/ready", headers=KEY).json()
    assert full["status"] == "ready" and "mock" in full["providers"] and "plugins" in full


def test_ready_not_ready_without_the_key_is_a_bare_503(write_toml, tmp_path, serve):
    class Broken:
        @hookimpl
        def ready(self, gateway):
            return ["redis at 10.1.2.3:6379: connection refused"]

    gateway = keyed(write_toml, tmp_path)
    gateway.register(Broken(), "broken")
    with serve(gateway) as server:
        bare = httpx.get(server.url + "/ready")
        assert bare.status_code == 503 and bare.json() == {"status": "not ready"}
        full = httpx.get(server.url + "/ready", headers=KEY)
        assert full.status_code == 503 and "10.1.2.3" in full.json()["problems"][0]


def test_the_operator_can_open_metrics(write_toml, tmp_path, serve):
    with serve(keyed(write_toml, tmp_path, 'open_paths = ["/metrics"]')) as server:
        assert "hookgate_requests" in httpx.get(server.url + "/%6detrics/").text
        assert httpx.get(server.url + "/plugin/secret").status_code == 401
        assert httpx.post(server.url + "/metrics").status_code == 401  # GET only


def test_without_keys_every_route_is_open(write_toml, tmp_path, serve):
    gateway = Gateway.from_toml(
        write_toml("""
            [gateway]
            plugins = ["mock"]
            default_provider = "mock"
        """)
    )
    gateway.register(Routes(), "routes")
    with serve(gateway) as server:
        assert httpx.get(server.url + "/plugin/secret").json()["key_id"] is None
        assert "providers" in httpx.get(server.url + "/ready").json()
        assert httpx.post(server.url + "/v1/chat/completions/", json=HELLO).status_code == 200

"""Behaviour at the edges over real HTTP: bad input, upstream failures, hang-ups, keys, /ready."""

from __future__ import annotations

import json

import httpx
import pytest
from hookgate import hookimpl
from hookgate.server.app import endpoint_route
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.server.conftest import wait_for
from tests.support.fake_openai import Reply

HELLO = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}


@pytest.fixture
def gateway(make_gateway, upstream):
    return make_gateway(f"""
        [gateway]
        plugins = ["mock", "openai"]
        default_provider = "openai"
        [plugins.openai]
        base_url = "{upstream.url}"
        api_key = "sk-configured"
        [server]
        max_body_bytes = 4000
    """)


@pytest.fixture
def server(gateway, serve):
    with serve(gateway) as running:
        yield running


def chat(server, **kwargs: object) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/chat/completions", **kwargs)


def nested(depth: int) -> bytes:
    return b'{"model": "m", "messages": ' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize(
    ("path", "body", "says"),
    [
        ("/v1/chat/completions", b"null", "must be a JSON object"),
        ("/v1/chat/completions", b'"text"', "must be a JSON object"),
        ("/v1/chat/completions", b'{"model": 5, "messages": []}', "model"),
        ("/v1/chat/completions", b'{"model": "m", "messages": "hi"}', "messages"),
        ("/v1/chat/completions", b'{"model": "m", "messages": ["hi"]}', "messages"),
        ("/v1/chat/completions", nested(1100), "not valid JSON"),
        ("/v1/chat/completions", b"\xff\xfe", "not valid JSON"),
        ("/v1/completions", b'{"model": "m"}', "prompt"),
        ("/v1/embeddings", b'{"model": "m"}', "input"),
    ],
)
def test_bad_bodies_are_400s_naming_the_problem(server, upstream, path, body, says):
    response = httpx.post(f"{server.url}{path}", content=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert says in error["message"]
    assert error["type"] == "invalid_request_error"
    assert "Traceback" not in response.text
    assert upstream.requests == []


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ("{not json", "config is not valid JSON"),
        (json.dumps({"strategy": {"mode": "sideways"}, "targets": [{}]}), "strategy.mode"),
        (json.dumps({"targets": []}), "targets must not be empty"),
        (json.dumps({"provider": "nobody"}), "unknown provider 'nobody'"),
    ],
)
def test_invalid_configs_are_400s(server, config, says):
    response = chat(server, json=HELLO, headers={"x-portkey-config": config})
    assert response.status_code == 400, response.text
    assert says in response.json()["error"]["message"]


def test_body_over_the_limit_is_a_413_declared_or_streamed(server, upstream):
    big = json.dumps({**HELLO, "messages": [{"role": "user", "content": "x" * 5000}]}).encode()
    declared = chat(server, content=big)
    assert declared.status_code == 413
    assert "larger than 4000 bytes" in declared.json()["error"]["message"]

    def chunks():  # no content-length: the limit holds while reading
        for start in range(0, len(big), 1000):
            yield big[start : start + 1000]

    streamed = chat(server, content=chunks())
    assert streamed.status_code == 413
    assert upstream.requests == []


def test_unknown_route_and_wrong_method_are_json(server):
    for method, path, status in [
        ("POST", "/v1/nothing", 404),
        ("GET", "/", 404),
        ("DELETE", "/v1/embeddings", 405),
        ("GET", "/v1/chat/completions", 405),
    ]:
        response = httpx.request(method, f"{server.url}{path}")
        assert response.status_code == status
        assert response.headers["content-type"] == "application/json"
        assert response.json()["error"]["message"]


def test_upstream_failure_before_the_first_byte_keeps_status_and_body(server, upstream):
    upstream.script(Reply(status=503, json={"error": {"message": "overloaded", "type": "x"}}))
    response = chat(server, json={**HELLO, "stream": True})
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["message"] == "openai error: overloaded"
    assert response.headers["x-portkey-provider"] == "openai"


def test_upstream_down_is_a_clean_502(make_gateway, serve):
    gateway = make_gateway("""
        [gateway]
        plugins = ["openai"]
        default_provider = "openai"
        [plugins.openai]
        base_url = "http://127.0.0.1:9/v1"
    """)
    with serve(gateway) as server:
        response = chat(server, json=HELLO)
    assert response.status_code == 502
    assert response.json()["error"]["message"]


def test_mid_stream_drop_ends_with_an_sse_error_event(server, upstream):
    upstream.script(Reply(drop_after=2))
    response = chat(server, json={**HELLO, "stream": True}, timeout=10)
    assert response.status_code == 200
    events = [e for e in response.text.split("\n\n") if e]
    assert len(events) == 3  # two chunks, then the error; no [DONE]
    error = json.loads(events[-1].removeprefix("data: "))["error"]
    assert error["message"] and error["type"]


def test_client_hanging_up_mid_stream_cancels_the_upstream(server, upstream):
    upstream.script(Reply(stream_delay=0.3))
    with httpx.stream(
        "POST", f"{server.url}/v1/chat/completions", json={**HELLO, "stream": True}
    ) as r:
        first = next(r.iter_raw())
        assert first.startswith(b"data: ")
    assert wait_for(lambda: upstream.calls()[0].outcome == "disconnected", timeout=3)


def test_gateway_keys(make_gateway, serve, upstream):
    gateway = make_gateway(f"""
        [gateway]
        plugins = ["openai"]
        default_provider = "openai"
        [plugins.openai]
        base_url = "{upstream.url}"
        api_key = "sk-configured"
        [server]
        api_keys = ["pk-one", "pk-two"]
        api_key_in_authorization = true
    """)
    with serve(gateway) as server:
        missing = chat(server, json=HELLO)
        assert missing.status_code == 401
        assert "x-portkey-api-key" in missing.json()["error"]["message"]
        assert chat(server, json=HELLO, headers={"x-portkey-api-key": "pk-bad"}).status_code == 401
        ok = chat(server, json=HELLO, headers={"x-portkey-api-key": "pk-two"})
        assert ok.status_code == 200
        bearer = chat(server, json=HELLO, headers={"authorization": "Bearer pk-one"})
        assert bearer.status_code == 200
        # The gateway key is the gateway's: the upstream gets the configured provider key.
        assert upstream.calls()[-1].headers["authorization"] == "Bearer sk-configured"
        assert all("pk-" not in str(call.headers) for call in upstream.requests)
        assert httpx.get(f"{server.url}/health").status_code == 200  # probes need no key


class Unready:
    def __init__(self, problems: list[str] | Exception) -> None:
        self.problems = problems

    @hookimpl
    async def ready(self, gateway: object) -> list[str]:
        if isinstance(self.problems, Exception):
            raise self.problems
        return self.problems


def test_ready_reports_plugin_problems(gateway, serve):
    check = Unready([])
    gateway.register(check, "backend")
    with serve(gateway) as server:
        ready = httpx.get(f"{server.url}/ready")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        assert "backend" in ready.json()["plugins"]
        check.problems = ["redis at 127.0.0.1:1: connection refused"]
        down = httpx.get(f"{server.url}/ready")
        assert down.status_code == 503
        assert down.json()["problems"] == ["backend: redis at 127.0.0.1:1: connection refused"]
        check.problems = TimeoutError("ping took too long")
        broken = httpx.get(f"{server.url}/ready").json()
        assert broken["problems"] == [
            "backend: readiness check failed: TimeoutError: ping took too long"
        ]
        assert httpx.get(f"{server.url}/health").status_code == 200  # alive all the same


class Routes:
    """A plugin replacing a hot route and adding its own through the pipeline."""

    @hookimpl
    def register_routes(self, gateway: object) -> list[Route]:
        async def custom(request: object) -> JSONResponse:
            return JSONResponse({"served_by": "plugin"})

        return [
            Route("/v1/embeddings", custom, methods=["POST"]),
            endpoint_route(gateway, "/v1/echo", "chat.completions"),  # type: ignore[arg-type]
        ]


def test_plugin_routes_win_over_the_fast_path(make_gateway, serve):
    gateway = make_gateway("""
        [gateway]
        plugins = ["mock"]
        default_provider = "mock"
    """)
    gateway.register(Routes(), "routes")
    with serve(gateway) as server:
        replaced = httpx.post(f"{server.url}/v1/embeddings", json={"model": "m", "input": "x"})
        assert replaced.json() == {"served_by": "plugin"}
        echo = httpx.post(
            f"{server.url}/v1/echo", json={"model": "m", "messages": HELLO["messages"]}
        )
        assert echo.json()["choices"][0]["message"]["content"] == "[mock] you said: hello"
        assert echo.headers["x-portkey-provider"] == "mock"
        bad = httpx.post(f"{server.url}/v1/echo", content=b"{")
        assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]["message"]
        chat_ok = httpx.post(f"{server.url}/v1/chat/completions", json=HELLO)
        assert chat_ok.status_code == 200

"""Every Portkey request header, sent over real HTTP, and what the client and upstream see."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.server.conftest import Seen, wait_for
from tests.support.fake_openai import Reply

HELLO = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}


@pytest.fixture
def seen() -> Seen:
    return Seen()


@pytest.fixture
def server(make_gateway, upstream, serve, seen):
    gateway = make_gateway(f"""
        [gateway]
        plugins = ["mock", "openai"]
        default_provider = "mock"
        [plugins.openai]
        base_url = "http://127.0.0.1:9/v1"
        api_key = "sk-configured"
        [virtual_keys.vk-up]
        provider = "openai"
        api_key = "sk-virtual"
        custom_host = "{upstream.url}"
    """)
    gateway.register(seen, "seen")
    with serve(gateway) as running:
        yield running


def post(server, headers: dict[str, str], body: object = HELLO, **kwargs: object) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/chat/completions", json=body, headers=headers, **kwargs)


def test_trace_metadata_and_cache_headers_reach_the_pipeline(server, seen):
    response = post(
        server,
        {
            "x-portkey-trace-id": "trace-7",
            "x-portkey-metadata": json.dumps({"user": "ann", "n": 3}),
            "x-portkey-cache-force-refresh": "true",
            "x-portkey-cache-namespace": "team-a",
            "x-portkey-api-key": "pk-not-forwarded",
        },
    )
    assert response.status_code == 200
    assert response.headers["x-portkey-trace-id"] == "trace-7"
    assert response.headers["x-hookgate-trace-id"] == "trace-7"
    ctx = seen.contexts[-1]
    assert ctx["trace_id"] == "trace-7"
    assert ctx["metadata"] == {"user": "ann", "n": "3"}
    assert ctx["cache_force_refresh"] is True
    assert ctx["cache_namespace"] == "team-a"
    assert "x-portkey-api-key" not in ctx["headers"]  # secrets never kept on the context
    assert ctx["headers"]["x-portkey-cache-namespace"] == "team-a"


def test_defaults_without_headers(server, seen):
    response = post(server, {})
    assert response.status_code == 200
    ctx = seen.contexts[-1]
    assert ctx["metadata"] == {} and ctx["cache_force_refresh"] is False
    assert ctx["cache_namespace"] is None and ctx["timeout"] == 600.0
    assert len(response.headers["x-portkey-trace-id"]) == 32


@pytest.mark.parametrize("value", ["not json", "[1, 2]"])
def test_bad_metadata_is_a_400(server, value):
    response = post(server, {"x-portkey-metadata": value})
    assert response.status_code == 400
    error = response.json()["error"]
    assert "x-portkey-metadata must be a JSON object" in error["message"]
    assert error["param"] == "x-portkey-metadata"


@pytest.mark.parametrize("value", ["soon", "0", "-5"])
def test_bad_request_timeout_is_a_400(server, value):
    response = post(server, {"x-portkey-request-timeout": value})
    assert response.status_code == 400
    assert "x-portkey-request-timeout" in response.json()["error"]["message"]


def test_provider_and_custom_host_on_the_allow_list(server, upstream):
    response = post(
        server,
        {
            "x-portkey-provider": "openai",
            "x-portkey-custom-host": upstream.url,
            "authorization": "Bearer sk-caller",
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "fake: hello"
    assert response.headers["x-portkey-provider"] == "openai"
    assert upstream.calls()[0].headers["authorization"] == "Bearer sk-caller"


@pytest.mark.parametrize(
    ("host", "says"),
    [
        ("http://169.254.169.254/latest", "'169.254.169.254' is not in [gateway] custom_hosts"),
        ("file:///etc/passwd", "must be an http(s) URL"),
    ],
)
def test_custom_host_off_the_allow_list_is_refused(server, upstream, host, says):
    response = post(server, {"x-portkey-provider": "openai", "x-portkey-custom-host": host})
    assert response.status_code == 400
    assert says in response.json()["error"]["message"]
    assert upstream.requests == []


def test_virtual_key_header_uses_the_stored_key(server, upstream):
    response = post(
        server, {"x-portkey-virtual-key": "vk-up", "authorization": "Bearer OPENAI_API_KEY"}
    )
    assert response.status_code == 200
    assert upstream.calls()[0].headers["authorization"] == "Bearer sk-virtual"
    unknown = post(server, {"x-portkey-virtual-key": "vk-nope"})
    assert unknown.status_code == 400 and "unknown virtual key 'vk-nope'" in unknown.text


def test_request_timeout_header_is_a_408_on_time_and_cancels_the_upstream(server, upstream):
    upstream.script(Reply(delay=3.0))
    began = time.monotonic()
    response = post(server, {"x-portkey-virtual-key": "vk-up", "x-portkey-request-timeout": "300"})
    took = time.monotonic() - began
    assert response.status_code == 408
    error = response.json()["error"]
    assert error["code"] == "request_timeout" and "0.3 s" in error["message"]
    assert 0.25 < took < 1.5
    assert wait_for(lambda: upstream.calls()[0].outcome == "disconnected", timeout=2)


def test_request_timeout_in_the_config(server, upstream):
    upstream.script(Reply(delay=3.0))
    config = {"virtual_key": "vk-up", "request_timeout": 300}
    began = time.monotonic()
    response = post(server, {"x-portkey-config": json.dumps(config)})
    assert response.status_code == 408
    assert time.monotonic() - began < 1.5
    assert wait_for(lambda: upstream.calls()[0].outcome == "disconnected", timeout=2)


def test_config_id_and_unknown_config_id(make_gateway, serve):
    gateway = make_gateway("""
        [gateway]
        plugins = ["mock"]
        [configs.pc-one]
        provider = "mock"
        override_params = { model = "from-pc-one" }
    """)
    with serve(gateway) as server:
        ok = post(server, {"x-portkey-config": "pc-one"})
        assert ok.status_code == 200 and ok.json()["model"] == "from-pc-one"
        missing = post(server, {"x-portkey-config": "pc-missing"})
        assert missing.status_code == 400
        assert "pc-missing" in missing.json()["error"]["message"]

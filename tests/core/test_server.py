"""``hookgate serve``'s app over real HTTP: the openai SDK, raw HTTP for bad input."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from hookgate import Gateway

from tests.support.fake_openai import Reply

HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture
def gateway(make_gateway, fake_openai):
    return make_gateway(f"""
        [gateway]
        plugins = ["mock", "openai"]
        default_provider = "mock"
        [plugins.openai]
        base_url = "{fake_openai.url}"
        [server]
        max_body_bytes = 2000
        [virtual_keys.vk-openai]
        provider = "openai"
        api_key = "sk-virtual-secret"
    """)


@pytest.fixture
def server(gateway, serve):
    with serve(gateway) as running:
        yield running


def test_openai_sdk_chat_and_headers(server):
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="m", messages=HELLO)
    answer = raw.parse()
    assert answer.choices[0].message.content == "[mock] you said: hello"
    assert raw.headers["x-portkey-provider"] == "mock"
    assert raw.headers["x-portkey-cache-status"] == "DISABLED"
    assert raw.headers["x-portkey-retry-attempt-count"] == "0"
    assert raw.headers["x-portkey-last-used-option-index"] == "config"
    assert raw.headers["x-hookgate-trace-id"] == raw.headers["x-portkey-trace-id"] != ""


def test_openai_sdk_stream(server):
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    chunks = list(client.chat.completions.create(model="m", messages=HELLO, stream=True))
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        == "[mock] you said: hello"
    )


def test_provider_header_and_bearer_key_reach_the_upstream(server, fake_openai):
    client = openai.OpenAI(
        base_url=f"{server.url}/v1",
        api_key="sk-caller",
        max_retries=0,
        default_headers={"x-portkey-provider": "openai", "x-portkey-trace-id": "trace-42"},
    )
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO)
    assert raw.parse().choices[0].message.content == "fake: hello"
    assert raw.headers["x-portkey-trace-id"] == "trace-42"
    assert raw.headers["x-request-id"].startswith("req_fake_")  # upstream headers pass through
    assert fake_openai.calls()[0].headers["authorization"] == "Bearer sk-caller"


def test_portkey_placeholder_key_is_never_forwarded(server, fake_openai):
    httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": "m", "messages": HELLO},
        headers={"authorization": "Bearer OPENAI_API_KEY", "x-portkey-virtual-key": "vk-openai"},
    ).raise_for_status()
    assert fake_openai.calls()[0].headers["authorization"] == "Bearer sk-virtual-secret"


def test_upstream_error_keeps_status_and_sdk_raises_the_right_type(server, fake_openai):
    fake_openai.script(429)
    client = openai.OpenAI(
        base_url=f"{server.url}/v1",
        api_key="k",
        max_retries=0,
        default_headers={"x-portkey-provider": "openai"},
    )
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(model="m", messages=HELLO)
    assert err.value.body["message"] == "openai error: fake upstream error 429"


def test_config_header_json_and_bad_config(server):
    config = {"provider": "mock", "override_params": {"model": "from-config"}}
    ok = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": "m", "messages": HELLO},
        headers={"x-portkey-config": json.dumps(config)},
    )
    assert ok.json()["model"] == "from-config"
    bad = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": "m", "messages": HELLO},
        headers={"x-portkey-config": json.dumps({"retry": {"attempts": -1}})},
    )
    assert bad.status_code == 400
    assert "config.retry.attempts" in bad.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"", 400, "empty"),
        (b"[1, 2]", 400, "must be a JSON object"),
        (b'{"messages": [{"role": "user", "content": "x"}]}', 400, "model: Field required"),
        (b'{"model": "m"}', 400, "messages: Field required"),
        (
            b'{"model": "m", "messages": [{"role": "user", "content": "' + b"x" * 3000 + b'"}]}',
            413,
            "larger than 2000",
        ),
    ],
)
def test_bad_input_is_a_clean_openai_error(server, body, status, says):
    response = httpx.post(
        f"{server.url}/v1/chat/completions",
        content=body,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == status
    error = response.json()["error"]
    assert says in error["message"]
    assert set(error) >= {"message", "type", "code", "param"}


def test_unknown_route_and_method(server):
    missing = httpx.get(f"{server.url}/v1/nothing")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    wrong = httpx.get(f"{server.url}/v1/chat/completions")
    assert wrong.status_code == 405 and "not allowed" in wrong.json()["error"]["message"]


def test_health_ready_models(server):
    assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
    ready = httpx.get(f"{server.url}/ready").json()
    assert ready["status"] == "ready" and {"mock", "openai", "lingyi"} <= set(ready["providers"])
    models = httpx.get(f"{server.url}/v1/models").json()
    assert models["data"][0]["id"] == "mock-1"


def test_gateway_keys(make_gateway, serve):
    gateway = make_gateway("""
        [gateway]
        plugins = ["mock"]
        default_provider = "mock"
        [server]
        api_keys = ["gw-secret-1"]
    """)
    with serve(gateway) as server:
        url = f"{server.url}/v1/chat/completions"
        body = {"model": "m", "messages": HELLO}
        denied = httpx.post(url, json=body)
        assert (
            denied.status_code == 401 and denied.json()["error"]["type"] == "authentication_error"
        )
        assert httpx.post(url, json=body, headers={"x-portkey-api-key": "wrong"}).status_code == 401
        assert (
            httpx.post(url, json=body, headers={"x-portkey-api-key": "gw-secret-1"}).status_code
            == 200
        )


def test_stream_cut_upstream_ends_with_an_sse_error_event(server, fake_openai):
    fake_openai.script(Reply(drop_after=2))
    with httpx.stream(
        "POST",
        f"{server.url}/v1/chat/completions",
        json={"model": "m", "messages": HELLO, "stream": True},
        headers={"x-portkey-provider": "openai"},
    ) as response:
        assert response.status_code == 200
        events = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert len(events) == 3
    assert json.loads(events[-1][6:])["error"]["code"] == "upstream_connection_error"


def test_gateway_from_reference_file_serves(serve):
    with serve(Gateway.from_toml("plugins.toml")) as server:
        response = httpx.post(
            f"{server.url}/v1/chat/completions",
            json={"model": "m", "messages": HELLO},
            headers={"x-portkey-config": "pc-mock-fallback"},
        )
        assert response.status_code == 200, response.text  # the fallback plugin is enabled
        # The reference config's first target fails on purpose; the second answers.
        assert response.json()["model"] == "mock-secondary"
        assert response.headers["x-portkey-last-used-option-index"] == "config.targets[1]"

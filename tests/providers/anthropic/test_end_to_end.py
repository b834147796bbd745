"""``hookgate serve`` with the openai SDK: chat completions answered by an anthropic target."""

from __future__ import annotations

import openai
import orjson
import pytest

from tests.support.fake_anthropic import Reply


@pytest.fixture
def server(make_gateway, serve, fake_anthropic):
    gateway = make_gateway(f"""
        [gateway]
        plugins = ["mock", "anthropic"]
        default_provider = "mock"
        [plugins.anthropic]
        base_url = "{fake_anthropic.url}"
        read_timeout = 2.0
    """)
    with serve(gateway) as running:
        yield running


def client(server, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{server.url}/v1",
        api_key="sk-ant-caller",
        max_retries=0,
        default_headers={"x-portkey-provider": "anthropic", **headers},
    )


def test_openai_sdk_chat_completion_to_anthropic(server, fake_anthropic):
    with client(server) as sdk:
        raw = sdk.chat.completions.with_raw_response.create(
            model="claude-sonnet-5",
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "hello"},
            ],
            max_tokens=100,
        )
    answer = raw.parse()
    assert answer.choices[0].message.content == "fake: hello"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage.prompt_tokens == 1 and answer.usage.completion_tokens == 2
    assert raw.headers["x-portkey-provider"] == "anthropic"
    assert raw.headers["x-portkey-retry-attempt-count"] == "0"
    [call] = fake_anthropic.calls()
    assert call.json == {
        "model": "claude-sonnet-5",
        "system": "Be brief.",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hello"}],
    }
    assert call.headers["x-api-key"] == "sk-ant-caller"
    assert call.invalid is None


def test_openai_sdk_sees_overloaded_as_a_529_api_error(server, fake_anthropic):
    fake_anthropic.script(Reply(status=529, headers={"retry-after": "1"}))
    with client(server) as sdk, pytest.raises(openai.APIStatusError) as err:
        sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert err.value.status_code == 529
    assert err.value.body["type"] == "overloaded_error"
    assert err.value.body["message"] == "anthropic error: fake overloaded_error"


def test_config_routes_to_anthropic(server, fake_anthropic):
    config = {
        "provider": "anthropic",
        "api_key": "sk-ant-config",
        "override_params": {"model": "claude-opus-5"},
    }
    with client(server, **{"x-portkey-config": orjson.dumps(config).decode()}) as sdk:
        answer = sdk.chat.completions.create(
            model="anything", messages=[{"role": "user", "content": "hi"}]
        )
    assert answer.model == "claude-opus-5"
    assert fake_anthropic.calls()[0].headers["x-api-key"] == "sk-ant-config"

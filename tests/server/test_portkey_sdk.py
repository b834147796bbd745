"""The ``portkey-ai`` SDK pointed at ``hookgate serve``, as Portkey users would use it.

Facts checked here about what the SDK (2.x) sends: no ``api_key`` is needed with a
``base_url`` (it sends ``x-portkey-api-key`` empty and ``Authorization: Bearer
OPENAI_API_KEY``, a placeholder); ``config=`` travels as JSON text in ``x-portkey-config``,
``provider=`` / ``virtual_key=`` as ``x-portkey-provider`` / ``x-portkey-virtual-key``; its
inner openai client retries a 408/429/5xx once by itself (``max_retries=1``); its answers'
``get_headers()`` gives the ``x-portkey-*`` headers without the prefix.
"""

from __future__ import annotations

import pytest
from portkey_ai import Portkey
from portkey_ai._vendor import openai  # the SDK raises its vendored openai's errors

from tests.support.fake_openai import Reply

HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture
def gateway(make_gateway, upstream):
    return make_gateway(f"""
        [gateway]
        plugins = ["mock", "openai", "retry", "fallback", "cache"]
        default_provider = "mock"
        [plugins.openai]
        base_url = "{upstream.url}"
        [plugins.retry]
        initial_delay = 0.01
        jitter = false
        [virtual_keys.vk-up]
        provider = "openai"
        api_key = "sk-virtual"
    """)


@pytest.fixture
def server(gateway, serve):
    with serve(gateway) as running:
        yield running


def client(server, **kwargs: object) -> Portkey:
    return Portkey(base_url=f"{server.url}/v1", **kwargs)


def test_no_key_no_config_goes_to_the_default_provider(server, upstream):
    answer = client(server).chat.completions.create(model="m", messages=HELLO)
    assert answer.choices[0].message.content == "[mock] you said: hello"
    assert upstream.requests == []


def test_provider_with_the_callers_key(server, upstream):
    portkey = client(server, provider="openai", Authorization="Bearer sk-caller")
    answer = portkey.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert answer.choices[0].message.content == "fake: hello"
    assert upstream.calls()[0].headers["authorization"] == "Bearer sk-caller"


def test_placeholder_key_is_not_forwarded(server, upstream):
    portkey = client(server, provider="openai")  # sends Bearer OPENAI_API_KEY
    portkey.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    sent = upstream.calls()[0].headers
    assert "authorization" not in sent  # no key configured, and the placeholder is no key
    assert "OPENAI_API_KEY" not in str(sent)


def test_virtual_key(server, upstream):
    portkey = client(server, virtual_key="vk-up")
    answer = portkey.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert answer.choices[0].message.content == "fake: hello"
    assert upstream.calls()[0].headers["authorization"] == "Bearer sk-virtual"


def test_streaming(server, upstream):
    portkey = client(server, virtual_key="vk-up")
    chunks = list(portkey.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "fake: hello"


def test_config_retry_absorbs_upstream_failures(server, upstream):
    upstream.script(503, 429)
    portkey = client(server, config={"retry": {"attempts": 3}, "virtual_key": "vk-up"})
    answer = portkey.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert answer.choices[0].message.content == "fake: hello"
    assert answer.get_headers()["retry-attempt-count"] == "2"
    assert len(upstream.calls()) == 3


def test_config_targets_fall_back(server, upstream):
    upstream.script(500)
    config = {
        "strategy": {"mode": "fallback"},
        "targets": [{"virtual_key": "vk-up"}, {"provider": "mock"}],
    }
    answer = client(server, config=config).chat.completions.create(model="m", messages=HELLO)
    assert answer.choices[0].message.content == "[mock] you said: hello"
    assert answer.get_headers()["last-used-option-index"] == "config.targets[1]"
    assert answer.get_headers()["provider"] == "mock"
    assert len(upstream.calls()) == 1


def test_config_cache(server, upstream):
    portkey = client(server, config={"cache": {"mode": "simple"}, "virtual_key": "vk-up"})
    first = portkey.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    second = portkey.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert first.get_headers()["cache-status"] == "MISS"
    assert second.get_headers()["cache-status"] == "HIT"
    assert second.choices[0].message.content == "fake: hello"
    assert len(upstream.calls()) == 1


def test_upstream_error_after_retries_reaches_the_sdk(server, upstream):
    upstream.default = Reply(status=400)
    portkey = client(server, config={"retry": {"attempts": 2}, "virtual_key": "vk-up"})
    with pytest.raises(openai.BadRequestError) as err:
        portkey.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert err.value.status_code == 400
    assert err.value.body["message"] == "openai error: fake upstream error 400"
    assert len(upstream.calls()) == 1  # a 400 is not retried, by hookgate nor by the SDK


def test_invalid_config_is_a_400_naming_the_field(server):
    portkey = client(server, config={"retry": {"attempts": "many"}})
    with pytest.raises(openai.BadRequestError) as err:
        portkey.chat.completions.create(model="m", messages=HELLO)
    assert "config.retry.attempts" in err.value.body["message"]


def test_gateway_key_as_the_sdk_api_key(make_gateway, serve):
    gateway = make_gateway("""
        [gateway]
        plugins = ["mock"]
        default_provider = "mock"
        [server]
        api_keys = ["pk-gateway"]
    """)
    with serve(gateway) as server:
        ok = client(server, api_key="pk-gateway").chat.completions.create(model="m", messages=HELLO)
        assert ok.choices[0].message.content == "[mock] you said: hello"
        with pytest.raises(openai.AuthenticationError):
            client(server).chat.completions.create(model="m", messages=HELLO)
        with pytest.raises(openai.AuthenticationError):
            client(server, api_key="pk-wrong").chat.completions.create(model="m", messages=HELLO)

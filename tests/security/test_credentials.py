"""Finding 1: a key the operator holds goes only to its own host. A request that pairs one
with a host it chose is a 400 saying why (unless the virtual key allows it in so many words);
the caller's own key may go to an allowed custom host. Over a real socket, with a recording
TCP listener as the host the caller chose."""

from __future__ import annotations

import json

import httpx
import pytest
from hookgate import Gateway

HELLO = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}
SECRETS = [
    b"sk-plugin-openai",
    b"sk-preset-deepseek",
    b"sk-plugin-anthropic",
    b"g-plugin-gemini",
    b"az-plugin-azure",
    b"sk-virtual-secret",
    b"sk-stored-config",
]


@pytest.fixture
def server(write_toml, serve, fake_openai):
    gateway = Gateway.from_toml(
        write_toml(f"""
            [gateway]
            plugins = ["mock", "openai", "anthropic", "gemini", "azure-openai"]
            [plugins.openai]
            base_url = "{fake_openai.url}"
            api_key = "sk-plugin-openai"
            [plugins.openai.upstreams.deepseek]
            api_key = "sk-preset-deepseek"
            [plugins.anthropic]
            api_key = "sk-plugin-anthropic"
            [plugins.gemini]
            api_key = "g-plugin-gemini"
            [plugins.azure-openai]
            api_key = "az-plugin-azure"
            resource_name = "contoso"
            [virtual_keys.openai-prod]
            provider = "openai"
            api_key = "sk-virtual-secret"
            [virtual_keys.openai-pinned]
            provider = "openai"
            api_key = "sk-virtual-secret"
            custom_host = "{fake_openai.url}"
            [virtual_keys.shareable]
            provider = "openai"
            api_key = "sk-shareable"
            allow_caller_host = true
            [configs.pc-stored]
            targets = [{{ api_key = "sk-stored-config" }}]
        """)
    )
    with serve(gateway) as running:
        yield running


def chat(server, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/chat/completions", json=HELLO, headers=headers, timeout=10)


def config(**fields: object) -> dict[str, str]:
    return {"x-portkey-config": json.dumps(fields)}


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(
            lambda h: config(virtual_key="openai-prod", custom_host=h), id="vk+config-host"
        ),
        pytest.param(
            lambda h: {"x-portkey-virtual-key": "openai-prod", "x-portkey-custom-host": h},
            id="vk-header+host-header",
        ),
        pytest.param(
            lambda h: config(targets=[{"virtual_key": "openai-pinned", "custom_host": h}]),
            id="pinned-vk-host-replaced",
        ),
        pytest.param(
            lambda h: {"x-portkey-provider": "openai", "x-portkey-custom-host": h},
            id="plugin-key",
        ),
        pytest.param(
            lambda h: {"x-portkey-provider": "deepseek", "x-portkey-custom-host": h},
            id="preset-key",
        ),
        pytest.param(
            lambda h: {"x-portkey-provider": "anthropic", "x-portkey-custom-host": h},
            id="anthropic-key",
        ),
        pytest.param(
            lambda h: {"x-portkey-provider": "google", "x-portkey-custom-host": h}, id="gemini-key"
        ),
        pytest.param(
            lambda h: {"x-portkey-provider": "azure-openai", "x-portkey-custom-host": h},
            id="azure-key",
        ),
        pytest.param(
            lambda h: {
                "x-portkey-config": "pc-stored",
                "x-portkey-provider": "openai",
                "x-portkey-custom-host": h,
            },
            id="stored-config-key",
        ),
        pytest.param(
            # the portkey-ai SDK's placeholder is not a key of the caller's
            lambda h: {
                "x-portkey-provider": "openai",
                "x-portkey-custom-host": h,
                "authorization": "Bearer OPENAI_API_KEY",
            },
            id="placeholder-key",
        ),
    ],
)
def test_operator_keys_never_reach_a_host_the_caller_chose(server, thief, fake_openai, headers):
    response = chat(server, headers(thief.url + "/v1"))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "credential_host_mismatch"
    assert "own host" in error["message"]
    assert not any(secret.decode() in response.text for secret in SECRETS)
    assert thief.connections == []  # refused before any connection
    assert fake_openai.requests == []


def test_the_callers_own_key_may_go_to_an_allowed_custom_host(server, thief):
    response = chat(
        server,
        {
            "x-portkey-provider": "openai",
            "x-portkey-custom-host": thief.url + "/v1",
            "authorization": "Bearer sk-callers-own",
        },
    )
    assert response.status_code == 200, response.text
    assert b"authorization: Bearer sk-callers-own" in thief.received
    assert not any(secret in thief.received for secret in SECRETS)


def test_a_key_in_the_requests_own_config_is_the_callers(server, thief):
    response = chat(
        server,
        config(provider="anthropic", api_key="sk-ant-callers", custom_host=thief.url + "/v1"),
    )
    # the thief answers OpenAI's shape, not Anthropic's: what matters is what it was sent
    assert response.status_code == 502
    assert b"x-api-key: sk-ant-callers" in thief.received
    assert b"sk-plugin-anthropic" not in thief.received


def test_a_virtual_key_may_allow_caller_hosts_explicitly(server, thief):
    response = chat(server, config(virtual_key="shareable", custom_host=thief.url + "/v1"))
    assert response.status_code == 200, response.text
    assert b"Bearer sk-shareable" in thief.received


def test_operator_declared_hosts_get_their_keys(server, fake_openai):
    assert chat(server, {"x-portkey-virtual-key": "openai-pinned"}).status_code == 200
    assert chat(server, {"x-portkey-virtual-key": "openai-prod"}).status_code == 200
    assert chat(server, {"x-portkey-provider": "openai"}).status_code == 200
    keys = [call.headers["authorization"] for call in fake_openai.calls()]
    assert keys == [
        "Bearer sk-virtual-secret",
        "Bearer sk-virtual-secret",
        "Bearer sk-plugin-openai",
    ]

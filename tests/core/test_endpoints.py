"""Endpoints a plugin declares: mounted by the server, run through the pipeline, served
natively, bridged through another endpoint or refused with a 404 naming the provider."""

from __future__ import annotations

import httpx
import pytest
from hookgate import SettingsError
from hookgate.endpoints import EndpointSpec

PLUGIN = '[plugins.shouting]\nuse = "tests.core.endpoint_plugins:Shouting"'


@pytest.fixture
def server(make_gateway, serve):
    gateway = make_gateway(f"""
        [gateway]
        plugins = ["mock", "shouting", "retry", "fallback"]
        default_provider = "mock"
        {PLUGIN}
    """)
    with serve(gateway) as running:
        yield running


def test_declared_endpoint_served_natively_with_the_pipeline_headers(server):
    answer = httpx.post(
        f"{server.url}/v1/shout",
        json={"model": "m", "text": "hi"},
        headers={"x-portkey-provider": "thingy", "x-portkey-trace-id": "t-1"},
    )
    assert answer.status_code == 200
    assert answer.json() == {"shout": "hi!", "native": True}
    assert answer.headers["x-portkey-provider"] == "thingy"
    assert answer.headers["x-portkey-trace-id"] == "t-1"


def test_declared_endpoint_is_validated_by_its_model(server):
    answer = httpx.post(f"{server.url}/v1/shout", json={"model": "m"})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["param"] == "text" and "text" in error["message"]


def test_bridged_through_chat_for_a_provider_without_the_endpoint(server):
    answer = httpx.post(f"{server.url}/v1/shout", json={"model": "m", "text": "hello"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"shout": "[MOCK] YOU SAID: HELLO", "model": "m"}
    assert answer.headers["x-portkey-provider"] == "mock"


def test_bridged_stream(server):
    with httpx.stream(
        "POST", f"{server.url}/v1/shout", json={"model": "m", "text": "hey", "stream": True}
    ) as answer:
        assert answer.headers["content-type"].startswith("text/event-stream")
        text = answer.read().decode()
    assert "event: shout.delta" in text and "event: shout.done" in text
    assert "[DONE]" not in text  # the bridge says its stream has no done marker


def test_untranslatable_field_is_a_400_naming_it(server):
    answer = httpx.post(f"{server.url}/v1/shout", json={"model": "m", "text": "x", "tone": "calm"})
    assert answer.status_code == 400
    assert "'tone'" in answer.json()["error"]["message"]


def test_provider_without_the_endpoint_is_a_404_naming_both(server):
    answer = httpx.get(f"{server.url}/v1/things/t1")
    assert answer.status_code == 404
    body = answer.json()
    assert body["error"]["code"] == "unsupported_endpoint"
    assert "'mock'" in body["error"]["message"] and "things.get" in body["error"]["message"]


def test_fallback_moves_past_a_provider_without_the_endpoint(server):
    config = '{"strategy": {"mode": "fallback"}, "targets": [{"provider": "mock"}, {"provider": "thingy"}]}'
    answer = httpx.get(f"{server.url}/v1/things/t-1?limit=3", headers={"x-portkey-config": config})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"id": "t-1", "query": "limit=3"}
    assert answer.headers["x-portkey-last-used-option-index"] == "config.targets[1]"


def test_routes_without_v1_answer_the_same(server):
    chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    for path in ("/chat/completions", "/v1/chat/completions"):
        answer = httpx.post(server.url + path, json=chat)
        assert answer.status_code == 200
        assert answer.json()["choices"][0]["message"]["content"] == "[mock] you said: hi"
    assert httpx.get(server.url + "/models").json() == httpx.get(server.url + "/v1/models").json()
    bare = httpx.post(server.url + "/shout", json={"model": "m", "text": "a"})
    assert bare.status_code == 200 and bare.json()["shout"] == "[MOCK] YOU SAID: A"
    assert httpx.get(server.url + "/nothing-here").status_code == 404


def test_two_plugins_claiming_one_endpoint_fail_at_start_up(make_gateway):
    with pytest.raises(SettingsError, match="both declare endpoint 'shout'"):
        make_gateway(f"""
            [gateway]
            plugins = ["mock", "shouting", "again"]
            {PLUGIN}
            [plugins.again]
            use = "tests.core.endpoint_plugins:Shouting"
        """)


def test_a_plugin_cannot_redeclare_a_core_endpoint():
    from hookgate.endpoints import EndpointCatalog

    spec = EndpointSpec(name="embeddings", path="/v1/embeddings2")
    with pytest.raises(SettingsError, match="which the core serves"):
        EndpointCatalog([("p", spec)])


async def test_embedded_request_by_endpoint_name(make_gateway):
    async with make_gateway(f"""
        [gateway]
        plugins = ["mock", "shouting"]
        default_provider = "mock"
        {PLUGIN}
    """) as gw:
        answer = await gw.request("shout", {"model": "m", "text": "yo"})
        assert answer.json()["shout"] == "[MOCK] YOU SAID: YO"

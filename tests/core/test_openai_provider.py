"""The openai provider against a fake OpenAI upstream on loopback."""

from __future__ import annotations

import asyncio

import pytest
from hookgate import CallOptions, ProviderError
from hookgate.errors import UpstreamConnectionError, UpstreamProtocolError, UpstreamTimeoutError

from tests.support.fake_openai import Reply

HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture
async def gw(make_gateway, fake_openai):
    gateway = make_gateway(f"""
        [gateway]
        plugins = ["openai"]
        default_provider = "openai"
        [plugins.openai]
        base_url = "{fake_openai.url}"
        api_key = "sk-deployment-key"
        read_timeout = 1.0
        headers = {{ "x-team" = "core" }}
    """)
    async with gateway:
        yield gateway


async def test_chat_completion_passes_through(gw, fake_openai):
    answer = await gw.chat.completions.create(model="gpt-4o-mini", messages=HELLO, seed=7)
    assert answer.choices[0].message.content == "fake: hello"
    assert answer.system_fingerprint == "fp_fake"  # unknown fields survive
    [call] = fake_openai.calls()
    assert call.json == {"model": "gpt-4o-mini", "messages": HELLO, "seed": 7}
    assert call.headers["authorization"] == "Bearer sk-deployment-key"
    assert call.headers["x-team"] == "core"


async def test_target_key_and_custom_host_win(gw, fake_openai):
    config = {
        "provider": "openai",
        "api_key": "sk-target",
        "custom_host": fake_openai.url,
        "override_params": {"model": "gpt-4o"},
    }
    answer = await gw.chat.completions.create(model="x", messages=HELLO, config=config)
    assert answer.model == "gpt-4o"
    assert fake_openai.calls()[0].headers["authorization"] == "Bearer sk-target"


async def test_callers_key_is_used_for_its_provider(gw, fake_openai):
    await gw.chat.completions.create(
        model="x", messages=HELLO, options=CallOptions(provider="openai", api_key="sk-caller")
    )
    assert fake_openai.calls()[0].headers["authorization"] == "Bearer sk-caller"


async def test_stream_passes_through_event_by_event(gw, fake_openai):
    stream = await gw.chat.completions.create(
        model="gpt-4o-mini", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "fake: hello"
    assert chunks[-1].usage.total_tokens == 3
    assert stream.response.headers["x-request-id"].startswith("req_fake_")


async def test_upstream_error_keeps_status_body_and_retry_after(gw, fake_openai):
    fake_openai.script(Reply(status=429, headers={"retry-after": "2"}))
    with pytest.raises(ProviderError) as err:
        await gw.chat.completions.create(model="m", messages=HELLO)
    error = err.value
    assert error.http_status == 429
    assert error.retry_after == 2.0
    assert error.to_dict() == {
        "error": {
            "message": "openai error: fake upstream error 429",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        },
        "provider": "openai",
    }


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after-ms": "1500"}, 1.5),
        ({"x-ms-retry-after-ms": "250"}, 0.25),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),
    ],
)
async def test_retry_after_variants(gw, fake_openai, headers, seconds):
    fake_openai.script(Reply(status=503, headers=headers))
    with pytest.raises(ProviderError) as err:
        await gw.chat.completions.create(model="m", messages=HELLO)
    assert err.value.retry_after == pytest.approx(seconds)


async def test_dropped_connection_is_502_without_internals(gw, fake_openai):
    fake_openai.script(Reply(drop=True))
    with pytest.raises(UpstreamConnectionError) as err:
        await gw.chat.completions.create(model="m", messages=HELLO)
    body = err.value.to_dict()
    assert err.value.http_status == 502
    assert (
        body["error"]["message"]
        == "openai error: the upstream closed the connection before answering in full"
    )
    assert "Socket" not in str(body) and "Traceback" not in str(body)


async def test_invalid_json_from_upstream_is_502(gw, fake_openai):
    fake_openai.script(Reply(raw=b"<html>oops"))
    with pytest.raises(UpstreamProtocolError) as err:
        await gw.chat.completions.create(model="m", messages=HELLO)
    assert err.value.http_status == 502
    assert "not valid JSON" in err.value.message


async def test_silent_upstream_is_504_after_read_timeout(gw, fake_openai):
    fake_openai.script(Reply(delay=3))
    with pytest.raises(UpstreamTimeoutError) as err:
        await gw.chat.completions.create(model="m", messages=HELLO)
    assert err.value.http_status == 504


async def test_refused_connection_is_502(make_gateway):
    from tests.support.servers import free_port

    gateway = make_gateway(f"""
        [gateway]
        plugins = ["openai"]
        default_provider = "openai"
        [plugins.openai]
        base_url = "http://127.0.0.1:{free_port()}/v1"
    """)
    async with gateway:
        with pytest.raises(UpstreamConnectionError, match="could not connect"):
            await gateway.chat.completions.create(model="m", messages=HELLO)


async def test_stream_dropped_midway_raises(gw, fake_openai):
    fake_openai.script(Reply(drop_after=2))
    stream = await gw.chat.completions.create(model="m", messages=HELLO, stream=True)
    got = []
    with pytest.raises(UpstreamConnectionError):
        async for chunk in stream:
            got.append(chunk)
    assert len(got) == 2


async def test_closing_a_stream_early_releases_the_upstream(gw, fake_openai):
    fake_openai.script(Reply(stream_delay=0.2))
    stream = await gw.chat.completions.create(model="m", messages=HELLO, stream=True)
    await anext(stream)
    await stream.aclose()
    for _ in range(50):
        if fake_openai.calls()[0].outcome == "disconnected":
            break
        await asyncio.sleep(0.05)
    assert fake_openai.calls()[0].outcome == "disconnected"


async def test_embeddings_completions_models(gw, fake_openai):
    emb = await gw.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert len(emb.data) == 2
    done = await gw.completions.create(model="gpt-3.5-turbo-instruct", prompt="hi")
    assert done.choices[0].text == "fake: hi"
    ctx = gw.context("models", {})
    response = await gw.handle(ctx)
    assert response.json()["data"][0]["id"] == "gpt-4o-mini"
    assert [r.path for r in fake_openai.requests] == [
        "/v1/embeddings",
        "/v1/completions",
        "/v1/models",
    ]


async def test_a_key_echoed_by_the_upstream_never_reaches_the_client(gw, fake_openai):
    echo = {
        "error": {
            "message": "Incorrect API key provided: sk-target-secret-123.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }
    fake_openai.script(Reply(status=401, json=echo))
    config = {"provider": "openai", "api_key": "sk-target-secret-123"}
    with pytest.raises(ProviderError) as err:
        await gw.chat.completions.create(model="m", messages=HELLO, config=config)
    rendered = err.value.to_json().decode()
    assert "sk-target-secret-123" not in rendered and "sk-target-secret-123" not in str(
        err.value.body
    )
    assert (
        err.value.to_dict()["error"]["message"]
        == "openai error: Incorrect API key provided: [redacted]."
    )
    assert err.value.http_status == 401

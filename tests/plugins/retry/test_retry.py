"""The retry plugin in a real Gateway, against the fake OpenAI upstream over real HTTP."""

from __future__ import annotations

import time

import httpx
import pytest
from hookgate import Gateway, ProviderError

from tests.support.fake_openai import Reply

HELLO = [{"role": "user", "content": "hello"}]


def settings(fake_url: str, retry: dict | None = None, plugins=("openai", "retry")) -> dict:
    table = {"initial_delay": 0.01, "jitter": False}
    table.update(retry or {})
    return {
        "gateway": {"plugins": list(plugins), "default_provider": "openai"},
        "plugins": {
            "openai": {"base_url": fake_url, "api_key": "sk-test-key"},
            **({"retry": table} if "retry" in plugins else {}),
        },
    }


def retry_config(**retry) -> dict:
    return {"provider": "openai", "retry": retry}


async def ask(gw: Gateway, config: dict | None = None, **body):
    return await gw.chat.completions.create(
        model="gpt-4o-mini", messages=HELLO, config=config, **body
    )


async def fail(gw: Gateway, config: dict | None = None, **body):
    ctx = gw.context(
        "chat.completions", {"model": "gpt-4o-mini", "messages": HELLO, **body}, config=config
    )
    with pytest.raises(ProviderError) as err:
        await gw.handle(ctx)
    return err.value, ctx


async def test_429_twice_then_success(fake_openai):
    fake_openai.script(429, 429)
    async with Gateway(settings(fake_openai.url)) as gw:
        answer = await ask(gw, retry_config(attempts=3))
    assert answer.choices[0].message.content
    assert len(fake_openai.calls()) == 3
    assert answer.hookgate.retry_attempt_count == 2
    assert [a.status for a in answer.hookgate.attempts] == [429, 429, 200]


async def test_503_forever_gives_attempts_plus_one_calls_and_the_upstream_body(fake_openai):
    body = {"error": {"message": "overloaded, go away", "type": "server_error", "code": "x1"}}
    fake_openai.default = Reply(status=503, json=body)
    async with Gateway(settings(fake_openai.url)) as gw:
        error, ctx = await fail(gw, retry_config(attempts=2))
    assert len(fake_openai.calls()) == 3
    assert error.http_status == 503
    assert error.to_dict()["error"]["code"] == "x1"
    assert "overloaded, go away" in error.to_dict()["error"]["message"]
    assert ctx.retry_attempt_count == -1


async def test_a_block_without_attempts_means_three_retries(fake_openai):
    fake_openai.default = Reply(status=500)
    async with Gateway(settings(fake_openai.url)) as gw:
        await fail(gw, {"provider": "openai", "retry": {}})
    assert len(fake_openai.calls()) == 4


async def test_attempts_are_capped(fake_openai):
    fake_openai.default = Reply(status=502)
    async with Gateway(settings(fake_openai.url, {"initial_delay": 0.001})) as gw:
        await fail(gw, retry_config(attempts=50))
    assert len(fake_openai.calls()) == 6  # 1 + Portkey's cap of 5
    fake_openai.reset()
    async with Gateway(settings(fake_openai.url, {"max_attempts": 1, "attempts": 1})) as gw:
        await fail(gw, retry_config(attempts=50))
    assert len(fake_openai.calls()) == 2


@pytest.mark.parametrize("status", [400, 401, 404, 422])
async def test_caller_errors_are_not_retried(fake_openai, status):
    fake_openai.script(status)
    async with Gateway(settings(fake_openai.url)) as gw:
        error, ctx = await fail(gw, retry_config(attempts=3))
    assert error.http_status == status
    assert len(fake_openai.calls()) == 1
    assert ctx.retry_attempt_count == 0


async def test_retry_after_header_is_honoured(fake_openai):
    fake_openai.script(Reply(status=429, headers={"retry-after": "2"}))
    async with Gateway(settings(fake_openai.url)) as gw:
        answer = await ask(gw, retry_config(attempts=1))
    first, second = fake_openai.calls()
    assert 1.9 <= second.at - first.at < 4.0
    assert answer.hookgate.attempts[1].delay == pytest.approx(2.0)


async def test_retry_after_ms_and_its_cap(fake_openai):
    fake_openai.script(
        Reply(status=503, headers={"retry-after-ms": "150"}),
        Reply(status=503, headers={"retry-after": "30"}),
    )
    async with Gateway(settings(fake_openai.url, {"max_retry_after": 0.05})) as gw:
        answer = await ask(gw, retry_config(attempts=2))
    delays = [a.delay for a in answer.hookgate.attempts]
    assert delays == [0, pytest.approx(0.05), pytest.approx(0.05)]


async def test_config_can_ignore_retry_after(fake_openai):
    fake_openai.script(Reply(status=429, headers={"retry-after": "5"}))
    async with Gateway(settings(fake_openai.url)) as gw:
        config = {"provider": "openai", "retry": {"attempts": 1, "use_retry_after_header": False}}
        answer = await ask(gw, config)
    assert answer.hookgate.attempts[1].delay == pytest.approx(0.01)


async def test_exponential_backoff_without_jitter_is_exact(fake_openai):
    fake_openai.default = Reply(status=503)
    async with Gateway(settings(fake_openai.url)) as gw:
        _, ctx = await fail(gw, retry_config(attempts=4))
    assert [a.delay for a in ctx.attempts] == pytest.approx([0, 0.01, 0.02, 0.04, 0.08])
    at = [call.at for call in fake_openai.calls()]
    assert at[4] - at[3] >= 0.075


async def test_full_jitter_stays_under_the_exponential_bound(fake_openai):
    fake_openai.default = Reply(status=503)
    retry = {"jitter": True, "initial_delay": 0.02, "max_delay": 0.05}
    async with Gateway(settings(fake_openai.url, retry)) as gw:
        delays = []
        for _ in range(5):
            _, ctx = await fail(gw, retry_config(attempts=3))
            delays.append([a.delay for a in ctx.attempts][1:])
    for first, second, third in delays:
        assert 0 <= first <= 0.02 and 0 <= second <= 0.04 and 0 <= third <= 0.05
    assert len({round(d, 6) for row in delays for d in row}) > 3  # random, not fixed


async def test_timeouts_are_retried(fake_openai):
    fake_openai.script(Reply(delay=1.0), Reply(delay=1.0))
    async with Gateway(settings(fake_openai.url)) as gw:
        # A target's own request_timeout (a top-level one is the whole request's budget).
        config = {
            "retry": {"attempts": 2},
            "targets": [{"provider": "openai", "request_timeout": 200}],
        }
        answer = await ask(gw, config)
    assert [a.status for a in answer.hookgate.attempts] == [408, 408, 200]
    assert len(fake_openai.calls()) == 3


async def test_dropped_connections_are_retried(fake_openai):
    fake_openai.script(Reply(drop=True))
    async with Gateway(settings(fake_openai.url)) as gw:
        answer = await ask(gw, retry_config(attempts=1))
    assert [r.outcome for r in fake_openai.calls()] == ["dropped", "answered"]
    assert answer.hookgate.attempts[0].status is None
    assert answer.hookgate.retry_attempt_count == 1


async def test_connection_refused_is_retried():
    dead = "http://127.0.0.1:9/v1"  # discard port: nothing listens
    async with Gateway(settings(dead)) as gw:
        error, ctx = await fail(gw, retry_config(attempts=2))
    assert len(ctx.attempts) == 3
    assert error.http_status == 502
    assert ctx.retry_attempt_count == -1


async def test_stream_is_retried_before_its_first_chunk(fake_openai):
    fake_openai.script(503, Reply(drop=True))
    async with Gateway(settings(fake_openai.url)) as gw:
        stream = await ask(gw, retry_config(attempts=2), stream=True)
        chunks = [chunk async for chunk in stream]
    assert chunks and len(fake_openai.calls()) == 3
    assert stream.hookgate.retry_attempt_count == 2


async def test_stream_is_never_retried_after_its_first_chunk(fake_openai):
    fake_openai.script(Reply(drop_after=2))
    async with Gateway(settings(fake_openai.url)) as gw:
        stream = await ask(gw, retry_config(attempts=3), stream=True)
        received = []
        with pytest.raises(ProviderError):
            async for chunk in stream:
                received.append(chunk)
    assert len(received) == 2
    assert len(fake_openai.calls()) == 1


async def test_per_request_config_overrides_plugins_toml(fake_openai):
    fake_openai.default = Reply(status=503)
    toml = {"every_request": True, "attempts": 1, "on_status_codes": [503]}
    async with Gateway(settings(fake_openai.url, toml)) as gw:
        await fail(gw, {"provider": "openai"})
        assert len(fake_openai.calls()) == 2  # plugins.toml: every request, 1 retry
        fake_openai.requests.clear()
        await fail(gw, retry_config(attempts=3))
        assert len(fake_openai.calls()) == 4  # the config's attempts
        fake_openai.requests.clear()
        await fail(gw, retry_config(attempts=3, on_status_codes=[429]))
        assert len(fake_openai.calls()) == 1  # the config's codes exclude 503


async def test_per_target_block_overrides_the_top_level_one(fake_openai):
    fake_openai.default = Reply(status=503)
    async with Gateway(settings(fake_openai.url)) as gw:
        config = {
            "retry": {"attempts": 4},
            "targets": [{"provider": "openai", "retry": {"attempts": 1}}],
        }
        await fail(gw, config)
    assert len(fake_openai.calls()) == 2


async def test_no_retry_block_no_retry_by_default(fake_openai):
    fake_openai.script(503)
    async with Gateway(settings(fake_openai.url)) as gw:
        _, ctx = await fail(gw, {"provider": "openai"})
    assert len(fake_openai.calls()) == 1
    assert ctx.retry_attempt_count == 0


async def test_disabled_plugin_means_no_retries(fake_openai):
    fake_openai.default = Reply(status=503)
    async with Gateway(settings(fake_openai.url, plugins=("openai",))) as gw:
        await fail(gw, retry_config(attempts=3))
    assert len(fake_openai.calls()) == 1


async def test_budget_stops_retries_that_would_start_too_late(fake_openai):
    fake_openai.default = Reply(status=503, headers={"retry-after": "1"})
    async with Gateway(settings(fake_openai.url, {"budget": 0.5})) as gw:
        started = time.perf_counter()
        error, _ = await fail(gw, retry_config(attempts=3))
    assert time.perf_counter() - started < 0.5
    assert len(fake_openai.calls()) == 1
    assert error.http_status == 503


def test_over_http_headers_count_retries_and_minus_one(fake_openai, serve):
    fake_openai.script(503)
    gw = Gateway(settings(fake_openai.url))
    with serve(gw) as server:
        url = f"{server.url}/v1/chat/completions"
        body = {"model": "gpt-4o-mini", "messages": HELLO}
        config = '{"provider": "openai", "retry": {"attempts": 2}}'
        ok = httpx.post(url, json=body, headers={"x-portkey-config": config})
        assert ok.status_code == 200
        assert ok.headers["x-portkey-retry-attempt-count"] == "1"
        fake_openai.default = Reply(status=503)
        failed = httpx.post(url, json=body, headers={"x-portkey-config": config})
    assert failed.status_code == 503
    assert failed.headers["x-portkey-retry-attempt-count"] == "-1"
    assert failed.json()["error"]["type"] == "server_error"
    assert len(fake_openai.calls()) == 2 + 3


def test_settings_are_validated():
    from hookgate import SettingsError

    with pytest.raises(SettingsError, match="attempts"):
        Gateway(settings("http://127.0.0.1:9/v1", {"attempts": 9}))
    with pytest.raises(SettingsError, match="bogus"):
        Gateway(settings("http://127.0.0.1:9/v1", {"bogus": 1}))


async def test_anthropic_overloaded_529_is_retried_by_default(make_gateway, fake_openai):
    fake_openai.script(529, 529)
    async with make_gateway(f"""
        [gateway]
        plugins = ["openai", "retry"]
        default_provider = "openai"
        [plugins.openai]
        base_url = "{fake_openai.url}"
        [plugins.retry]
        initial_delay = 0.01
    """) as gw:
        answer = await gw.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "hi"}],
            config={"retry": {"attempts": 3}},
        )
    assert answer.hookgate.retry_attempt_count == 2
    assert len(fake_openai.calls()) == 3

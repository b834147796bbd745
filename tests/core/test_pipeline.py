"""The request flow, driven through the embedded API with the mock provider and test plugins."""

from __future__ import annotations

import asyncio
import time

import pytest
import structlog
from hookgate import (
    BadRequestError,
    CallOptions,
    ConfigError,
    Gateway,
    GatewayError,
    ProviderError,
    SyncGateway,
)
from hookgate.errors import RequestTimeoutError, UpstreamConnectionError

from tests.core.plugins_for_tests import (
    BrokenObserver,
    BrokenSyncObserver,
    FixedCache,
    NextTarget,
    PickLast,
    Recorder,
    Rejecter,
    RetryAlways,
)

MOCK_ONLY = {"gateway": {"plugins": ["mock"], "default_provider": "mock"}}
HELLO = [{"role": "user", "content": "hello there"}]


@pytest.fixture
async def gw():
    async with Gateway(MOCK_ONLY) as gateway:
        yield gateway


async def test_answer_and_outcome(gw):
    answer = await gw.chat.completions.create(model="m1", messages=HELLO)
    assert answer.choices[0].message.content == "[mock] you said: hello there"
    assert answer.model == "m1"
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens
    outcome = answer.hookgate
    assert outcome.provider == "mock"
    assert outcome.last_used_option == "config"
    assert outcome.retry_attempt_count == 0
    assert outcome.cache_status == "DISABLED"
    assert [a.status for a in outcome.attempts] == [200]
    assert set(outcome.timings) == {"pre_request", "cache_lookup", "upstream", "post_response"}


async def test_unknown_request_fields_reach_the_provider(gw):
    seen = []

    class Spy:
        @__import__("hookgate").hookimpl
        async def pre_request(self, ctx):
            seen.append(ctx.request_for(ctx.plan.root))

    gw.register(Spy(), "spy")
    await gw.chat.completions.create(
        model="m", messages=HELLO, brand_new_param={"x": 1}, temperature=0.2
    )
    assert seen[0]["brand_new_param"] == {"x": 1}
    assert seen[0]["temperature"] == 0.2


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": HELLO}, "model"),
        ({"model": "m"}, "messages"),
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": [{"content": "no role"}]}, "messages"),
    ],
)
async def test_invalid_requests_are_400_naming_the_field(gw, body, param):
    with pytest.raises(BadRequestError) as err:
        await gw.chat.completions.create(**body)
    assert err.value.http_status == 400
    assert err.value.param == param
    assert param in err.value.message


async def test_pre_request_error_rejects_with_its_status(gw):
    recorder = Recorder()
    gw.register(Rejecter(), "rejecter")
    gw.register(recorder, "recorder")
    with pytest.raises(GatewayError) as err:
        await gw.chat.completions.create(model="m", messages=HELLO)
    assert err.value.http_status == 403
    assert err.value.to_dict()["error"]["code"] == "forbidden"
    # observers still see the rejected request, once
    assert [name for name, _ in recorder.seen if name == "post_response"] == ["post_response"]


async def test_failing_observers_never_break_the_answer(gw):
    recorder = Recorder()
    gw.register(BrokenObserver(), "broken")
    gw.register(BrokenSyncObserver(), "broken_sync")
    gw.register(recorder, "recorder")
    with structlog.testing.capture_logs() as logs:
        answer = await gw.chat.completions.create(model="m", messages=HELLO)
    assert answer.choices[0].message.content.startswith("[mock]")
    failed = {(e["plugin"], e["hook"]) for e in logs if e["event"] == "plugin_hook_failed"}
    assert failed == {("broken", "post_response"), ("broken_sync", "post_response")}
    assert ("post_response", (200, True, 0, None)) in recorder.seen  # the others still ran


async def test_first_cache_hit_wins_and_later_lookups_never_run(gw):
    miss, hit, never = (
        FixedCache(None),
        FixedCache(_completion("cached")),
        FixedCache(_completion("late")),
    )
    gw.register(never, "never")
    gw.register(hit, "hit")
    gw.register(miss, "miss")  # registered last: asked first
    answer = await gw.chat.completions.create(model="m", messages=HELLO)
    assert answer.choices[0].message.content == "cached"
    assert answer.hookgate.cache_status == "HIT"
    assert answer.hookgate.attempts == ()
    assert (miss.lookups, hit.lookups, never.lookups) == (1, 1, 0)


async def test_retry_decision_calls_the_same_target_again(gw):
    gw.register(RetryAlways(delay=0.01, limit=3), "retry")
    config = {"provider": "mock", "mock": {"fail_status": 503, "fail_times": 2}}
    answer = await gw.chat.completions.create(model="m", messages=HELLO, config=config)
    attempts = answer.hookgate.attempts
    assert [a.status for a in attempts] == [503, 503, 200]
    assert [a.retry for a in attempts] == [0, 1, 2]
    assert attempts[1].delay == pytest.approx(0.01)
    assert answer.hookgate.retry_attempt_count == 2


async def test_exhausted_retries_give_the_upstream_error_and_minus_one(gw):
    gw.register(RetryAlways(limit=2), "retry")
    config = {"provider": "mock", "mock": {"fail_status": 503}}
    ctx = gw.context("chat.completions", {"model": "m", "messages": HELLO}, config=config)
    with pytest.raises(ProviderError) as err:
        await gw.handle(ctx)
    assert err.value.http_status == 503
    assert err.value.to_dict() == {
        "error": {
            "message": "mock error: mock failure 503",
            "type": "server_error",
            "param": None,
            "code": None,
        },
        "provider": "mock",
    }
    assert len(ctx.attempts) == 3
    assert ctx.retry_attempt_count == -1


async def test_without_a_decision_the_core_stops_after_one_call(gw):
    config = {"provider": "mock", "mock": {"fail_status": 429, "retry_after": 3}}
    ctx = gw.context("chat.completions", {"model": "m", "messages": HELLO}, config=config)
    with pytest.raises(ProviderError) as err:
        await gw.handle(ctx)
    assert err.value.http_status == 429 and err.value.retry_after == 3
    assert len(ctx.attempts) == 1


async def test_fallback_decision_moves_to_the_next_target(gw):
    gw.register(NextTarget(), "next")
    config = {
        "strategy": {"mode": "fallback"},
        "targets": [
            {"provider": "mock", "mock": {"fail_status": 500}},
            {"provider": "mock", "override_params": {"model": "backup"}},
        ],
    }
    answer = await gw.chat.completions.create(model="m", messages=HELLO, config=config)
    assert answer.model == "backup"
    assert answer.hookgate.last_used_option == "config.targets[1]"
    assert [(a.path, a.status) for a in answer.hookgate.attempts] == [
        ("config.targets[0]", 500),
        ("config.targets[1]", 200),
    ]


async def test_route_order_from_pre_request_picks_the_target(gw):
    gw.register(PickLast(), "pick")
    config = {
        "strategy": {"mode": "loadbalance"},
        "targets": [
            {"provider": "mock", "override_params": {"model": "a"}},
            {"provider": "mock", "override_params": {"model": "b"}},
        ],
    }
    answer = await gw.chat.completions.create(model="m", messages=HELLO, config=config)
    assert answer.model == "b"
    assert answer.hookgate.last_used_option == "config.targets[1]"


async def test_strategy_without_its_plugin_is_a_400_naming_the_plugin(gw):
    config = {"strategy": {"mode": "fallback"}, "targets": [{"provider": "mock"}]}
    with pytest.raises(ConfigError, match="enable the 'fallback' plugin") as err:
        await gw.chat.completions.create(model="m", messages=HELLO, config=config)
    assert err.value.http_status == 400


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"provider": "nope"}, r"unknown provider 'nope' \(enabled providers: mock\)"),
        ({"targets": []}, "config.targets must not be empty"),
        (
            {"targets": [{"provider": "mock", "weight": -1}]},
            r"config.targets\[0\].weight: Input should be greater",
        ),
        ({"retry": {"attempts": "many"}}, "config.retry.attempts"),
        (
            {"strategy": {"mode": "conditional"}, "targets": [{"provider": "mock"}]},
            "config.strategy.mode",
        ),
        ({"virtual_key": "nope"}, "unknown virtual key 'nope'"),
        ({"provider": "mock", "custom_host": "http://169.254.169.254/v1"}, "Invalid custom host"),
        ({"provider": "mock", "custom_host": "file:///etc/passwd"}, "Invalid custom host"),
        ("{not json", "config is not valid JSON"),
        ("pc-missing", "unknown config id 'pc-missing'"),
    ],
)
async def test_bad_configs_are_400_saying_what_is_wrong(gw, config, message):
    with pytest.raises(ConfigError, match=message) as err:
        await gw.chat.completions.create(model="m", messages=HELLO, config=config)
    assert err.value.http_status == 400


async def test_camel_case_config_keys_are_accepted(gw):
    gw.register(NextTarget(), "next")
    config = {
        "strategy": {"mode": "fallback", "onStatusCodes": [500]},
        "targets": [{"provider": "mock", "overrideParams": {"model": "camel"}}],
    }
    answer = await gw.chat.completions.create(model="m", messages=HELLO, config=config)
    assert answer.model == "camel"


async def test_named_config_and_virtual_key():
    settings = {
        "gateway": {"plugins": ["mock"]},
        "virtual_keys": {"vk-mock": {"provider": "mock"}},
        "configs": {"pc-mock": {"virtual_key": "vk-mock", "override_params": {"model": "named"}}},
    }
    async with Gateway(settings) as gw:
        answer = await gw.chat.completions.create(model="m", messages=HELLO, config="pc-mock")
        assert answer.model == "named"
        answer = await gw.chat.completions.create(
            model="m", messages=HELLO, options={"virtual_key": "vk-mock"}
        )
        assert answer.hookgate.provider == "mock"


async def test_request_timeout_is_a_408_on_time():
    settings = {
        "gateway": {"plugins": ["mock"], "default_provider": "mock"},
        "plugins": {"mock": {"latency_ms": 5000}},
    }
    async with Gateway(settings) as gw:
        started = time.perf_counter()
        with pytest.raises(RequestTimeoutError) as err:
            await gw.chat.completions.create(
                model="m", messages=HELLO, options=CallOptions(timeout=0.2)
            )
        elapsed = time.perf_counter() - started
    assert err.value.http_status == 408
    assert err.value.to_dict()["error"]["type"] == "timeout_error"
    assert 0.2 <= elapsed < 1.0


async def test_config_request_timeout_in_milliseconds(gw):
    config = {"provider": "mock", "request_timeout": 100, "mock": {"latency_ms": 3000}}
    started = time.perf_counter()
    with pytest.raises(RequestTimeoutError):
        await gw.chat.completions.create(model="m", messages=HELLO, config=config)
    assert time.perf_counter() - started < 1.0


async def test_per_target_timeout_is_a_provider_error_others_can_act_on(gw):
    gw.register(NextTarget(), "next")
    config = {
        "strategy": {"mode": "fallback"},
        "targets": [
            {"provider": "mock", "request_timeout": 50, "mock": {"latency_ms": 3000}},
            {"provider": "mock"},
        ],
    }
    answer = await gw.chat.completions.create(model="m", messages=HELLO, config=config)
    assert [(a.status, a.error) for a in answer.hookgate.attempts] == [
        (408, "request_timeout"),
        (200, None),
    ]


async def test_retry_delay_beyond_the_budget_answers_at_once():
    async with Gateway(MOCK_ONLY) as gw:
        gw.register(RetryAlways(delay=5.0, limit=3), "retry")
        config = {"provider": "mock", "mock": {"fail_status": 503}}
        started = time.perf_counter()
        with pytest.raises(ProviderError):
            await gw.chat.completions.create(
                model="m", messages=HELLO, config=config, options=CallOptions(timeout=1.0)
            )
        assert time.perf_counter() - started < 0.5


async def test_stream_observers_run_once_after_the_last_event(gw):
    recorder = Recorder()
    gw.register(recorder, "recorder")
    stream = await gw.chat.completions.create(model="m", messages=HELLO, stream=True)
    assert [name for name, _ in recorder.seen] == ["pre_request"]
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "[mock] you said: hello there"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert recorder.seen[-1] == ("post_response", (200, True, len(chunks), None))


async def test_stream_failing_before_its_first_event_is_retried(gw):
    gw.register(RetryAlways(limit=1), "retry")
    config = {"provider": "mock", "mock": {"drop_stream_after": 0}}
    ctx = gw.context(
        "chat.completions", {"model": "m", "messages": HELLO, "stream": True}, config=config
    )
    with pytest.raises(UpstreamConnectionError):
        await gw.handle(ctx)
    assert [a.error for a in ctx.attempts] == ["upstream_connection_error"] * 2


async def test_stream_dropped_midway_raises_and_observers_see_the_error(gw):
    recorder = Recorder()
    gw.register(recorder, "recorder")
    gw.register(RetryAlways(limit=3), "retry")
    config = {"provider": "mock", "mock": {"drop_stream_after": 3}}
    stream = await gw.chat.completions.create(model="m", messages=HELLO, stream=True, config=config)
    received = []
    with pytest.raises(UpstreamConnectionError):
        async for chunk in stream:
            received.append(chunk)
    assert len(received) == 3  # never retried once bytes went out
    status, completed, events, error = recorder.seen[-1][1]
    assert (status, completed, events) == (502, False, 3)
    assert isinstance(error, UpstreamConnectionError)


async def test_a_plugin_bug_is_a_clean_500(gw):
    class Buggy:
        @__import__("hookgate").hookimpl
        async def pre_request(self, ctx):
            raise KeyError("oops")

    gw.register(Buggy(), "buggy")
    with structlog.testing.capture_logs() as logs, pytest.raises(GatewayError) as err:
        await gw.chat.completions.create(model="m", messages=HELLO)
    assert err.value.http_status == 500
    assert err.value.message == "internal error (KeyError)"
    assert any(e["event"] == "request_failed" for e in logs)


async def test_embeddings_and_completions(gw):
    emb = await gw.embeddings.create(model="e", input=["a", "b"])
    assert [d.index for d in emb.data] == [0, 1] and len(emb.data[0].embedding) == 8
    done = await gw.completions.create(model="c", prompt="say hi")
    assert done.choices[0].text == "[mock] say hi"


def test_sync_facade():
    with SyncGateway(Gateway(MOCK_ONLY)) as gw:
        answer = gw.chat.completions.create(model="m", messages=HELLO)
        assert answer.choices[0].message.content == "[mock] you said: hello there"
        chunks = list(gw.chat.completions.create(model="m", messages=HELLO, stream=True))
        assert chunks[-1].choices[0].finish_reason == "stop"


async def test_sync_facade_refuses_a_running_loop():
    sync = SyncGateway(Gateway(MOCK_ONLY))
    with pytest.raises(RuntimeError, match="inside a running event loop"):
        sync.chat.completions.create(model="m", messages=HELLO)
    await asyncio.sleep(0)


def _completion(content: str) -> dict:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
    }


async def test_aliases_resolve_to_the_canonical_provider(gw):
    class Nicknamed:
        providers = ("canonical", "nick")
        aliases = {"nick": "canonical"}

        @__import__("hookgate").hookimpl
        def call_provider(self, ctx, target):
            if target.provider != "canonical":
                return None
            key = target.api_key

            async def answer():
                return __import__("hookgate").Response.from_json(_completion(f"key={key}"))

            return answer()

    gw.register(Nicknamed(), "nicknamed")
    answer = await gw.chat.completions.create(
        model="m", messages=HELLO, options=CallOptions(provider="NICK", api_key="caller-key")
    )
    assert answer.hookgate.provider == "canonical"
    assert answer.choices[0].message.content == "key=caller-key"

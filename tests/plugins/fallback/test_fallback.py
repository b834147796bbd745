"""Fallback and load balancing in a real Gateway, against the fake OpenAI upstream and the mock.

One fake upstream serves every target; targets differ by ``override_params.model``, so the
model each upstream call carried shows which target was called, in which order.
"""

from __future__ import annotations

import httpx
import pytest
from hookgate import ConfigError, Gateway, ProviderError

from tests.support.fake_openai import Reply

HELLO = [{"role": "user", "content": "hello"}]


def settings(fake_url: str, fallback: dict | None = None, plugins=("openai", "retry", "fallback")):
    return {
        "gateway": {"plugins": list(plugins), "default_provider": "openai"},
        "plugins": {
            "openai": {"base_url": fake_url, "api_key": "sk-test-key"},
            "retry": {"initial_delay": 0.01, "jitter": False},
            **({"fallback": fallback or {}} if "fallback" in plugins else {}),
        },
    }


def target(model: str, **extra) -> dict:
    return {"provider": "openai", "override_params": {"model": model}, **extra}


def fallback(*targets, **strategy) -> dict:
    return {"strategy": {"mode": "fallback", **strategy}, "targets": list(targets)}


def models(fake) -> list[str]:
    return [call.json["model"] for call in fake.calls()]


async def ask(gw: Gateway, config: dict, **body):
    return await gw.chat.completions.create(
        model="gpt-4o-mini", messages=HELLO, config=config, **body
    )


async def fail(gw: Gateway, config: dict):
    ctx = gw.context("chat.completions", {"model": "gpt-4o-mini", "messages": HELLO}, config=config)
    with pytest.raises(ProviderError) as err:
        await gw.handle(ctx)
    return err.value, ctx


@pytest.fixture
async def gw(fake_openai):
    async with Gateway(settings(fake_openai.url)) as gateway:
        yield gateway


@pytest.mark.parametrize("failure", [503, 401, 429, 400])
async def test_fallback_without_codes_moves_on_for_any_error(gw, fake_openai, failure):
    fake_openai.script(failure)
    answer = await ask(gw, fallback(target("primary"), target("secondary")))
    assert models(fake_openai) == ["primary", "secondary"]
    assert answer.model == "secondary"
    assert answer.hookgate.last_used_option == "config.targets[1]"


async def test_fallback_on_timeout_and_dropped_connection(gw, fake_openai):
    fake_openai.script(Reply(delay=1.0), Reply(drop=True))
    config = fallback(target("slow", request_timeout=150), target("dropping"), target("healthy"))
    answer = await ask(gw, config)
    assert models(fake_openai) == ["slow", "dropping", "healthy"]
    assert [a.status for a in answer.hookgate.attempts] == [408, None, 200]


async def test_no_fallback_for_a_status_outside_explicit_codes(gw, fake_openai):
    fake_openai.script(500)
    error, ctx = await fail(gw, fallback(target("a"), target("b"), on_status_codes=[503, 429]))
    assert error.http_status == 500
    assert models(fake_openai) == ["a"]
    assert ctx.last_used_option == "config.targets[0]"


async def test_explicit_codes_cover_the_listed_status(gw, fake_openai):
    fake_openai.script(429)
    answer = await ask(gw, fallback(target("a"), target("b"), on_status_codes=[429]))
    assert answer.model == "b"


async def test_the_last_targets_error_is_the_answer(gw, fake_openai):
    fake_openai.script(503, Reply(status=502, json={"error": {"message": "last one down"}}))
    error, ctx = await fail(gw, fallback(target("a"), target("b")))
    assert error.http_status == 502
    assert "last one down" in error.to_dict()["error"]["message"]
    assert ctx.last_used_option == "config.targets[1]"


async def test_caller_errors_can_be_excluded(fake_openai):
    async with Gateway(settings(fake_openai.url, {"fallback_on_client_errors": False})) as gw:
        fake_openai.script(400)
        error, _ = await fail(gw, fallback(target("a"), target("b")))
        assert error.http_status == 400 and models(fake_openai) == ["a"]
        fake_openai.reset()
        fake_openai.script(401)
        answer = await ask(gw, fallback(target("a"), target("b")))
        assert answer.model == "b"


async def test_override_params_reach_the_upstream(gw, fake_openai):
    fake_openai.script(503)
    config = fallback(
        target("a", override_params={"model": "a", "temperature": 0.1}),
        {"provider": "openai", "override_params": {"model": "b", "max_tokens": 7}},
    )
    await ask(gw, config)
    first, second = (call.json for call in fake_openai.calls())
    assert (first["model"], first["temperature"]) == ("a", 0.1)
    assert (second["model"], second["max_tokens"]) == ("b", 7)
    assert "temperature" not in second


async def test_retry_is_spent_before_fallback(gw, fake_openai):
    fake_openai.script(503, 503, 503)
    config = fallback(target("a", retry={"attempts": 2}), target("b", retry={"attempts": 2}))
    answer = await ask(gw, config)
    assert models(fake_openai) == ["a", "a", "a", "b"]
    assert [(a.path, a.retry) for a in answer.hookgate.attempts] == [
        ("config.targets[0]", 0),
        ("config.targets[0]", 1),
        ("config.targets[0]", 2),
        ("config.targets[1]", 0),
    ]
    assert answer.hookgate.retry_attempt_count == 0


async def test_a_non_retryable_error_falls_back_at_once(gw, fake_openai):
    fake_openai.script(401)
    config = {**fallback(target("a"), target("b")), "retry": {"attempts": 3}}
    answer = await ask(gw, config)
    assert models(fake_openai) == ["a", "b"]
    assert answer.model == "b"


async def test_loadbalance_inside_fallback(gw, fake_openai):
    fake_openai.script(503)
    inner = {
        "strategy": {"mode": "loadbalance"},
        "targets": [target("lb-1", weight=1), target("lb-2", weight=1)],
    }
    answer = await ask(gw, fallback(inner, target("backup")))
    called = models(fake_openai)
    assert called[0] in ("lb-1", "lb-2") and called[1:] == ["backup"]
    assert answer.hookgate.last_used_option == "config.targets[1]"


async def test_fallback_inside_loadbalance(gw, fake_openai):
    fake_openai.script(503)
    config = {
        "strategy": {"mode": "loadbalance"},
        "targets": [
            {**fallback(target("f-1"), target("f-2")), "weight": 1},
            target("never", weight=0),
        ],
    }
    answer = await ask(gw, config)
    assert models(fake_openai) == ["f-1", "f-2"]
    assert answer.hookgate.last_used_option == "config.targets[0].targets[1]"


async def test_inner_codes_decline_and_the_outer_group_moves_on(gw, fake_openai):
    fake_openai.script(429)
    inner = fallback(target("a"), target("b"), on_status_codes=[503])
    answer = await ask(gw, fallback(inner, target("c")))
    assert models(fake_openai) == ["a", "c"]  # b is skipped: the inner group does not move on
    assert answer.hookgate.last_used_option == "config.targets[1]"


async def test_inner_fallback_moves_on_within_itself_first(gw, fake_openai):
    fake_openai.script(503, 503)
    inner = fallback(target("a"), target("b"), on_status_codes=[503])
    answer = await ask(gw, fallback(inner, target("c")))
    assert models(fake_openai) == ["a", "b", "c"]
    assert answer.model == "c"


async def test_a_plain_group_or_target_never_falls_back(gw, fake_openai):
    fake_openai.script(503)
    error, _ = await fail(gw, {"targets": [target("a"), target("b")]})
    assert error.http_status == 503 and models(fake_openai) == ["a"]


async def test_strategy_needs_the_plugin(fake_openai):
    async with Gateway(settings(fake_openai.url, plugins=("openai",))) as gw:
        with pytest.raises(ConfigError, match="fallback"):
            await ask(gw, fallback(target("a"), target("b")))


async def test_streams_fall_back_before_their_first_chunk(gw, fake_openai):
    fake_openai.script(503)
    stream = await ask(gw, fallback(target("a"), target("b")), stream=True)
    chunks = [chunk async for chunk in stream]
    assert chunks[0].model == "b"
    assert stream.hookgate.last_used_option == "config.targets[1]"


async def test_streams_never_fall_back_after_their_first_chunk(gw, fake_openai):
    fake_openai.script(Reply(drop_after=2))
    stream = await ask(gw, fallback(target("a"), target("b")), stream=True)
    with pytest.raises(ProviderError):
        async for _ in stream:
            pass
    assert models(fake_openai) == ["a"]


# ---- load balancing, with the mock provider (fast) ----------------------------------------

MOCK = {"gateway": {"plugins": ["mock", "fallback"], "default_provider": "mock"}}


def mock_settings(**fallback_settings) -> dict:
    return {**MOCK, "plugins": {"fallback": fallback_settings}}


def weighted(*pairs) -> dict:
    return {
        "strategy": {"mode": "loadbalance"},
        "targets": [
            {"provider": "mock", "weight": w, "override_params": {"model": m}} for m, w in pairs
        ],
    }


async def picks(gw: Gateway, config: dict, n: int) -> list[str]:
    result = []
    for _ in range(n):
        answer = await gw.chat.completions.create(model="m", messages=HELLO, config=config)
        result.append(answer.model)
    return result


async def test_weights_split_within_statistical_bounds():
    async with Gateway(mock_settings()) as gw:
        chosen = await picks(gw, weighted(("yi", 0.7), ("openai", 0.3)), 2000)
    # Binomial(2000, 0.7): mean 1400, sd 20.5; 5 sd either side fails once in ~3.5 million.
    assert 1297 <= chosen.count("yi") <= 1503
    assert chosen.count("yi") + chosen.count("openai") == 2000


async def test_weights_are_normalised_and_zero_weights_skipped():
    async with Gateway(mock_settings()) as gw:
        chosen = await picks(gw, weighted(("a", 7), ("b", 3), ("zero", 0)), 1000)
    assert "zero" not in chosen
    assert 600 <= chosen.count("a") <= 800


async def test_the_seed_makes_picks_reproducible():
    config = weighted(("a", 1), ("b", 1), ("c", 1))
    runs = []
    for _ in range(2):
        async with Gateway(mock_settings(seed=42)) as gw:
            runs.append(await picks(gw, config, 50))
    assert runs[0] == runs[1]
    assert len(set(runs[0])) == 3


async def test_loadbalance_product_spec_example():
    # 01.AI 0.7 and OpenAI 0.3; the 01.AI pick falls back to OpenAI on 429/5xx.
    config = {
        "strategy": {"mode": "loadbalance"},
        "targets": [
            {
                **fallback(
                    {
                        "provider": "mock",
                        "override_params": {"model": "yi-large"},
                        "mock": {"fail_status": 429},
                    },
                    {"provider": "mock", "override_params": {"model": "gpt-4o"}},
                    on_status_codes=[429, 500, 502, 503, 504],
                ),
                "weight": 0.7,
            },
            {"provider": "mock", "weight": 0.3, "override_params": {"model": "gpt-4o"}},
        ],
    }
    async with Gateway(mock_settings(seed=1)) as gw:
        chosen = await picks(gw, config, 200)
    assert chosen == ["gpt-4o"] * 200


def test_headers_over_http(fake_openai, serve):
    fake_openai.script(503, 503)
    gw = Gateway(settings(fake_openai.url))
    config = (
        '{"strategy": {"mode": "fallback"}, "targets": ['
        '{"provider": "openai", "retry": {"attempts": 1}, "override_params": {"model": "a"}},'
        '{"provider": "openai", "override_params": {"model": "b"}}]}'
    )
    with serve(gw) as server:
        response = httpx.post(
            f"{server.url}/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": HELLO},
            headers={"x-portkey-config": config},
        )
    assert response.status_code == 200
    assert response.json()["model"] == "b"
    assert response.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
    assert response.headers["x-portkey-retry-attempt-count"] == "0"
    assert models(fake_openai) == ["a", "a", "b"]

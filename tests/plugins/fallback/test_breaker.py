"""The circuit breaker: in memory, and shared by two gateways through a real redis-server."""

from __future__ import annotations

import asyncio
import itertools
import os

import pytest
from hookgate import Gateway, ProviderError
from structlog.testing import capture_logs

from tests.support.fake_openai import Reply
from tests.support.servers import free_port

HELLO = [{"role": "user", "content": "hello"}]
COOLDOWN = 0.4
_prefixes = itertools.count()


@pytest.fixture
def key_prefix() -> str:
    return f"test-cb-{os.getpid()}-{next(_prefixes)}:"


def settings(fake_url: str, **breaker) -> dict:
    cb = {"enabled": True, "failure_threshold": 2, "window": 30, "cooldown": COOLDOWN}
    cb.update(breaker)
    return {
        "gateway": {"plugins": ["openai", "fallback"], "default_provider": "openai"},
        "plugins": {
            "openai": {"base_url": fake_url, "api_key": "sk-test-key"},
            "fallback": {"circuit_breaker": cb},
        },
    }


CONFIG = {
    "strategy": {"mode": "fallback"},
    "targets": [
        {"provider": "openai", "override_params": {"model": "primary"}},
        {"provider": "openai", "override_params": {"model": "secondary"}},
    ],
}


def models(fake) -> list[str]:
    return [call.json["model"] for call in fake.calls()]


async def ask(gw: Gateway, config: dict = CONFIG):
    return await gw.chat.completions.create(model="gpt-4o-mini", messages=HELLO, config=config)


async def test_circuit_opens_skips_then_half_opens_and_closes(fake_openai):
    async with Gateway(settings(fake_openai.url)) as gw:
        fake_openai.script(503, Reply(), 503, Reply())
        for _ in range(2):
            assert (await ask(gw)).model == "secondary"
        assert models(fake_openai) == ["primary", "secondary"] * 2
        fake_openai.reset()

        with capture_logs() as logs:
            answer = await ask(gw)  # open: the primary is not called at all
        assert models(fake_openai) == ["secondary"]
        assert answer.hookgate.last_used_option == "config.targets[1]"
        assert any(e["event"] == "circuit_skipped" for e in logs)

        await asyncio.sleep(COOLDOWN + 0.1)
        fake_openai.reset()
        answer = await ask(gw)  # half-open: one trial call, it works, the circuit closes
        assert models(fake_openai) == ["primary"]
        fake_openai.script(503)
        await ask(gw)  # closed again: one failure is below the threshold
        await ask(gw)
        assert models(fake_openai) == ["primary", "primary", "secondary", "primary"]


async def test_a_failed_trial_call_reopens_at_once(fake_openai):
    async with Gateway(settings(fake_openai.url)) as gw:
        fake_openai.script(503, Reply(), 503, Reply())
        await ask(gw)
        await ask(gw)
        await asyncio.sleep(COOLDOWN + 0.1)
        fake_openai.reset()
        fake_openai.script(503)
        await ask(gw)  # half-open trial fails: open again
        await ask(gw)
        assert models(fake_openai) == ["primary", "secondary", "secondary"]


async def test_caller_errors_do_not_open_the_circuit(fake_openai):
    async with Gateway(settings(fake_openai.url)) as gw:
        fake_openai.script(400, Reply(), 400, Reply(), 400, Reply())
        for _ in range(3):
            await ask(gw)
        fake_openai.reset()
        await ask(gw)
        assert models(fake_openai) == ["primary"]


async def test_every_target_open_still_tries_the_least_recently_failed(fake_openai):
    async with Gateway(settings(fake_openai.url, failure_threshold=1)) as gw:
        fake_openai.default = Reply(status=503)
        ctx = gw.context("chat.completions", {"model": "m", "messages": HELLO}, config=CONFIG)
        with pytest.raises(ProviderError):
            await gw.handle(ctx)
        assert models(fake_openai) == ["primary", "secondary"]  # both open now
        fake_openai.reset()
        fake_openai.default = Reply()
        answer = await ask(gw)
        assert models(fake_openai) == ["primary"]  # failed before the secondary did
        assert answer.model == "primary"


async def test_loadbalance_avoids_an_open_target(fake_openai):
    config = {
        "strategy": {"mode": "loadbalance"},
        "targets": [
            {"provider": "openai", "weight": 0.5, "override_params": {"model": "primary"}},
            {"provider": "openai", "weight": 0.5, "override_params": {"model": "secondary"}},
        ],
    }
    async with Gateway(settings(fake_openai.url, failure_threshold=1, cooldown=30)) as gw:
        fake_openai.script(503)
        failures = 0
        for _ in range(30):
            try:
                await ask(gw, config)
            except ProviderError:
                failures += 1
    called = models(fake_openai)
    assert failures == 1 and len(called) == 30
    assert called[0] not in called[1:]  # the failed pick's circuit opened: never picked again


async def test_two_gateways_share_circuits_through_redis(fake_openai, redis_server, key_prefix):
    shared = {"redis_url": redis_server.url, "redis_prefix": key_prefix}
    one = Gateway(settings(fake_openai.url, **shared))
    two = Gateway(settings(fake_openai.url, **shared))
    async with two:
        async with one:
            fake_openai.script(503, Reply(), 503, Reply())
            await ask(one)
            await ask(one)
        # Closing `one` waits for its breaker writes; `two` has seen no failure itself.
        fake_openai.reset()
        answer = await ask(two)
        assert models(fake_openai) == ["secondary"]
        assert answer.model == "secondary"

        await asyncio.sleep(COOLDOWN + 0.1)
        fake_openai.reset()
        await ask(two)  # half-open: trial call succeeds and closes the shared circuit
        assert models(fake_openai) == ["primary"]
    async with Gateway(settings(fake_openai.url, **shared)) as three:
        await asyncio.sleep(0.05)
        fake_openai.reset()
        await ask(three)
        assert models(fake_openai) == ["primary"]


async def test_redis_down_degrades_to_memory_with_one_warning(fake_openai):
    dead = f"redis://127.0.0.1:{free_port()}/0"
    table = {"redis_url": dead, "redis_timeout": 0.1, "cooldown": 30}
    async with Gateway(settings(fake_openai.url, **table)) as gw:
        fake_openai.script(503, Reply(), 503, Reply())
        with capture_logs() as logs:
            await ask(gw)
            await ask(gw)
            await asyncio.sleep(0.5)  # let the background writes fail over to memory
            fake_openai.reset()
            answer = await ask(gw)
    assert answer.model == "secondary"
    assert models(fake_openai) == ["secondary"]  # the in-memory circuit opened
    warnings = [e for e in logs if e["event"] == "circuit_breaker_redis_unavailable"]
    assert len(warnings) == 1
    assert "sk-test-key" not in repr(logs)


async def test_half_open_lets_one_trial_call_through_at_a_time(fake_openai):
    async with Gateway(settings(fake_openai.url)) as gw:
        fake_openai.script(503, Reply(), 503, Reply())
        await ask(gw)
        await ask(gw)
        await asyncio.sleep(COOLDOWN + 0.1)
        fake_openai.reset()
        fake_openai.script(Reply(delay=0.3))  # the trial call is slow
        trial = asyncio.create_task(ask(gw))
        await asyncio.sleep(0.1)
        meanwhile = await ask(gw)
        assert meanwhile.model == "secondary"  # the trial is taken: skip the primary
        assert (await trial).model == "primary"
        assert models(fake_openai) == ["primary", "secondary"]


async def test_an_unused_trial_claim_is_given_back(fake_openai):
    reversed_config = {**CONFIG, "targets": CONFIG["targets"][::-1]}
    async with Gateway(settings(fake_openai.url)) as gw:
        fake_openai.script(503, Reply(), 503, Reply())
        await ask(gw)
        await ask(gw)
        await asyncio.sleep(COOLDOWN + 0.1)
        fake_openai.reset()
        await ask(gw, reversed_config)  # claims the primary's trial, answered before reaching it
        await ask(gw)
        assert models(fake_openai) == ["secondary", "primary"]

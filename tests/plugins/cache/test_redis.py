"""The Redis backend: shared between gateways, holding no secrets, and never in the way when
Redis is down or slow."""

from __future__ import annotations

import socket
import time

import pytest
import structlog
from hookgate import CallOptions
from redis.asyncio import Redis

from tests.support.servers import RedisServer, free_port

HELLO = [{"role": "user", "content": "hello"}]
SIMPLE = {"cache": {"mode": "simple", "max_age": 60}}


async def ask(gw, options=None, **params):
    body = {"model": "gpt-4o-mini", "messages": HELLO, **params}
    return await gw.chat.completions.create(config=SIMPLE, options=options, **body)


def warnings(logs):
    return [e for e in logs if e["event"] == "cache_backend_unavailable"]


async def test_two_gateways_share_one_redis(cache_gateway, fake_openai):
    async with cache_gateway("redis") as one, cache_gateway("redis") as two:
        first = await ask(one)
        second = await ask(two)
        streamed = [c async for c in await ask(one, stream=True)]
        replayed_stream = await ask(two, stream=True)
        replayed = [c async for c in replayed_stream]
    assert (first.hookgate.cache_status, second.hookgate.cache_status) == ("MISS", "HIT")
    assert second.choices[0].message.content == first.choices[0].message.content
    assert replayed_stream.hookgate.cache_status == "HIT"
    assert [c.model_dump() for c in replayed] == [c.model_dump() for c in streamed]
    assert len(fake_openai.calls()) == 2


async def test_entries_expire_in_redis_and_hold_no_secret(cache_gateway, redis_server, key_prefix):
    async with cache_gateway("redis") as gw:
        await ask(gw, options=CallOptions(api_key="sk-tenant-secret-0001"))
    client = Redis.from_url(redis_server.url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{key_prefix}*")]
        assert len(keys) == 1
        ttl_ms = await client.pttl(keys[0])
        value = await client.get(keys[0])
    finally:
        await client.aclose()
    assert 55_000 < ttl_ms <= 60_000  # max_age seconds become Redis' expiry
    assert b"sk-tenant-secret-0001" not in keys[0] + value
    assert b"fake: hello" in value


async def test_redis_killed_mid_test_still_answers_with_one_warning(make_gateway, fake_openai):
    redis = RedisServer()
    try:
        gw = make_gateway(f"""
            [gateway]
            plugins = ["openai", "cache"]
            default_provider = "openai"
            [plugins.openai]
            base_url = "{fake_openai.url}"
            [plugins.cache]
            backend = "redis"
            url = "{redis.url}"
            backoff_s = 0
        """)
        async with gw:
            assert (await ask(gw)).hookgate.cache_status == "MISS"
            assert (await ask(gw)).hookgate.cache_status == "HIT"
            redis.stop()
            with structlog.testing.capture_logs() as logs:
                answers = [await ask(gw) for _ in range(3)]
                other = await ask(gw, seed=5)
    finally:
        redis.stop()
    assert [a.choices[0].message.content for a in answers] == ["fake: hello"] * 3
    assert {a.hookgate.cache_status for a in [*answers, other]} == {"MISS"}
    assert len(fake_openai.calls()) == 5
    [warning] = warnings(logs)  # once per interval, however many requests failed
    assert warning["log_level"] == "warning"
    assert warning["backend"] == "redis"
    assert warning["address"] == f"127.0.0.1:{redis.port}"
    assert warning["answered_as"] == "miss"


@pytest.fixture
def silent_server():
    """A TCP port that accepts connections and never answers: a hung Redis."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield sock.getsockname()[1]
    sock.close()


async def test_a_hung_redis_is_a_miss_within_the_lookup_timeout(
    make_gateway, fake_openai, silent_server
):
    gw = make_gateway(f"""
        [gateway]
        plugins = ["openai", "cache"]
        default_provider = "openai"
        [plugins.openai]
        base_url = "{fake_openai.url}"
        [plugins.cache]
        backend = "redis"
        url = "redis://127.0.0.1:{silent_server}/0"
        lookup_timeout_ms = 50
        store_timeout_ms = 50
        backoff_s = 5
    """)
    async with gw:
        with structlog.testing.capture_logs() as logs:
            started = time.perf_counter()
            first = await ask(gw)
            first_took = time.perf_counter() - started
            started = time.perf_counter()
            second = await ask(gw)
            second_took = time.perf_counter() - started
    assert first.choices[0].message.content == second.choices[0].message.content == "fake: hello"
    assert first.hookgate.cache_status == second.hookgate.cache_status == "MISS"
    assert first_took < 1.0  # the 50 ms lookup timeout, not the upstream's or the OS's
    assert second_took < first_took  # backing off: Redis is not asked again for now
    [warning] = warnings(logs)
    assert warning["operation"] == "lookup"
    assert "TimeoutError" in warning["error"]


async def test_an_unreadable_entry_is_a_miss_and_is_replaced(
    cache_gateway, redis_server, key_prefix
):
    async with cache_gateway("redis") as gw:
        await ask(gw)
        client = Redis.from_url(redis_server.url)
        try:
            [key] = [key async for key in client.scan_iter(match=f"{key_prefix}*")]
            await client.set(key, b"not an entry")
        finally:
            await client.aclose()
        with structlog.testing.capture_logs() as logs:
            garbled = await ask(gw)
        again = await ask(gw)
    assert garbled.hookgate.cache_status == "MISS"
    assert garbled.choices[0].message.content == "fake: hello"
    assert again.hookgate.cache_status == "HIT"
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["cache_entry_unreadable"]


async def test_the_redis_password_never_reaches_the_log(make_gateway, fake_openai):
    gw = make_gateway(f"""
        [gateway]
        plugins = ["openai", "cache"]
        default_provider = "openai"
        [plugins.openai]
        base_url = "{fake_openai.url}"
        [plugins.cache]
        backend = "redis"
        url = "redis://:hunter2-secret@127.0.0.1:{free_port()}/0"
    """)
    async with gw:
        with structlog.testing.capture_logs() as logs:
            answer = await ask(gw)
    assert answer.hookgate.cache_status == "MISS"
    [warning] = warnings(logs)
    assert "ConnectionError" in warning["error"]
    assert "hunter2" not in repr(logs)

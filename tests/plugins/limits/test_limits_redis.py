"""hookgate-limits on Redis: two gateway instances share their counts; Redis going away gives
what ``on_backend_error`` says."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack

import httpx
import pytest
from hookgate import Gateway

from tests.support.servers import RedisServer, UvicornServer

CONFIG = """
[gateway]
plugins = ["mock", "limits"]
default_provider = "mock"

[plugins.limits]
backend = "redis"
url = "{url}"
on_backend_error = "{failing}"
timeout_ms = 200

[[plugins.limits.rules]]
scope = "metadata._user"
rate_limits = [{{ type = "requests", unit = "rpm", value = 4 }}]
"""

Serve = Callable[[Gateway], AbstractContextManager[UvicornServer]]


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    server = RedisServer()  # its own: the tests stop it
    yield server
    server.stop()


def _chat(url: str, user: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        headers={"x-portkey-metadata": json.dumps({"_user": user})},
        timeout=30,
    )


def _instances(
    make_gateway: Callable[[str], Gateway], serve: Serve, redis: RedisServer, failing: str, n: int
) -> tuple[ExitStack, list[str]]:
    stack = ExitStack()
    urls = []
    for _ in range(n):
        gateway = make_gateway(CONFIG.format(url=redis.url, failing=failing))
        urls.append(stack.enter_context(serve(gateway)).url)
    return stack, urls


def _away_from_a_minute_end(margin: float) -> None:
    left = 60 - time.time() % 60
    if left < margin:
        time.sleep(left + 0.05)


def test_a_limit_holds_across_two_instances_sharing_redis(
    make_gateway: Callable[[str], Gateway], serve: Serve, redis: RedisServer
) -> None:
    _away_from_a_minute_end(10)
    stack, (one, two) = _instances(make_gateway, serve, redis, "open", 2)
    with stack:
        statuses = [_chat(url, "dana").status_code for url in (one, two, one, two, one, two)]
        assert statuses == [200, 200, 200, 200, 429, 429]
        assert _chat(two, "erin").status_code == 200  # another user's count is its own


def test_redis_down_fails_open_by_default(
    make_gateway: Callable[[str], Gateway], serve: Serve, redis: RedisServer
) -> None:
    _away_from_a_minute_end(10)
    stack, (url,) = _instances(make_gateway, serve, redis, "open", 1)
    with stack:
        assert _chat(url, "fay").status_code == 200
        redis.stop()
        answers = [_chat(url, "fay") for _ in range(6)]  # over the limit, but uncounted
        assert [a.status_code for a in answers] == [200] * 6
        assert "x-ratelimit-remaining-requests" not in answers[0].headers
        ready = httpx.get(f"{url}/ready", timeout=10)
        assert ready.status_code == 503


def test_redis_down_fails_closed_when_configured(
    make_gateway: Callable[[str], Gateway], serve: Serve, redis: RedisServer
) -> None:
    stack, (url,) = _instances(make_gateway, serve, redis, "closed", 1)
    with stack:
        assert _chat(url, "gus").status_code == 200
        redis.stop()
        refused = _chat(url, "gus")
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "limits_unavailable"
        assert "unreachable" in refused.json()["error"]["message"]

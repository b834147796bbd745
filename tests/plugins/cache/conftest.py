"""Gateways with the cache plugin in front of the fake OpenAI upstream, on either backend."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable

import pytest
from hookgate import Gateway

_prefixes = itertools.count()


@pytest.fixture
def key_prefix() -> str:
    """A Redis key prefix of this test's own: tests share one redis-server."""
    return f"test-{os.getpid()}-{next(_prefixes)}:"


@pytest.fixture
def cache_gateway(
    make_gateway: Callable[[str], Gateway], fake_openai, redis_server, key_prefix
) -> Callable[..., Gateway]:
    """``cache_gateway(backend, **settings)``: mock + openai (pointing at the fake) + cache."""

    def make(backend: str = "memory", plugins: str = '"mock", "openai", "cache"', **settings):
        table = {"backend": backend, **settings}
        if backend == "redis":
            table.setdefault("url", redis_server.url)
            table.setdefault("key_prefix", key_prefix)
            # The 50 ms production default is about a healthy Redis; on a CI machine shared by
            # several suites a loopback round trip can take longer, and a timeout is a miss.
            table.setdefault("lookup_timeout_ms", 2000)
            table.setdefault("store_timeout_ms", 2000)
        return make_gateway(
            "\n".join(
                [
                    "[gateway]",
                    f"plugins = [{plugins}]",
                    'default_provider = "openai"',
                    "[plugins.openai]",
                    f'base_url = "{fake_openai.url}"',
                    'api_key = "sk-deployment-default-key"',
                    "[plugins.cache]",
                    *(f"{name} = {_toml(value)}" for name, value in table.items()),
                ]
            )
        )

    return make


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)

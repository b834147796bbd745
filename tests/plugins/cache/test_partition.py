"""Finding 7: the Redis partition of a tenant is an HMAC under the deployment secret, not a
plain hash of its provider key: reading Redis does not let anyone confirm a guessed key. The
secret is generated on first start beside plugins.toml (mode 0600) and kept, so a restart (or
another worker) finds the same entries. Through a real server, a real redis-server."""

from __future__ import annotations

import json
import os
import stat
from hashlib import blake2b

import httpx
import pytest
from hookgate import Gateway
from redis import Redis

CONFIG = json.dumps({"cache": {"mode": "simple", "max_age": 60}})
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}
VICTIM = "sk-victim-0123456789"


def unsalted(key: str) -> str:
    """The partition the cache used to derive: anyone could recompute it from a guess."""
    hasher = blake2b(b"hookgate-cache/tenant\0", digest_size=8)
    hasher.update(key.encode() + b"\0")
    return hasher.hexdigest()


@pytest.fixture
def toml(write_toml, redis_server, fake_openai, key_prefix, monkeypatch):
    monkeypatch.delenv("HOOKGATE_SECRET", raising=False)

    def write(extra: str = "") -> Gateway:
        return Gateway.from_toml(
            write_toml(f"""
                [gateway]
                plugins = ["openai", "cache"]
                {extra}
                [plugins.openai]
                base_url = "{fake_openai.url}"
                [plugins.cache]
                backend = "redis"
                url = "{redis_server.url}"
                key_prefix = "{key_prefix}"
                # generous: the suite may run on a loaded machine
                lookup_timeout_ms = 3000
                store_timeout_ms = 3000
                connect_timeout_ms = 3000
            """)
        )

    return write


def ask(server) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/chat/completions",
        json=BODY,
        headers={
            "x-portkey-config": CONFIG,
            "x-portkey-provider": "openai",
            "authorization": f"Bearer {VICTIM}",
        },
        timeout=10,
    )


def partitions(redis_server, key_prefix) -> set[str]:
    client = Redis.from_url(redis_server.url)
    try:
        keys = [k.decode() for k in client.scan_iter(match=f"{key_prefix}*")]
    finally:
        client.close()
    return {key.removeprefix(key_prefix).split(":")[0] for key in keys}


def test_partitions_are_keyed_with_a_kept_deployment_secret(
    toml, serve, redis_server, key_prefix, tmp_path
):
    with serve(toml()) as server:
        assert ask(server).headers["x-portkey-cache-status"] == "MISS"
    secret_file = tmp_path / "hookgate.secret"
    assert stat.S_IMODE(os.stat(secret_file).st_mode) == 0o600
    assert len(secret_file.read_text().strip()) == 64
    [partition] = partitions(redis_server, key_prefix)
    assert partition != unsalted(VICTIM) and len(partition) == 32
    assert VICTIM not in partition

    # A restart reads the same secret: the entry is found again.
    with serve(toml()) as server:
        assert ask(server).headers["x-portkey-cache-status"] == "HIT"
    assert partitions(redis_server, key_prefix) == {partition}


def test_another_secret_gives_other_partitions(toml, serve, redis_server, key_prefix, monkeypatch):
    with serve(toml()) as server:
        ask(server)
    monkeypatch.setenv("HOOKGATE_SECRET", "s3cret-from-the-environment")
    with serve(toml()) as server:
        assert ask(server).headers["x-portkey-cache-status"] == "MISS"
    with serve(toml('secret = "s3cret-from-plugins-toml"')) as server:
        assert ask(server).headers["x-portkey-cache-status"] == "MISS"
    assert len(partitions(redis_server, key_prefix)) == 3

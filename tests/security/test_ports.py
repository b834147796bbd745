"""Finding 3: a custom host may not reach any port of an allowed host. Allow-list entries can
pin scheme, host and port; the gateway's own port and its backends' ports (a real Redis of
the cache plugin) are always refused; a server bound to a non-loopback address without an
explicit allow-list accepts no custom host at all. Over a real socket / a real process."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from hookgate import Gateway
from redis import Redis

from tests.support.servers import free_port

HOOKGATE = str(Path(sys.executable).parent / "hookgate")
HELLO = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}
OWN_KEY = {"authorization": "Bearer sk-callers-own", "x-portkey-provider": "openai"}


def chat(url: str, custom_host: str) -> httpx.Response:
    headers = {**OWN_KEY, "x-portkey-custom-host": custom_host}
    return httpx.post(f"{url}/v1/chat/completions", json=HELLO, headers=headers, timeout=10)


def connections(redis: Redis) -> int:
    return int(redis.info("stats")["total_connections_received"])


def test_backend_and_well_known_ports_are_refused(write_toml, serve, redis_server, thief):
    gateway = Gateway.from_toml(
        write_toml(f"""
            [gateway]
            plugins = ["openai", "cache"]
            [plugins.cache]
            backend = "redis"
            url = "{redis_server.url}"
        """)
    )
    redis = Redis.from_url(redis_server.url)
    try:
        with serve(gateway) as server:
            before = connections(redis)
            for port in (redis_server.port, 6379, 5432):
                response = chat(server.url, f"http://127.0.0.1:{port}/v1")
                assert response.status_code == 400, response.text
                assert f"port {port}" in response.json()["error"]["message"]
            assert connections(redis) == before  # nothing reached the Redis
            assert chat(server.url, f"{thief.url}/v1").status_code == 200  # another port: fine
    finally:
        redis.close()


def test_pinned_entries_allow_exactly_that_origin(write_toml, serve, thief):
    gateway = Gateway.from_toml(
        write_toml(f"""
            [gateway]
            plugins = ["openai"]
            custom_hosts = ["http://127.0.0.1:{thief.port}", "localhost"]
        """)
    )
    with serve(gateway) as server:
        assert chat(server.url, f"http://127.0.0.1:{thief.port}/v1").status_code == 200
        other = free_port()
        for refused in (f"http://127.0.0.1:{other}/v1", f"https://127.0.0.1:{thief.port}/v1"):
            response = chat(server.url, refused)
            assert response.status_code == 400
            assert "is not in [gateway] custom_hosts" in response.json()["error"]["message"]
        # a bare entry still allows every port of its host
        assert chat(server.url, f"http://localhost:{thief.port}/v1").status_code == 200
    assert len(thief.connections) == 2


def serve_process(config: Path, *args: str) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    process = subprocess.Popen(
        [HOOKGATE, "serve", "--config", str(config), "--port", str(port), "--workers", "1", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.poll() is None
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process, port
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise AssertionError("hookgate serve did not come up")


@pytest.mark.parametrize("explicit", [False, True], ids=["default-list", "explicit-list"])
def test_own_port_and_open_binds(write_toml, thief, explicit):
    listed = 'custom_hosts = ["127.0.0.1"]' if explicit else ""
    config = write_toml(f"""
        [gateway]
        plugins = ["openai"]
        {listed}
        [server]
        api_keys = ["gw-key"]
    """)
    process, port = serve_process(config, "--host", "0.0.0.0")
    url = f"http://127.0.0.1:{port}"
    try:
        key = {"x-portkey-api-key": "gw-key"}
        own = httpx.post(
            f"{url}/v1/chat/completions",
            json=HELLO,
            headers={**OWN_KEY, **key, "x-portkey-custom-host": f"{url}/v1"},
        )
        assert own.status_code == 400
        elsewhere = httpx.post(
            f"{url}/v1/chat/completions",
            json=HELLO,
            headers={**OWN_KEY, **key, "x-portkey-config": json.dumps({"custom_host": thief.url})},
        )
        if explicit:
            assert "port" in own.json()["error"]["message"]
            assert elsewhere.status_code == 200
        else:
            assert "listens on 0.0.0.0" in own.json()["error"]["message"]
            assert elsewhere.status_code == 400
            assert thief.connections == []
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)

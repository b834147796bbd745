"""``/metrics`` over HTTP from ``hookgate serve``'s app, in Prometheus' text format."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import httpx
import pytest
from hookgate import Gateway
from prometheus_client.parser import text_string_to_metric_families

from tests.plugins.logging.plugins_for_tests import CacheWhenAsked, NextTarget, RetryOnce

HELLO = [{"role": "user", "content": "hello"}]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_endpoint(write_toml, serve, tmp_path):
    path = write_toml(f"""
        [gateway]
        plugins = ["mock", "logging"]
        default_provider = "mock"
        [plugins.logging]
        log_to = "none"
        store = {{ path = "{tmp_path / "logs.db"}" }}
    """)
    gateway = Gateway.from_toml(path)
    for plugin, name in (
        (RetryOnce(), "retry_once"),
        (NextTarget(), "next"),
        (CacheWhenAsked(), "c"),
    ):
        gateway.register(plugin, name)
    with serve(gateway) as server:

        def post(config=None, metadata=None, model="gpt-4o-mini", **body) -> httpx.Response:
            headers = {}
            if config is not None:
                headers["x-portkey-config"] = json.dumps(config)
            if metadata is not None:
                headers["x-portkey-metadata"] = json.dumps(metadata)
            return httpx.post(
                f"{server.url}/v1/chat/completions",
                json={"model": model, "messages": HELLO, **body},
                headers=headers,
                timeout=10,
            )

        assert post().status_code == post().status_code == 200
        assert post(metadata={"cached": "yes"}).status_code == 200
        retry = {"provider": "mock", "mock": {"fail_status": 503, "fail_times": 1}}
        assert post(retry, model="m").status_code == 200
        fallback = {
            "strategy": {"mode": "fallback"},
            "targets": [
                {"provider": "mock", "mock": {"fail_status": 429}},
                {"provider": "mock"},
            ],
        }
        assert post(fallback, model="m").status_code == 200
        failing = {"provider": "mock", "mock": {"fail_status": 500}}
        assert post(failing, model="m").status_code == 500
        with httpx.stream(
            "POST",
            f"{server.url}/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": HELLO, "stream": True},
        ) as stream:
            assert sum(1 for _ in stream.iter_lines()) > 2
        assert server.thread.run(gateway.plugin("logging").flush())
        response = httpx.get(f"{server.url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)
    requests = "hookgate_requests_total"
    assert value(found, requests, provider="mock", model="gpt-4o-mini", status="200") == 3
    assert value(found, requests, provider="none", model="gpt-4o-mini", status="200") == 1
    assert value(found, requests, provider="mock", model="m", status="200") == 2
    assert value(found, requests, provider="mock", model="m", status="500") == 1
    assert value(found, "hookgate_upstream_attempts_total", provider="mock", status="503") == 1
    assert value(found, "hookgate_upstream_attempts_total", provider="mock", status="429") == 2
    assert value(found, "hookgate_upstream_attempts_total", provider="mock", status="500") == 2
    assert value(found, "hookgate_retries_total", provider="mock") == 3
    assert value(found, "hookgate_fallbacks_total") == 1
    assert value(found, "hookgate_cache_lookups_total", result="hit") == 1
    assert value(found, "hookgate_cache_lookups_total", result="miss") == 6
    assert (
        value(
            found, "hookgate_request_duration_seconds_count", provider="mock", model="gpt-4o-mini"
        )
        == 3
    )
    assert (
        value(
            found,
            "hookgate_time_to_first_token_seconds_count",
            provider="mock",
            model="gpt-4o-mini",
        )
        == 1
    )
    prompt = value(
        found, "hookgate_tokens_total", provider="mock", model="gpt-4o-mini", kind="prompt"
    )
    assert prompt > 0
    assert value(found, "hookgate_cost_usd_total", provider="mock", model="gpt-4o-mini") > 0
    assert value(found, "hookgate_cost_saved_usd_total", model="gpt-4o-mini") > 0


WORKER = textwrap.dedent("""
    import asyncio, sys
    from hookgate import Gateway

    settings = {
        "gateway": {"plugins": ["mock", "logging"], "default_provider": "mock"},
        "plugins": {"logging": {"log_to": "none", "store": {"enabled": False},
                                "metrics_multiprocess_dir": sys.argv[1]}},
    }

    async def main(n):
        async with Gateway(settings) as gw:
            for _ in range(n):
                await gw.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
            await gw.plugin("logging").flush()
            if n == 0:
                body, _ = gw.plugin("logging").exposition()
                sys.stdout.write(body.decode())

    asyncio.run(main(int(sys.argv[2])))
""")


def test_multiprocess_metrics_add_up_every_worker(tmp_path):
    directory = str(tmp_path / "prom")
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, directory, str(n)]) for n in (5, 7)]
    for worker in workers:
        assert worker.wait(60) == 0
    scrape = subprocess.run(
        [sys.executable, "-c", WORKER, directory, "0"], capture_output=True, text=True, timeout=60
    )
    assert scrape.returncode == 0, scrape.stderr
    found = samples(scrape.stdout)
    assert value(found, "hookgate_requests_total", provider="mock", model="m", status="200") == 12


@pytest.mark.timeout(300)  # a `hookgate serve` start on a loaded machine can be slow
def test_serve_with_two_workers_reports_the_whole_group_without_a_setting(write_toml):
    """Without metrics_multiprocess_dir, /metrics on either worker counts every request."""
    import concurrent.futures
    import os
    from pathlib import Path

    from tests.support.servers import free_port

    config = write_toml(
        """
        [gateway]
        plugins = ["mock", "logging"]
        default_provider = "mock"
        [plugins.logging]
        log_to = "none"
        store = { enabled = false }
        """
    )
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("hookgate")),
            "serve",
            "--config",
            str(config),
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "hookgate serve did not come up"
                time.sleep(0.05)

        def post(_: int) -> int:  # a new connection each: the workers share the accepts
            body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
            return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=10).status_code

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            assert list(pool.map(post, range(40))) == [200] * 40
        time.sleep(0.3)  # the records are counted just after each answer went out
        seen = set()
        for _ in range(8):
            found = samples(httpx.get(f"{url}/metrics", timeout=10).text)
            seen.add(
                value(found, "hookgate_requests_total", provider="mock", model="m", status="200")
            )
        assert seen == {40}
    finally:
        process.terminate()
        assert process.wait(20) == 0

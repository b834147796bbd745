"""Latency of an exact-cache hit, embedded and over HTTP, memory and Redis backends, versus a
miss to a zero-latency upstream.

    uv run python bench/cache.py [--requests 5000] [--http-requests 2000]

Embedded: ``await gw.chat.completions.create(...)`` end to end (validation, config, the five
hooks, parsing into a ChatCompletion), one call at a time, each timed on its own. Server mode:
``hookgate serve --workers 1`` in a child process (uvloop + httptools, as deployed), driven by
one keep-alive http.client connection in this process, one request at a time. The upstream is the mock
provider (in-process, zero latency), so a "miss" costs the gateway's own work plus the cache's
lookup and store. Redis is a redis-server this script starts on a free loopback port.
Targets: memory hit p50 <= 50 µs embedded; Redis hit p50 <= 1 ms over HTTP.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from hookgate import Gateway

# `python bench/cache.py` puts bench/ on sys.path, not the checkout: tests.support lives there.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.servers import RedisServer, free_port

HELLO = [{"role": "user", "content": "What is the capital of France?"}]
CACHED = {"cache": {"mode": "simple", "max_age": 600}}


def settings(backend: str, redis_url: str) -> dict[str, Any]:
    table: dict[str, Any] = {"backend": backend}
    if backend == "redis":  # a fresh prefix per run: every run starts with an empty cache
        table.update(url=redis_url, key_prefix=f"bench:{time.time_ns()}:")
    return {
        "gateway": {"plugins": ["mock", "cache"], "default_provider": "mock"},
        "plugins": {"cache": table},
    }


def summary(samples_ns: list[int]) -> tuple[float, float, float]:
    ordered = sorted(samples_ns)
    p50 = ordered[len(ordered) // 2] / 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1000
    return p50, p99, statistics.fmean(ordered) / 1000


async def embedded(backend: str, redis_url: str, n: int) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    async with Gateway(settings(backend, redis_url)) as gw:
        create = gw.chat.completions.create

        async def timed(config: Any, seed: int | None, expect: str) -> tuple[int, float]:
            params: dict[str, Any] = {"model": "m", "messages": HELLO}
            if seed is not None:
                params["seed"] = seed
            start = time.perf_counter_ns()
            answer = await create(config=config, **params)
            took = time.perf_counter_ns() - start
            status = answer.hookgate.cache_status
            if status != expect:
                raise SystemExit(f"expected {expect}, got {status} ({backend})")
            return took, answer.hookgate.timings.get("cache_lookup", 0.0)

        await timed(CACHED, None, "MISS")  # the entry every hit below finds
        for label, config, seeds, expect in (
            ("hit", CACHED, None, "HIT"),
            ("miss (mock upstream)", CACHED, "unique", "MISS"),
            ("no cache (DISABLED)", None, None, "DISABLED"),
        ):
            for i in range(min(500, n)):  # warm up
                await timed(config, 10_000_000 + i if seeds else None, expect)
            samples, lookups = [], []
            for i in range(n):
                took, lookup = await timed(config, i + 1 if seeds else None, expect)
                samples.append(took)
                lookups.append(lookup)
            rows[label] = (*summary(samples), statistics.median(lookups) * 1e6)
        # The pipeline alone on prepared contexts: no request validation, no config parsing,
        # no ChatCompletion model built from the answer (all the same with or without cache).
        body = {"model": "m", "messages": HELLO}
        contexts = [gw.context("chat.completions", body, config=CACHED) for _ in range(n)]
        samples = []
        for ctx in contexts:
            start = time.perf_counter_ns()
            await gw.handle(ctx)
            samples.append(time.perf_counter_ns() - start)
            if ctx.cache_status != "HIT":
                raise SystemExit(f"expected HIT, got {ctx.cache_status} ({backend})")
        rows["hit, gw.handle() only"] = (*summary(samples), float("nan"))
    return rows


def start_server(backend: str, redis_url: str, workdir: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    table = settings(backend, redis_url)
    lines = [
        "[gateway]",
        'plugins = ["mock", "cache"]',
        'default_provider = "mock"',
        "[plugins.cache]",
        *(
            f"{key} = {orjson.dumps(value).decode()}"
            for key, value in table["plugins"]["cache"].items()
        ),
    ]
    config = workdir / f"{backend}.toml"
    config.write_text("\n".join(lines) + "\n")
    exe = shutil.which("hookgate") or sys.executable
    args = [exe] if exe != sys.executable else [exe, "-m", "hookgate.cli"]
    process = subprocess.Popen(
        [*args, "serve", "--config", str(config), "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=0.5).status_code == 200:
                return process, port
        except httpx.TransportError:
            time.sleep(0.1)
        if process.poll() is not None:
            break
    process.kill()
    raise SystemExit(f"hookgate serve did not start: {process.stderr.read().decode()[-2000:]}")


def over_http(port: int, n: int) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    config = orjson.dumps(CACHED).decode()
    # http.client: one keep-alive connection and little client-side work, so the numbers are
    # mostly the gateway's (httpx alone adds a few hundred µs per request).
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def timed(cached: bool, seed: int | None, expect: str) -> int:
        body: dict[str, Any] = {"model": "m", "messages": HELLO}
        if seed is not None:
            body["seed"] = seed
        headers = {"content-type": "application/json"}
        if cached:
            headers["x-portkey-config"] = config
        content = orjson.dumps(body)
        start = time.perf_counter_ns()
        connection.request("POST", "/v1/chat/completions", body=content, headers=headers)
        response = connection.getresponse()
        response.read()
        took = time.perf_counter_ns() - start
        status = response.getheader("x-portkey-cache-status")
        if response.status != 200 or status != expect:
            raise SystemExit(f"expected 200 {expect}, got {response.status} {status}")
        return took

    try:
        timed(True, None, "MISS")
        for label, cached, unique, expect in (
            ("hit", True, False, "HIT"),
            ("miss (mock upstream)", True, True, "MISS"),
            ("no cache (DISABLED)", False, False, "DISABLED"),
        ):
            for i in range(min(300, n)):
                timed(cached, 10_000_000 + i if unique else None, expect)
            samples = [timed(cached, i + 1 if unique else None, expect) for i in range(n)]
            rows[label] = summary(samples)
    finally:
        connection.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--http-requests", type=int, default=2000)
    args = parser.parse_args()
    redis = RedisServer()
    workdir = Path(tempfile.mkdtemp(prefix="hookgate-bench-cache-"))
    try:
        print(f"embedded, {args.requests} sequential calls each (µs)")
        print(f"{'backend':<8} {'case':<22} {'p50':>8} {'p99':>8} {'mean':>8} {'lookup p50':>11}")
        for backend in ("memory", "redis"):
            for label, (p50, p99, mean, lookup) in asyncio.run(
                embedded(backend, redis.url, args.requests)
            ).items():
                print(
                    f"{backend:<8} {label:<22} {p50:>8.1f} {p99:>8.1f} {mean:>8.1f} {lookup:>11.1f}"
                )
        print()
        print(
            f"over HTTP (hookgate serve, 1 worker), {args.http_requests} sequential requests (µs)"
        )
        print(f"{'backend':<8} {'case':<22} {'p50':>8} {'p99':>8} {'mean':>8}")
        for backend in ("memory", "redis"):
            process, port = start_server(backend, redis.url, workdir)
            try:
                rows = over_http(port, args.http_requests)
            finally:
                process.terminate()
                process.wait(10)
            for label, (p50, p99, mean) in rows.items():
                print(f"{backend:<8} {label:<22} {p50:>8.1f} {p99:>8.1f} {mean:>8.1f}")
        print()
        print(f"machine: {os.cpu_count()} cores, shared; numbers are noisy")
    finally:
        redis.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

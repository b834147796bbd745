"""What hookgate-limits adds to a request, in one run: the same gateway without the plugin,
with its memory backend (a table every process of the machine maps) and with Redis.

    uv run python bench/limits.py [--requests 5000]

Each request carries three limits (a requests-per-minute and a tokens-per-minute limit on its
metadata user, and a monthly USD budget on its team), so it makes one reservation of three
counters before the call and one settlement after it. The mock provider answers at once, so
the difference per request is the plugin's own cost. Needs redis-server on PATH (started on a
free loopback port). Prints µs per request (median of 5 rounds) and the added p50/p99.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from hookgate import CallOptions, Gateway

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support lives there
from tests.support.servers import RedisServer

BASE = """
[gateway]
plugins = ["mock", {plugins}"logging"]
default_provider = "mock"
[plugins.logging]
log_to = "none"
store = {{ enabled = false }}
metrics = false
prices = {{ m = {{ input = 1, output = 1 }} }}
"""
LIMITS = """
[plugins.limits]
backend = "{backend}"
path = "{path}"
url = "{url}"
[[plugins.limits.rules]]
name = "per-user"
scope = "metadata._user"
rate_limits = [
    {{ type = "requests", unit = "rpm", value = 100000000 }},
    {{ type = "tokens", unit = "rpm", value = 100000000000 }},
]
[[plugins.limits.rules]]
name = "per-team"
scope = "metadata.team"
usage_limits = {{ credit_limit = 1000000, periodic_reset = "monthly" }}
"""
HELLO = [{"role": "user", "content": "What is the capital of France?"}]


async def run(gw: Gateway, n: int) -> tuple[float, list[float]]:
    options = CallOptions(metadata={"_user": "u1", "team": "t1"})
    body = {"model": "m", "messages": HELLO, "max_tokens": 50}
    for _ in range(300):
        await gw.handle(gw.context("chat.completions", body, options=options))
    rounds = []
    each: list[float] = []
    for _ in range(5):
        contexts = [gw.context("chat.completions", body, options=options) for _ in range(n // 5)]
        start = time.perf_counter()
        for ctx in contexts:
            began = time.perf_counter()
            await gw.handle(ctx)
            each.append(time.perf_counter() - began)
        rounds.append((time.perf_counter() - start) / (n // 5) * 1e6)
    return statistics.median(rounds), each


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    n = parser.parse_args().requests
    redis = RedisServer()
    folder = Path(tempfile.mkdtemp(prefix="hookgate-bench-limits-"))
    try:
        results = {}
        for name, plugins, limits in (
            ("without limits", "", ""),
            (
                "memory backend",
                '"limits", ',
                LIMITS.format(backend="memory", path=folder / "t", url=redis.url),
            ),
            (
                "redis backend",
                '"limits", ',
                LIMITS.format(backend="redis", path=folder / "t", url=redis.url),
            ),
        ):
            text = BASE.format(plugins=plugins) + limits
            (folder / "plugins.toml").write_text(text)
            async with Gateway.from_toml(folder / "plugins.toml") as gw:
                results[name] = await run(gw, n)
        base_mean, base_each = results["without limits"]
        print(f"requests per configuration: {n} (embedded, mock provider, 3 limits a request)")
        print(f"{'':16} {'µs/request':>11} {'added mean':>11} {'added p50':>10} {'added p99':>10}")
        for name, (mean, each) in results.items():
            added = mean - base_mean
            p50 = (percentile(each, 0.5) - percentile(base_each, 0.5)) * 1e6
            p99 = (percentile(each, 0.99) - percentile(base_each, 0.99)) * 1e6
            print(f"{name:16} {mean:11.1f} {added:11.1f} {p50:10.1f} {p99:10.1f}")
    finally:
        redis.stop()


if __name__ == "__main__":
    asyncio.run(main())

"""Availability under faults: a flaky primary, a healthy secondary, with and without fallback.

    uv run python bench/fallback.py [--requests 5000] [--failure-rate 0.3] [--concurrency 32]

Two fake OpenAI upstreams (real HTTP on loopback): the primary fails each call independently
with probability ``--failure-rate`` (503 after 5 ms, as a struggling upstream would), the
secondary always answers. Three runs through an embedded gateway:

- without the fallback plugin: requests go to the primary alone;
- with it: ``strategy: fallback`` over primary then secondary;
- with its circuit breaker on too (5 failures in 10 s open the primary for 1 s), which stops
  paying for calls the primary is likely to fail.

Prints the client's success rate, the calls each upstream got and p50/p99 latency per run.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from concurrent_calls import pct, run
from hookgate import Gateway
from hookgate.log import configure_logging

from tests.support.fake_openai import FakeOpenAI, Reply
from tests.support.servers import ServerThread


def gateway(plugins: list[str], breaker: bool) -> Gateway:
    tables: dict = {"openai": {"api_key": "sk-bench"}}
    if "fallback" in plugins:
        tables["fallback"] = {
            "circuit_breaker": {
                "enabled": breaker,
                "failure_threshold": 5,
                "window": 10,
                "cooldown": 1,
            }
        }
    return Gateway(
        {"gateway": {"plugins": plugins, "default_provider": "openai"}, "plugins": tables}
    )


def config(primary: FakeOpenAI, secondary: FakeOpenAI, fallback: bool) -> dict:
    first = {"provider": "openai", "custom_host": primary.url}
    if not fallback:
        return first
    second = {"provider": "openai", "custom_host": secondary.url}
    return {"strategy": {"mode": "fallback"}, "targets": [first, second]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--failure-rate", type=float, default=0.3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    configure_logging("error")

    thread = ServerThread()
    primary, secondary = FakeOpenAI(thread).start(), FakeOpenAI(thread).start()
    rng = random.Random(args.seed)
    runs = (
        ("primary only (no plugin)", ["openai"], False, False),
        ("fallback", ["openai", "fallback"], True, False),
        ("fallback + breaker", ["openai", "fallback"], True, True),
    )
    try:
        for label, plugins, fallback, breaker in runs:
            primary.reset()
            secondary.reset()
            primary.script(
                *(
                    Reply(status=503, delay=0.005) if rng.random() < args.failure_rate else Reply()
                    for _ in range(args.requests)
                )
            )
            cfg = config(primary, secondary, fallback)
            started = time.perf_counter()
            ok, latencies = asyncio.run(
                run(gateway(plugins, breaker), cfg, args.requests, args.concurrency)
            )
            wall = time.perf_counter() - started
            print(
                f"{label:<25} success {ok / args.requests:8.4%}, calls primary "
                f"{len(primary.calls()):5d} secondary {len(secondary.calls()):5d}, "
                f"p50 {pct(latencies, 50):6.2f} ms, p99 {pct(latencies, 99):6.2f} ms, "
                f"{args.requests / wall:5.0f} req/s"
            )
        print(
            f"({args.requests} requests per run, primary failure rate {args.failure_rate:.0%}, "
            f"concurrency {args.concurrency})"
        )
    finally:
        primary.stop()
        secondary.stop()
        thread.close()


if __name__ == "__main__":
    main()

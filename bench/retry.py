"""Fault injection for the retry plugin: what the client sees with and without it.

    uv run python bench/retry.py [--requests 10000] [--failure-rate 0.05] [--concurrency 32]

The fake OpenAI upstream (real HTTP on loopback) fails each call independently with
probability ``--failure-rate``, half with 429 and half with 503. The same number of requests
goes through an embedded gateway without the retry plugin, then with it (the config asks for
``retry: {attempts: 3}``; backoff starts at 10 ms with full jitter so the run stays short).
Prints the client's success rate, upstream calls and p50/p99 latency per run, and what the
plugin added.
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


def gateway(fake: FakeOpenAI, with_retry: bool) -> Gateway:
    plugins = ["openai", "retry"] if with_retry else ["openai"]
    tables = {"openai": {"base_url": fake.url, "api_key": "sk-bench"}}
    if with_retry:
        tables["retry"] = {"initial_delay": 0.01, "max_delay": 0.1, "jitter": True}
    return Gateway(
        {"gateway": {"plugins": plugins, "default_provider": "openai"}, "plugins": tables}
    )


def script_faults(fake: FakeOpenAI, calls: int, rate: float, rng: random.Random) -> None:
    fake.reset()
    replies = [
        Reply(status=rng.choice((429, 503))) if rng.random() < rate else fake.default
        for _ in range(calls)
    ]
    fake.script(*replies)


RETRY_CONFIG = {"provider": "openai", "retry": {"attempts": 3}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--failure-rate", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    configure_logging("error")

    thread = ServerThread()
    fake = FakeOpenAI(thread).start()
    rng = random.Random(args.seed)
    try:
        results = {}
        for label, with_retry in (("without retry", False), ("with retry", True)):
            # Enough scripted replies for every call, retries included; each is an independent draw.
            script_faults(fake, int(args.requests * 1.5) + 100, args.failure_rate, rng)
            started = time.perf_counter()
            ok, latencies = asyncio.run(
                run(gateway(fake, with_retry), RETRY_CONFIG, args.requests, args.concurrency)
            )
            wall = time.perf_counter() - started
            results[label] = latencies
            print(
                f"{label:<14} success {ok / args.requests:8.4%} ({ok}/{args.requests}), "
                f"upstream calls {len(fake.calls())}, p50 {pct(latencies, 50):6.2f} ms, "
                f"p99 {pct(latencies, 99):6.2f} ms, {args.requests / wall:6.0f} req/s"
            )
        base, retried = results["without retry"], results["with retry"]
        print(
            f"added by retrying: p50 {pct(retried, 50) - pct(base, 50):+.2f} ms, "
            f"p99 {pct(retried, 99) - pct(base, 99):+.2f} ms "
            f"(failure rate {args.failure_rate:.0%} per call, concurrency {args.concurrency})"
        )
    finally:
        fake.stop()
        thread.close()


if __name__ == "__main__":
    main()

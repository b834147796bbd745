"""Shared by the failure benchmarks (retry, fallback): many calls through an embedded gateway
at a fixed concurrency, and the percentiles of their latencies."""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from hookgate import Gateway, ProviderError

HELLO = [{"role": "user", "content": "ping"}]


async def run(
    gw: Gateway, config: dict[str, Any], requests: int, concurrency: int
) -> tuple[int, list[float]]:
    """Start ``gw``, make ``requests`` chat calls with ``config`` from ``concurrency`` workers;
    return how many succeeded and every call's latency (seconds)."""
    latencies: list[float] = []
    ok = 0
    pending = iter(range(requests))

    async def worker() -> None:
        nonlocal ok
        for _ in pending:
            start = time.perf_counter()
            try:
                await gw.chat.completions.create(model="gpt-4o-mini", messages=HELLO, config=config)
                ok += 1
            except ProviderError:
                pass
            latencies.append(time.perf_counter() - start)

    async with gw:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ok, latencies


def pct(values: list[float], q: float) -> float:
    """The ``q``-th percentile of ``values`` (seconds), in milliseconds."""
    return statistics.quantiles(values, n=1000)[int(q * 10) - 1] * 1000

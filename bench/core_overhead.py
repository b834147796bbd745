"""Per-request overhead of the core in embedded mode, against the zero-latency mock provider.

    uv run python bench/core_overhead.py [--requests 20000]

Prints µs per request for the whole embedded call (validation, config resolution, the five
hooks, the mock's answer, parsing into a ChatCompletion) and for the pipeline alone
(``gw.handle`` on a prepared context), with no feature plugins and with every plugin that
this checkout ships enabled. The mock's own work is measured too and reported, so the
core's share can be read off.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from hookgate import Gateway
from hookgate.plugins import installed_plugins

HELLO = [{"role": "user", "content": "What is the capital of France?"}]
FEATURE_PLUGIN_DEFAULTS = {
    # Features that need no server of their own. Logging measures its request-path cost:
    # records are built and dropped by its writer thread, not printed or stored.
    "logging": {"log_to": "none", "store": {"enabled": False}},
}


async def measure(gw: Gateway, n: int) -> dict[str, float]:
    create = gw.chat.completions.create
    for _ in range(500):
        await create(model="m", messages=HELLO)
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n // 5):
            await create(model="m", messages=HELLO)
        rounds.append((time.perf_counter() - start) / (n // 5) * 1e6)
    body = {"model": "m", "messages": HELLO}
    handle_rounds = []
    for _ in range(5):
        contexts = [gw.context("chat.completions", body) for _ in range(n // 5)]
        start = time.perf_counter()
        for ctx in contexts:
            await gw.handle(ctx)
        handle_rounds.append((time.perf_counter() - start) / (n // 5) * 1e6)
    mock = gw.plugin("mock")
    ctx = gw.context("chat.completions", body)
    target = ctx.plan.root
    start = time.perf_counter()
    for _ in range(n):
        await mock.call_provider(ctx, target)
    provider = (time.perf_counter() - start) / n * 1e6
    return {
        "create_us": statistics.median(rounds),
        "handle_us": statistics.median(handle_rounds),
        "mock_provider_us": provider,
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20000)
    args = parser.parse_args()
    installed = installed_plugins()
    shipped = [name for name in ("retry", "cache", "fallback", "logging") if name in installed]
    setups = {
        "no feature plugins": {"gateway": {"plugins": ["mock"], "default_provider": "mock"}},
        f"with {', '.join(shipped) or 'no other plugins installed'}": {
            "gateway": {"plugins": ["mock", *shipped], "default_provider": "mock"},
            "plugins": {
                name: FEATURE_PLUGIN_DEFAULTS[name]
                for name in shipped
                if name in FEATURE_PLUGIN_DEFAULTS
            },
        },
    }
    print(f"{'setup':<45} {'create() µs':>12} {'handle() µs':>12} {'mock µs':>9} {'core µs':>9}")
    for name, settings in setups.items():
        async with Gateway(settings) as gw:
            result = await measure(gw, args.requests)
        core = result["handle_us"] - result["mock_provider_us"]
        print(
            f"{name:<45} {result['create_us']:>12.1f} {result['handle_us']:>12.1f} "
            f"{result['mock_provider_us']:>9.1f} {core:>9.1f}"
        )


if __name__ == "__main__":
    asyncio.run(main())

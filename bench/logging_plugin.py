"""The logging plugin's cost: on the request path, and how fast its background writer keeps up.

    uv run python bench/logging_plugin.py [--requests 20000] [--records 50000]

1. Embedded mode against the zero-latency mock, with and without the plugin (JSON lines to a
   file, SQLite store, metrics on):
   - ``post_response`` phase: ``ctx.timings["post_response"]``, the time the core spends in the
     observers, i.e. what the plugin adds to the request path (target: <= 20 µs);
   - the whole ``create()`` and ``handle()`` per request. These include the background writer's
     CPU time too: it shares the GIL with the event loop, so under a tight loop its work shows
     up here even though no request waits for it.
2. The writer's two halves: what the event loop spends per record (build the record, count
   the metrics, render the JSON), and the thread's sustained rate, records/s (JSON lines to a
   file and SQLite in 500-record transactions); then the SQLite store alone.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from hookgate import Gateway
from hookgate_logging import Plugin, Settings
from hookgate_logging.record import Seen, build_record
from hookgate_logging.store import LogStore

HELLO = [{"role": "user", "content": "What is the capital of France?"}]
MOCK = {"gateway": {"plugins": ["mock"], "default_provider": "mock"}}


async def per_request(gw: Gateway, n: int) -> dict[str, float]:
    create = gw.chat.completions.create
    for _ in range(500):
        await create(model="gpt-4o-mini", messages=HELLO)
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n // 5):
            await create(model="gpt-4o-mini", messages=HELLO)
        rounds.append((time.perf_counter() - start) / (n // 5) * 1e6)
    body = {"model": "gpt-4o-mini", "messages": HELLO}
    handle_rounds = []
    observe = []
    for _ in range(5):
        contexts = [gw.context("chat.completions", body) for _ in range(n // 5)]
        start = time.perf_counter()
        for ctx in contexts:
            await gw.handle(ctx)
        handle_rounds.append((time.perf_counter() - start) / (n // 5) * 1e6)
        observe.append(statistics.median(c.timings["post_response"] for c in contexts) * 1e6)
    return {
        "create": statistics.median(rounds),
        "handle": statistics.median(handle_rounds),
        "post_response": statistics.median(observe),
    }


async def overhead(n: int, folder: Path) -> None:
    print(f"per request, embedded, zero-latency mock ({n} requests, median of 5 rounds):")
    print(f"  {'setup':<38} {'create() µs':>12} {'handle() µs':>12} {'post_response µs':>17}")
    plain = Gateway(MOCK)
    async with plain:
        base = await per_request(plain, n)
    with_plugin = Gateway(MOCK)
    plugin = Plugin(
        Settings(
            log_to=str(folder / "requests.jsonl"),
            store={"path": str(folder / "b.db")},
            queue_size=10_000_000,  # measure the whole cost: drop nothing
        )
    )
    with_plugin.register(plugin, "logging")
    async with with_plugin:
        logged = await per_request(with_plugin, n)
        caught_up = time.perf_counter()
        await plugin.flush(120)
        lag = time.perf_counter() - caught_up
        assert plugin.writer is not None
        written, dropped = plugin.writer.written, plugin.writer.dropped
    for name, result in (("without logging", base), ("with logging (file + SQLite)", logged)):
        print(
            f"  {name:<38} {result['create']:>12.1f} {result['handle']:>12.1f} "
            f"{result['post_response']:>17.2f}"
        )
    print(
        f"  added on the request path (post_response phase): "
        f"{logged['post_response'] - base['post_response']:.2f} µs; "
        f"end to end incl. the writer's share of the GIL: "
        f"{logged['create'] - base['create']:.1f} µs (create), "
        f"{logged['handle'] - base['handle']:.1f} µs (handle)"
    )
    print(
        f"  records written: {written}, dropped: {dropped}; "
        f"the writer caught up {lag * 1000:.0f} ms after the last request"
    )


async def sample_seen(n: int) -> list[Seen]:
    gw = Gateway(MOCK)
    seen: list[Seen] = []

    class Keep:
        from hookgate import hookimpl

        @hookimpl
        def post_response(self, ctx, response):  # type: ignore[no-untyped-def]
            seen.append(
                Seen(ctx, response, ctx.status, ctx.cache_status, None, ctx.error, ctx.completed)
            )

    gw.register(Keep(), "keep")
    async with gw:
        for i in range(n):
            await gw.chat.completions.create(
                model="gpt-4o-mini", messages=HELLO, options={"metadata": {"team": f"t{i % 7}"}}
            )
    return seen


def write_rate(records: int, folder: Path) -> None:
    from hookgate_logging.metrics import Metrics
    from hookgate_logging.prices import PriceTable
    from hookgate_logging.writer import Writer, open_log

    print(f"\nthe writer's two halves ({records} records, batches of 500):")
    seen = asyncio.run(sample_seen(records))
    prices = PriceTable.load()
    lines = open_log(str(folder / "writer.jsonl"), "json")
    writer = Writer(
        prices=prices,
        store=LogStore(folder / "writer.db"),
        lines=lines,
        metrics=Metrics(),
        batch_size=500,
        queue_size=records,
    )
    start = time.perf_counter()
    for item in seen:
        writer.submit(item)  # no event loop here: each record is built right away
    loop_side = time.perf_counter() - start
    print(f"  on the loop (build, count, render): {loop_side / records * 1e6:>8.2f} µs/record")
    start = time.perf_counter()
    writer.start()
    writer.close(600)
    elapsed = time.perf_counter() - start
    print(f"  the thread (log lines + SQLite):    {writer.written / elapsed:>8,.0f} records/s")
    items = [build_record(item, prices) for item in seen]
    store = LogStore(folder / "store.db")
    conn = store.connect()
    start = time.perf_counter()
    for i in range(0, len(items), 500):
        store.write(conn, items[i : i + 500])
    elapsed = time.perf_counter() - start
    conn.close()
    print(f"  SQLite store alone:                 {len(items) / elapsed:>8,.0f} records/s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--records", type=int, default=50000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hookgate-bench-") as folder:
        asyncio.run(overhead(args.requests, Path(folder)))
        write_rate(args.records, Path(folder))


if __name__ == "__main__":
    main()

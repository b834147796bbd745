"""Semantic cache: lookup latency with 1k, 10k and 100k entries, insert throughput, memory.

    uv run python bench/semantic_cache.py [--sizes 1000,10000,100000] [--lookups 300]
                                          [--chroma-server]

The store is filled with synthetic entries (random unit vectors, in the partition the
lookups use, so every entry is a candidate) through the plugin's own ``ChromaStore``; then
real questions are looked up through the plugin's ``cache_lookup`` hook: the local model
embeds the question, Chroma checks the exact id and runs the filtered nearest-neighbour
query, the guard checks the candidates. Half the questions are paraphrases of stored ones
(SEMANTIC HIT), half are new (SEMANTIC MISS). Each lookup is timed on its own.
Also printed: the embedding alone, single inserts (what ``post_response`` does) and bulk
inserts, and the process's resident memory. ``--chroma-server`` runs the same against a
``chroma run`` server on a free loopback port instead of the embedded store.
Target: lookup p50 <= 5 ms at 100k entries, embedded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import structlog
from hookgate import CallOptions, Gateway

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.servers import free_port

PAIRS = Path(__file__).resolve().parents[1] / "tests/plugins/semantic_cache/pairs.jsonl"
SEMANTIC = {"cache": {"mode": "semantic", "max_age": 3600}}


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = ordered[len(ordered) // 2] * 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    return f"p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  (n={len(ordered)})"


def start_chroma(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cli = Path(sys.executable).parent / "chroma"
    process = subprocess.Popen(
        [str(cli), "run", "--path", str(folder), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=1):
                return process, url
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("chroma run did not start")


async def run(sizes: list[int], lookups: int, server: bool) -> None:
    folder = Path(tempfile.mkdtemp(prefix="hookgate-semantic-bench-"))
    chroma = None
    table: dict[str, Any] = {"path": str(folder / "store"), "prune_interval": 0}
    if server:
        chroma, url = start_chroma(folder / "server")
        table = {"chroma_url": url, "prune_interval": 0}
    settings = {
        "gateway": {"plugins": ["mock", "semantic-cache"], "default_provider": "mock"},
        "plugins": {"semantic-cache": table},
    }
    pairs = [json.loads(line) for line in PAIRS.read_text(encoding="utf-8").splitlines()]
    stored = [p["a"] for p in pairs if p["same"] and p["lang"] == "en"]
    paraphrases = [p["b"] for p in pairs if p["same"] and p["lang"] == "en"]
    fresh = [f"Question number {i} about topic {i * 7919 % 1000}?" for i in range(lookups)]
    rng = np.random.default_rng(7)
    try:
        async with Gateway(settings) as gw:
            plugin: Any = gw.plugin("semantic-cache")
            store = plugin.store
            embedder = plugin.embedder
            print(f"store: {'chroma run server' if server else 'embedded PersistentClient'}")
            print(f"RSS after start-up (model loaded): {rss_mb():.0f} MB")

            embed_times = []
            for text in (stored + fresh)[:lookups]:
                start = time.perf_counter()
                embedder.embed_sync([text])
                embed_times.append(time.perf_counter() - start)
            print(f"embed one question (local model, 1 thread): {summary(embed_times)}")

            # the partition the benchmark's requests fall into
            ctx = gw.context(
                "chat.completions",
                {"model": "mock-1", "messages": [{"role": "user", "content": "x"}]},
                config=SEMANTIC,
                options=CallOptions(provider="mock"),
            )
            await plugin.cache_lookup(ctx)
            partition = ctx.state["semantic-cache"].partition

            # real entries, stored as post_response stores them
            for text in stored:
                await gw.chat.completions.create(
                    model="mock-1",
                    messages=[{"role": "user", "content": text}],
                    config=SEMANTIC,
                    options=CallOptions(provider="mock"),
                )
            filled = len(stored)
            batch = 5000
            for size in sizes:
                start = time.perf_counter()
                before = filled
                while filled < size:
                    n = min(batch, size - filled)
                    vectors = rng.standard_normal((n, 384)).astype(np.float32)
                    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                    now = time.time()
                    ids = [f"synthetic-{filled + i}" for i in range(n)]
                    meta = {
                        "partition": partition,
                        "semantic": True,
                        "created": now,
                        "expires": now + 3600,
                        "question": "synthetic question",
                        "kind": "json",
                        "status": 200,
                        "done_marker": True,
                    }
                    payload = '{"id": "synthetic"}'
                    await asyncio.to_thread(store.put_many, ids, vectors, [payload] * n, [meta] * n)
                    filled += n
                bulk = time.perf_counter() - start
                added = filled - before
                count = await asyncio.to_thread(store.count)
                print(f"\n== {count:,} entries ==")
                if added:
                    print(f"bulk insert (batches of {batch}): {added / bulk:,.0f} entries/s")

                singles = []
                for i in range(50):
                    vector = rng.standard_normal(384).astype(np.float32)
                    vector /= np.linalg.norm(vector)
                    start = time.perf_counter()
                    await asyncio.to_thread(
                        store.put, f"single-{size}-{i}", vector.tolist(), payload, meta
                    )
                    singles.append(time.perf_counter() - start)
                print(f"single insert (post_response's store): {summary(singles)}")
                print(f"  = {len(singles) / sum(singles):,.0f} inserts/s one at a time")

                statuses: dict[str, int] = {}
                times = []
                questions = [*paraphrases, *fresh][:lookups]
                for question in questions:
                    ctx = gw.context(
                        "chat.completions",
                        {"model": "mock-1", "messages": [{"role": "user", "content": question}]},
                        config=SEMANTIC,
                        options=CallOptions(provider="mock"),
                    )
                    start = time.perf_counter()
                    await plugin.cache_lookup(ctx)
                    times.append(time.perf_counter() - start)
                    statuses[ctx.cache_status] = statuses.get(ctx.cache_status, 0) + 1
                print(f"lookup (embed + exact get + query + guard): {summary(times)}  {statuses}")
                query_times = []
                for question in questions[:100]:
                    vector = embedder.embed_sync([question])[0].tolist()
                    now = time.time()
                    start = time.perf_counter()
                    store.query(vector, partition, now - 3600, now, 4)
                    query_times.append(time.perf_counter() - start)
                print(f"  of which the Chroma query alone: {summary(query_times)}")
                get_times = []
                for i in range(100):
                    start = time.perf_counter()
                    store.get(f"synthetic-{i * 97}")
                    get_times.append(time.perf_counter() - start)
                print(f"  an exact get by id alone: {summary(get_times)}")
                print(f"RSS: {rss_mb():.0f} MB")
    finally:
        if chroma is not None:
            chroma.terminate()
            chroma.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--lookups", type=int, default=300)
    parser.add_argument("--chroma-server", action="store_true")
    args = parser.parse_args()
    # the plugin logs every hit and miss at info level: keep the numbers readable
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    sizes = [int(s) for s in args.sizes.split(",")]
    asyncio.run(run(sizes, args.lookups, args.chroma_server))


if __name__ == "__main__":
    main()

"""Semantic cache through ``hookgate serve``: what a lookup (embed + store query + verifier)
adds to a request, at concurrency 1 and 16.

    uv run python bench/semantic_cache_server.py [--entries 300] [--lookups 240]

Starts ``hookgate serve`` (one worker, the embedded Chroma store, the mock provider) three
times: without the semantic cache (the baseline), with it and the verifier off
(``guard = false``), and with the defaults (verifier on). Each time it first stores the
answers to ``--entries`` questions (the ``a`` side of the labelled pairs, English and
Chinese), then asks ``--lookups`` other questions (their ``b`` side: paraphrases and near
misses, each asked once, so every lookup embeds, queries and verifies), half one at a time
and half 16 at a time, over kept-alive HTTP connections. Printed: p50 and p99 per
concurrency, and the hits. The verifier's cost is the difference between the last two.
On a 2-core machine the client, the server and the model share the cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from server_load import free_port, start_hookgate

PAIRS = Path(__file__).resolve().parents[1] / "tests/plugins/semantic_cache/data/pairs.jsonl"
CONFIG = json.dumps({"cache": {"mode": "semantic", "max_age": 3600}})


def write_config(workdir: Path, port: int, plugin: str | None) -> Path:
    plugins = '"mock"' + (', "semantic-cache"' if plugin is not None else "")
    path = workdir / "plugins.toml"
    path.write_text(
        textwrap.dedent(f"""
        [gateway]
        plugins = [{plugins}]
        default_provider = "mock"

        [server]
        host = "127.0.0.1"
        port = {port}
        workers = 1

        [plugins.semantic-cache]
        path = "{workdir}/store"
        prune_interval = 0
        """)
        + (plugin or "")
    )
    return path


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(port: int, stored: list[str], asked: list[str]) -> dict[str, object]:
    headers = {"x-portkey-config": CONFIG}
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", headers=headers, limits=limits, timeout=30
    ) as client:

        async def one(text: str) -> tuple[float, str]:
            body = {"model": "mock-1", "messages": [{"role": "user", "content": text}]}
            start = time.perf_counter()
            answer = await client.post("/v1/chat/completions", json=body)
            elapsed = time.perf_counter() - start
            assert answer.status_code == 200, answer.text
            return elapsed, answer.headers.get("x-portkey-cache-status", "")

        for text in stored:  # fill the store, one at a time (each answer is written)
            await one(text)
        await asyncio.sleep(1)  # the background writes land
        half = len(asked) // 2
        c1 = [await one(text) for text in asked[:half]]
        c16: list[tuple[float, str]] = []
        queue = list(asked[half:])

        async def worker() -> None:
            while queue:
                c16.append(await one(queue.pop()))

        await asyncio.gather(*(worker() for _ in range(16)))
    out: dict[str, object] = {}
    for name, results in (("c1", c1), ("c16", c16)):
        times = [t for t, _ in results]
        hits = sum(1 for _, status in results if status == "SEMANTIC HIT")
        out[name] = (
            percentile(times, 0.5) * 1e3,
            percentile(times, 0.99) * 1e3,
            hits,
            len(results),
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=300)
    parser.add_argument("--lookups", type=int, default=240)
    args = parser.parse_args()
    rows = [json.loads(line) for line in PAIRS.read_text(encoding="utf-8").splitlines()]
    rows = rows[:: max(1, len(rows) // max(args.entries, args.lookups))]
    stored = list(dict.fromkeys(r["a"] for r in rows))[: args.entries]
    asked = [q for q in dict.fromkeys(r["b"] for r in rows) if q not in stored][: args.lookups]
    print(f"{len(stored)} stored questions, {len(asked)} lookups (each question once)")
    for title, plugin in (
        ("no semantic cache (baseline)", None),
        ("semantic cache, verifier off (guard = false)", "guard = false\n"),
        ("semantic cache, defaults (verifier on)", ""),
    ):
        with tempfile.TemporaryDirectory(prefix="hookgate-semantic-server-") as folder:
            workdir = Path(folder)
            port = free_port()
            config = write_config(workdir, port, plugin)
            with (workdir / "stderr.log").open("wb") as log:
                process, _ = start_hookgate(config, port, log)
                try:
                    result = asyncio.run(run(port, stored, asked))
                finally:
                    process.terminate()
                    process.wait(10)
        print(f"\n{title}")
        for name in ("c1", "c16"):
            p50, p99, hits, total = result[name]  # type: ignore[misc]
            print(f"  {name:>3}: p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  hits {hits}/{total}")


if __name__ == "__main__":
    main()

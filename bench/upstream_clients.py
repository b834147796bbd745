"""Why hookgate's upstream client is aiohttp: requests/s of each client against one upstream.

    uv run python bench/upstream_clients.py [--seconds 5] [--concurrency 64]

Starts a minimal upstream in a separate process (aiohttp.web answering a fixed chat
completion), then, in this process, drives it for a few seconds with ``--concurrency``
concurrent tasks through each client: httpx.AsyncClient with its default transport, and
aiohttp.ClientSession (what hookgate.http.UpstreamClient uses). Prints requests/s and the
p50/p99 latency each client saw. Both clients pool connections and are built once.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import statistics
import time

import aiohttp
import httpx
import orjson

BODY = orjson.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "hello"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
)
REQUEST = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})


def upstream(port: int, ready: multiprocessing.synchronize.Event) -> None:
    from aiohttp import web

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=BODY, content_type="application/json")

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", answer)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


async def drive(send, seconds: float, concurrency: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            await send()
            latencies.append(time.perf_counter() - start)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(latencies) / (time.perf_counter() - started), latencies


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=upstream, args=(port, ready), daemon=True)
    server.start()
    ready.wait(10)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    headers = {"content-type": "application/json"}
    try:
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=1024)) as client:

            async def via_httpx() -> None:
                response = await client.post(url, content=REQUEST, headers=headers)
                orjson.loads(response.content)

            httpx_result = await drive(via_httpx, args.seconds, args.concurrency)
        connector = aiohttp.TCPConnector(limit=1024)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def via_aiohttp() -> None:
                async with session.post(url, data=REQUEST, headers=headers) as response:
                    orjson.loads(await response.read())

            aiohttp_result = await drive(via_aiohttp, args.seconds, args.concurrency)
    finally:
        server.terminate()
    print(f"one upstream process, concurrency {args.concurrency}, {args.seconds:g} s each")
    print(f"{'client':<32} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for name, (rate, latencies) in (
        ("httpx.AsyncClient (default)", httpx_result),
        ("aiohttp.ClientSession", aiohttp_result),
    ):
        latencies.sort()
        p99 = latencies[int(len(latencies) * 0.99)]
        print(
            f"{name:<32} {rate:>9.0f} {statistics.median(latencies) * 1000:>8.2f} {p99 * 1000:>8.2f}"
        )


if __name__ == "__main__":
    asyncio.run(main())

"""The floor: a 30-line proxy (Starlette + uvicorn + aiohttp, no validation, no hooks) under
the same harness as ``bench/server_load.py``.

    uv run python bench/bare_proxy.py        # prerequisites: nginx, wrk (apt-get install)

It forwards ``POST /v1/chat/completions`` to the same nginx upstream with the same worker
count, and prints the same rows, so hookgate's numbers from server_load.py can be read as a
share of what any Python proxy on this machine can do. The app below is the whole proxy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

UPSTREAM = os.environ.get("BARE_PROXY_UPSTREAM", "")
_session: aiohttp.ClientSession | None = None


async def chat(request: Request) -> Response:
    global _session
    if _session is None:
        _session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1024))
    body = await request.body()
    async with _session.post(
        UPSTREAM, data=body, headers={"content-type": "application/json"}
    ) as upstream:
        content = await upstream.read()
        return Response(content, status_code=upstream.status, media_type="application/json")


app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import server_load as harness

    with tempfile.TemporaryDirectory(prefix="hookgate-bare-") as tmp:
        workdir = Path(tmp)
        upstream_port, proxy_port = harness.free_port(), harness.free_port()
        nginx = harness.start_nginx(workdir, upstream_port)
        script = workdir / "post.lua"
        script.write_text(harness.WRK_SCRIPT.format(body=json.dumps(harness.CHAT_BODY)))
        env = {
            **os.environ,
            "BARE_PROXY_UPSTREAM": f"http://127.0.0.1:{upstream_port}/v1/chat/completions",
        }
        workers = len(os.sched_getaffinity(0))
        proxy = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bare_proxy:app",
                "--app-dir",
                str(Path(__file__).parent),
                "--port",
                str(proxy_port),
                "--workers",
                str(workers),
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            env=env,
        )
        try:
            harness.wait_port(proxy_port, proxy)
            time.sleep(1.0)
            url = f"http://127.0.0.1:{proxy_port}/v1/chat/completions"
            harness.wrk(url, script, connections=4, threads=1, seconds=1)  # warm-up
            pids = harness.process_tree(proxy.pid)
            c1 = harness.wrk(url, script, connections=1, threads=1, seconds=6)
            cpu = harness.cpu_seconds(pids)
            c64 = harness.wrk(url, script, connections=64, threads=2, seconds=6)
            per_request = (harness.cpu_seconds(pids) - cpu) / c64["requests"] * 1e6
        finally:
            proxy.terminate()
            proxy.wait(10)
            nginx.terminate()
            nginx.wait(10)
    print(f"bare proxy (Starlette + uvicorn + aiohttp), {workers} workers")
    print(f"  concurrency 1:  p50 {c1['p50'] / 1000:.3f} ms  p99 {c1['p99'] / 1000:.3f} ms")
    print(f"  concurrency 64: {c64['rps']:.0f} req/s, proxy CPU per request {per_request:.0f} µs")


if __name__ == "__main__":
    main()

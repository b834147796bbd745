"""Load benchmark: a fast fake upstream (nginx) direct versus through ``hookgate serve``.

Prerequisites (the bench installs nothing): ``nginx`` and ``wrk`` on PATH
(``apt-get install -y nginx wrk``). Run::

    uv run python bench/server_load.py            # ~1.5 minutes
    uv run python bench/server_load.py --growth 100000   # + RSS growth over 100k requests

One run measures, direct to nginx and through hookgate (reference-like plugins.toml: the
openai provider pointed at nginx, the logging plugin on, default worker count):

* latency p50/p99 at concurrency 1 (wrk, one connection), and the added latency;
* requests/s at concurrency 64 (wrk, 2 threads);
* time to the first streamed chunk (SSE), direct versus through, p50/p99 over sequential
  requests on a kept-alive connection;
* RSS of every hookgate process idle, after the load (and after ``--growth`` more requests);
* start-up time from ``hookgate serve`` to the first answered chat completion: of a second
  start, with the bytecode the first start compiled (as a deployment that ran
  ``uv sync --compile-bytecode`` or started once before has it), and of that first start.

nginx answers from memory (``return 200``) with one worker so hookgate gets the remaining
CPU; on a 2-core machine wrk, nginx and hookgate share the cores, so the through-hookgate
numbers are a lower bound.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

CHAT_BODY = json.dumps(
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}]}
)
STREAM_BODY = json.dumps(
    {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Say hello"}],
        "stream": True,
    }
)
COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello! How can I help you today?"},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 9, "total_tokens": 18},
        "system_fingerprint": "fp_bench",
    }
)


def _sse() -> str:
    words = ["Hello", "!", " How", " can", " I", " help", "?"]
    events = []
    for i, word in enumerate(words):
        delta = {"content": word} if i else {"role": "assistant", "content": word}
        chunk = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
        }
        events.append(f"data: {json.dumps(chunk)}\n\n")
    events.append("data: [DONE]\n\n")
    return "".join(events)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _nginx_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def start_nginx(workdir: Path, port: int) -> subprocess.Popen[bytes]:
    conf = workdir / "nginx.conf"
    conf.write_text(
        textwrap.dedent(f"""
        daemon off;
        worker_processes 1;
        pid {workdir}/nginx.pid;
        error_log {workdir}/nginx-error.log warn;
        events {{ worker_connections 4096; }}
        http {{
            access_log off;
            client_body_temp_path {workdir}/body;
            proxy_temp_path {workdir}/proxy;
            fastcgi_temp_path {workdir}/fastcgi;
            uwsgi_temp_path {workdir}/uwsgi;
            scgi_temp_path {workdir}/scgi;
            keepalive_requests 10000000;
            server {{
                listen 127.0.0.1:{port} backlog=4096;
                location = /v1/chat/completions {{
                    default_type application/json;
                    return 200 {_nginx_quote(COMPLETION)};
                }}
                location = /sse/v1/chat/completions {{
                    default_type text/event-stream;
                    return 200 {_nginx_quote(_sse())};
                }}
            }}
        }}
        """)
    )
    process = subprocess.Popen(
        ["nginx", "-c", str(conf), "-p", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    wait_port(port, process)
    return process


def wait_port(port: int, process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(
                f"process exited: {process.stderr.read().decode() if process.stderr else ''}"
            )
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.002)
    raise SystemExit(f"nothing listens on {port}")


def write_plugins_toml(workdir: Path, upstream: int, port: int, logging: bool) -> Path:
    path = workdir / "plugins.toml"
    plugins = '"mock", "openai", "retry", "fallback", "cache"' + (', "logging"' if logging else "")
    path.write_text(
        textwrap.dedent(f"""
        [gateway]
        plugins = [{plugins}]
        default_provider = "openai"
        custom_hosts = ["localhost", "127.0.0.1", "::1"]

        [server]
        host = "127.0.0.1"
        port = {port}
        workers = 0

        [plugins.openai]
        base_url = "http://127.0.0.1:{upstream}/v1"
        api_key = "sk-bench"

        [plugins.logging]
        log_to = "{workdir}/requests.jsonl"
        format = "json"
        store = {{ path = "{workdir}/logs.db", retention_days = 30 }}
        metrics = true

        [virtual_keys.sse]
        provider = "openai"
        api_key = "sk-bench"
        custom_host = "http://127.0.0.1:{upstream}/sse/v1"
        """)
    )
    return path


def hookgate_executable() -> str:
    found = Path(sys.executable).parent / "hookgate"
    return str(found) if found.exists() else shutil.which("hookgate") or "hookgate"


def chat_ok(port: int) -> bool:
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(CHAT_BODY)}\r\nConnection: close\r\n\r\n{CHAT_BODY}"
    ).encode()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(request)
            return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


READY_STARTS = 4  # the first compiles; the median of the other three is reported


def bytecode_env(cache: Path) -> dict[str, str]:
    """The environment of a deployed gateway: Python keeps compiled bytecode (in ``cache``,
    leaving the venv alone) instead of compiling every module at every start, which is what
    ``PYTHONDONTWRITEBYTECODE=1`` (set on this project's machines) forces."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPYCACHEPREFIX": str(cache)}


def start_hookgate(
    config: Path, port: int, log: Any, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], float]:
    env = {**(env or os.environ), "PYTHONUNBUFFERED": "1"}
    began = time.perf_counter()
    process = subprocess.Popen(
        [hookgate_executable(), "serve", "--config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    deadline = began + 30
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"hookgate serve exited with {process.returncode}; see its stderr")
        if chat_ok(port):
            return process, time.perf_counter() - began
        time.sleep(0.005)
    raise SystemExit("hookgate serve never answered")


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of ``pids`` (robust to other load on a shared machine)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def rss_report(root: int) -> dict[int, float]:
    return {pid: rss_mib(pid) for pid in process_tree(root)}


WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench"
done = function(summary, latency, requests)
  io.write(string.format(
    "WRKJSON {{\\"p50\\": %d, \\"p99\\": %d, \\"requests\\": %d, \\"non2xx\\": %d, "
    .. "\\"errors\\": %d, \\"duration_us\\": %d}}\\n",
    latency:percentile(50), latency:percentile(99), summary.requests,
    summary.errors.status, summary.errors.connect + summary.errors.read
      + summary.errors.write + summary.errors.timeout, summary.duration))
end
"""


def wrk(
    url: str, script: Path, *, connections: int, threads: int, seconds: float
) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds:g}s",
            "--timeout",
            "5s",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(line for line in out.splitlines() if line.startswith("WRKJSON "))
    result = json.loads(line.removeprefix("WRKJSON "))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


async def _ttfb(port: int, path: str, headers: str, count: int) -> list[float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{headers}"
        f"Content-Length: {len(STREAM_BODY)}\r\n\r\n{STREAM_BODY}"
    ).encode()
    times = []
    try:
        for _ in range(count):
            began = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            chunked = b"transfer-encoding: chunked" in head.lower()
            # First body byte carrying an event: the first chunk.
            if chunked:
                await reader.readuntil(b"data: ")
                times.append(time.perf_counter() - began)
                await reader.readuntil(b"0\r\n\r\n")
            else:
                length = int(
                    next(
                        line.split(b":", 1)[1]
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    )
                )
                await reader.readexactly(6)
                times.append(time.perf_counter() - began)
                await reader.readexactly(length - 6)
    finally:
        writer.close()
    return times


def ttfb(port: int, path: str, headers: str = "", count: int = 500) -> tuple[float, float]:
    times = sorted(asyncio.run(_ttfb(port, path, headers, count))[20:])  # skip warm-up
    return statistics.median(times) * 1000, times[int(len(times) * 0.99) - 1] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6, help="each wrk run")
    parser.add_argument("--growth", type=int, default=0, help="extra requests for RSS growth")
    parser.add_argument(
        "--without-logging", action="store_true", help="leave the logging plugin out"
    )
    args = parser.parse_args()
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not on PATH: apt-get install -y nginx wrk")

    with tempfile.TemporaryDirectory(prefix="hookgate-bench-") as tmp:
        workdir = Path(tmp)
        upstream_port, gateway_port = free_port(), free_port()
        nginx = start_nginx(workdir, upstream_port)
        script = workdir / "post.lua"
        script.write_text(WRK_SCRIPT.format(body=json.dumps(CHAT_BODY)))
        config = write_plugins_toml(
            workdir, upstream_port, gateway_port, logging=not args.without_logging
        )
        hookgate = None
        stderr = (workdir / "hookgate-stderr.log").open("wb")
        try:
            # A first start compiles every module (and here keeps the bytecode); the measured
            # run is a second start, as every start of a deployment after its first is.
            env = bytecode_env(workdir / "pycache")
            starts = []
            for _ in range(READY_STARTS):
                hookgate, ready = start_hookgate(config, gateway_port, stderr, env)
                starts.append(ready)
                if len(starts) < READY_STARTS:
                    hookgate.send_signal(signal.SIGTERM)
                    hookgate.wait(30)
            ready_first_s, ready_s = starts[0], statistics.median(starts[1:])
            time.sleep(1.0)
            idle = rss_report(hookgate.pid)
            direct_url = f"http://127.0.0.1:{upstream_port}/v1/chat/completions"
            through_url = f"http://127.0.0.1:{gateway_port}/v1/chat/completions"
            wrk(through_url, script, connections=4, threads=1, seconds=1)  # warm-up
            results = {}
            for name, url in (("direct", direct_url), ("through", through_url)):
                results[name, "c1"] = wrk(
                    url, script, connections=1, threads=1, seconds=args.seconds
                )
                pids = process_tree(hookgate.pid)
                cpu = cpu_seconds(pids)
                results[name, "c64"] = wrk(
                    url, script, connections=64, threads=2, seconds=args.seconds
                )
                if name == "through":
                    cpu_per_request = (cpu_seconds(pids) - cpu) / results[name, "c64"]["requests"]
            after = rss_report(hookgate.pid)
            ttfb_direct = ttfb(upstream_port, "/sse/v1/chat/completions")
            ttfb_through = ttfb(
                gateway_port, "/v1/chat/completions", "x-portkey-virtual-key: sse\r\n"
            )
            growth = None
            if args.growth:
                rps = results["through", "c64"]["rps"]
                wrk(
                    through_url,
                    script,
                    connections=64,
                    threads=2,
                    seconds=max(2, round(args.growth / rps)),
                )
                growth = rss_report(hookgate.pid)
        finally:
            if hookgate is not None:
                hookgate.send_signal(signal.SIGTERM)
                hookgate.wait(30)
            nginx.terminate()
            nginx.wait(10)
            stderr.close()
            exit_code = None if hookgate is None else hookgate.returncode

    def row(name: str, key: str) -> str:
        r = results[name, key]
        bad = f"  non-2xx {r['non2xx']} errors {r['errors']}" if r["non2xx"] or r["errors"] else ""
        return (
            f"  {name:8} p50 {r['p50'] / 1000:7.3f} ms  p99 {r['p99'] / 1000:7.3f} ms  "
            f"{r['rps']:9.0f} req/s{bad}"
        )

    plugins = "mock, openai, retry, fallback, cache" + ("" if args.without_logging else ", logging")
    print(f"plugins: {plugins}; workers: default ({len(os.sched_getaffinity(0))} cores)")
    print(f"each wrk run {args.seconds:g} s; hookgate exited with {exit_code} after SIGTERM")
    print("concurrency 1 (wrk -t1 -c1):")
    print(row("direct", "c1"))
    print(row("through", "c1"))
    d, t = results["direct", "c1"], results["through", "c1"]
    print(
        f"  added    p50 {(t['p50'] - d['p50']) / 1000:7.3f} ms  p99 {(t['p99'] - d['p99']) / 1000:7.3f} ms"
    )
    print("concurrency 64 (wrk -t2 -c64):")
    print(row("direct", "c64"))
    print(row("through", "c64"))
    print(
        f"  hookgate CPU per request at c64: {cpu_per_request * 1e6:.0f} µs "
        f"(all processes; {1 / cpu_per_request:.0f} req/s per fully used core)"
    )
    print("time to first streamed chunk (sequential, keep-alive):")
    print(f"  direct   p50 {ttfb_direct[0]:7.3f} ms  p99 {ttfb_direct[1]:7.3f} ms")
    print(f"  through  p50 {ttfb_through[0]:7.3f} ms  p99 {ttfb_through[1]:7.3f} ms")
    print(f"  added    p50 {ttfb_through[0] - ttfb_direct[0]:7.3f} ms")
    print(
        f"ready: first answered request {ready_s:.3f} s after `hookgate serve` started "
        f"(median of {READY_STARTS - 1} starts; the first, compiling every module: "
        f"{ready_first_s:.3f} s)"
    )
    print(
        "RSS per process (MiB): pid idle -> after load" + (" -> after growth run" if growth else "")
    )
    for pid, mib in idle.items():
        line = f"  {pid:>7} {mib:6.1f} -> {after.get(pid, 0):6.1f}"
        if growth:
            line += f" -> {growth.get(pid, 0):6.1f}"
        print(line)


if __name__ == "__main__":
    main()

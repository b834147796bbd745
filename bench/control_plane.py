"""The control plane's cost on the request path, and how fast a change is live elsewhere.

    uv run python bench/control_plane.py [--configs 10000] [--changes 20] [--database-url URL]

With ``--database-url postgresql://...`` (an empty database) the store is PostgreSQL, shared by
both instances, instead of the SQLite file beside plugins.toml.

1. Resolution: a store with ``--configs`` stored configs (written in one import), loaded into
   a gateway's snapshot. Prints µs per ``gateway.context()`` (validation, config resolution,
   routing plan) for a request with no config, a plugins.toml config id and a stored config id
   (current version, a pinned version), the difference being what the control plane adds; and
   µs per ``authenticate`` of a stored gateway key. Also the snapshot's load time.
2. Propagation: ``hookgate serve --workers 2`` plus a second ``hookgate serve`` instance on the
   same store. Each round updates a config through one worker and times until the other
   worker, and the other instance, answer with the new version (median, p95, max of
   ``--changes`` rounds).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from hookgate import Gateway, hookimpl

HOOKGATE = str(Path(sys.executable).parent / "hookgate")
BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
TOML = """
[gateway]
plugins = ["mock", "control", "worker-id"]
default_provider = "mock"
[plugins.worker-id]
use = "control_plane:WorkerId"
[plugins.control]
poll_interval = {poll}
{store}
[configs.pc-toml]
provider = "mock"
override_params = {{ model = "toml" }}
"""


class WorkerId:
    """``GET /_worker``: the pid, so the bench can hold one connection per worker."""

    @hookimpl
    def register_routes(self, gateway: Any) -> list[Any]:
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        async def worker(request: Any) -> JSONResponse:
            return JSONResponse({"pid": os.getpid()})

        return [Route("/_worker", worker, methods=["GET"])]


def per_call_us(fn: Any, n: int) -> float:
    for _ in range(min(n, 2000)):
        fn()
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n // 5):
            fn()
        rounds.append((time.perf_counter() - start) / (n // 5) * 1e6)
    return statistics.median(rounds)


async def resolution(folder: Path, count: int, n: int) -> str:
    gateway = Gateway.from_toml(folder / "plugins.toml")
    plugin: Any = gateway.plugin("control")
    start = time.perf_counter()
    await gateway.start()
    loaded = time.perf_counter() - start
    plane = plugin.plane
    from hookgate.auth import Principal

    cli = Principal(key_id="bench", name="bench", role="admin")
    configs = [
        {
            "slug": f"pc-bench-{i}",
            "name": f"bench {i}",
            "config": {"provider": "mock", "override_params": {"model": f"m{i}"}},
        }
        for i in range(count)
    ]
    start = time.perf_counter()
    await asyncio.to_thread(plane.import_, cli, {"configs": configs})
    written = time.perf_counter() - start
    start = time.perf_counter()
    await plugin.refresh()
    refreshed = time.perf_counter() - start
    _, key = await asyncio.to_thread(plane.create_key, cli, {"name": "k", "role": "member"})
    await plugin.refresh()
    principal = gateway.hooks.authenticate(key, {})
    assert principal is not None and principal.key_id

    from hookgate.gateway import CallOptions

    options = CallOptions(principal=principal)
    context = gateway.context
    hot = f"pc-bench-{count // 2}"
    pinned = f"{hot}@1"
    context("chat.completions", BODY, config=pinned, options=options)
    rows = [
        ("no config", lambda: context("chat.completions", BODY, options=options)),
        (
            "plugins.toml config id",
            lambda: context("chat.completions", BODY, config="pc-toml", options=options),
        ),
        (
            "stored config id",
            lambda: context("chat.completions", BODY, config=hot, options=options),
        ),
        (
            "stored config, pinned version",
            lambda: context("chat.completions", BODY, config=pinned, options=options),
        ),
    ]
    results = [(name, per_call_us(fn, n)) for name, fn in rows]
    spread = [f"pc-bench-{i}" for i in range(0, count, max(1, count // 1000))][:1000]
    cursor = iter(range(10**9))

    def many() -> None:
        context(
            "chat.completions", BODY, config=spread[next(cursor) % len(spread)], options=options
        )

    results.append((f"stored config ids, {len(spread)} in turn", per_call_us(many, n)))
    auth = per_call_us(lambda: gateway.hooks.authenticate(key, {}), n)
    await gateway.aclose()
    base = results[1][1]
    lines = [
        f"store: {count} configs written in {written:.2f} s (one import), snapshot refreshed "
        f"in {refreshed * 1000:.0f} ms, empty start-up {loaded * 1000:.0f} ms",
        f"{'gateway.context()':40} {'µs/request':>10} {'added vs toml id':>17}",
    ]
    for name, us in results:
        lines.append(f"{name:40} {us:10.2f} {us - base:17.2f}")
    lines.append(f"{'authenticate (stored gateway key)':40} {auth:10.2f}")
    return "\n".join(lines)


def start(config: Path, port: int, workers: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            HOOKGATE,
            "serve",
            "--config",
            str(config),
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("hookgate serve did not start")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def propagation(folder: Path, rounds: int) -> str:
    config = folder / "plugins.toml"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    made = subprocess.run(
        [
            HOOKGATE,
            "keys",
            "create",
            "--name",
            "bench",
            "--role",
            "admin",
            "--json",
            "--config",
            str(config),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    key = json.loads(made.stdout)["key"]
    headers = {"x-portkey-api-key": key}
    port_a, port_b = free_port(), free_port()
    servers = [start(config, port_a, 2, env), start(config, port_b, 1, env)]
    try:
        workers: dict[int, httpx.Client] = {}
        for _ in range(200):
            client = httpx.Client(base_url=f"http://127.0.0.1:{port_a}", timeout=10)
            pid = client.get("/_worker", headers=headers).json()["pid"]  # every route wants a key
            if pid in workers:
                client.close()
                continue
            workers[pid] = client
            if len(workers) == 2:
                break
        writer, other = list(workers.values())
        instance = httpx.Client(base_url=f"http://127.0.0.1:{port_b}", timeout=10)
        slug = writer.post(
            "/v1/configs",
            headers=headers,
            json={
                "name": "live",
                "config": {"provider": "mock", "override_params": {"model": "v0"}},
            },
        ).json()["slug"]
        worker_times: list[float] = []
        instance_times: list[float] = []
        for i in range(1, rounds + 1):
            model = f"v{i}"
            answer = writer.put(
                f"/v1/configs/{slug}",
                headers=headers,
                json={
                    "config": {"provider": "mock", "override_params": {"model": model}},
                },
            )
            assert answer.status_code == 200, answer.text
            written = time.perf_counter()
            pending = {"worker": other, "instance": instance}
            while pending:
                for name, client in list(pending.items()):
                    got = client.post(
                        "/v1/chat/completions",
                        json=BODY,
                        headers={**headers, "x-portkey-config": slug},
                    )
                    if got.json().get("model") == model:
                        took = (time.perf_counter() - written) * 1000
                        (worker_times if name == "worker" else instance_times).append(took)
                        del pending[name]
                if time.perf_counter() - written > 5:
                    raise SystemExit("a change was not live within 5 s")
            time.sleep(0.05)
        for client in [*workers.values(), instance]:
            client.close()
    finally:
        for process in servers:
            process.terminate()
            process.wait(timeout=20)

    def summary(values: list[float]) -> str:
        ordered = sorted(values)
        p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
        return (
            f"median {statistics.median(ordered):6.0f} ms   p95 {p95:6.0f} ms   "
            f"max {ordered[-1]:6.0f} ms"
        )

    return "\n".join(
        [
            f"change live after an update through worker 1 ({rounds} rounds, poll_interval "
            f"{POLL} s):",
            f"  on the other worker    {summary(worker_times)}",
            f"  on the other instance  {summary(instance_times)}",
        ]
    )


POLL = 0.25


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--database-url", default=None, help="An empty PostgreSQL database.")
    args = parser.parse_args()
    store = f'store = {{ url = "{args.database_url}" }}' if args.database_url else ""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "plugins.toml").write_text(TOML.format(poll=POLL, store=store), encoding="utf-8")
        os.environ.pop("HOOKGATE_MASTER_KEY", None)
        print(f"store: {'PostgreSQL' if args.database_url else 'SQLite'}")
        sys.path.insert(0, str(Path(__file__).parent))
        print(asyncio.run(resolution(folder, args.configs, args.requests)))
        print(propagation(folder, args.changes))


if __name__ == "__main__":
    main()

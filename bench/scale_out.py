"""Scale-out: two ``hookgate serve`` instances behind nginx against one alone, and what the
shared backends (Redis for the cache, PostgreSQL for the logs) cost per request against the
single-machine defaults (memory cache, SQLite logs).

Prerequisites: ``nginx``, ``wrk``, ``redis-server`` and PostgreSQL's ``initdb``/``pg_ctl``
(``bash tests/install-deps.sh && apt-get install -y wrk``). Run::

    uv run python bench/scale_out.py [--seconds 5] [--connections 64]

Every gateway runs the mock provider (answers at once, no upstream) with retry, fallback,
cache and logging, and 2 workers (one per core here). Reported per run: requests/s, p50/p99
(wrk), errors, and CPU seconds per request of the gateway processes (robust to other load).

1. **Topologies** at ``--connections``: one instance direct; one instance behind nginx (the
   balancer's own cost); two instances behind nginx (deploy/nginx/hookgate.conf), sharing
   Redis and PostgreSQL. On a 2-core machine two instances share the same two cores that one
   uses, plus nginx and wrk: this shows the cost of the extra hop and processes, not a gain;
   on separate machines throughput adds up per instance since nothing is shared per request
   but Redis and PostgreSQL round trips.
3. **Shared backends, per request**, one instance at c16: exact-cache hits from memory vs
   Redis; logs into SQLite vs PostgreSQL.
2. **Visibility**: an exact-cache entry made through one instance, asked once through the
   other 0, 10, 50 or 100 ms after the answer that made it: how often it is a HIT there.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import httpx  # noqa: E402
from server_load import (  # noqa: E402
    CHAT_BODY,
    cpu_seconds,
    free_port,
    hookgate_executable,
    process_tree,
    wait_port,
    wrk,
)

from tests.support.servers import NginxServer, PostgresServer, RedisServer  # noqa: E402

LUA = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
{headers}
done = function(summary, latency, requests)
  io.write(string.format(
    "WRKJSON {{\\"p50\\": %d, \\"p99\\": %d, \\"requests\\": %d, \\"non2xx\\": %d, "
    .. "\\"errors\\": %d, \\"duration_us\\": %d}}\\n",
    latency:percentile(50), latency:percentile(99), summary.requests,
    summary.errors.status, summary.errors.connect + summary.errors.read
      + summary.errors.write + summary.errors.timeout, summary.duration))
end
"""


def lua(workdir: Path, name: str, headers: dict[str, str]) -> Path:
    path = workdir / f"{name}.lua"
    lines = "\n".join(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items())
    path.write_text(LUA.format(body=json.dumps(CHAT_BODY), headers=lines))
    return path


class Gateway:
    def __init__(self, workdir: Path, name: str, *, cache: str, logs: str) -> None:
        self.port = free_port()
        config = workdir / f"{name}.toml"
        config.write_text(
            textwrap.dedent(f"""
            [gateway]
            plugins = ["mock", "retry", "fallback", "cache", "logging"]
            default_provider = "mock"
            [server]
            port = {self.port}
            workers = 2
            [plugins.cache]
            {cache}
            [plugins.logging]
            log_to = "none"
            store = {logs}
            """)
        )
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        self.log = open(workdir / f"{name}.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [hookgate_executable(), "serve", "--config", str(config)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        wait_port(self.port, self.process, timeout=120)
        time.sleep(1)  # both workers up

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu(self) -> float:
        return cpu_seconds(process_tree(self.process.pid))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(60)
        self.log.close()


def run(
    url: str, script: Path, connections: int, seconds: float, gateways: list[Gateway]
) -> dict[str, Any]:
    threads = 2 if connections >= 2 else 1
    wrk(
        f"{url}/v1/chat/completions",
        script,
        connections=min(connections, 8),
        threads=threads,
        seconds=1,
    )
    before = sum(g.cpu() for g in gateways)
    result = wrk(
        f"{url}/v1/chat/completions",
        script,
        connections=connections,
        threads=threads,
        seconds=seconds,
    )
    result["cpu_us"] = (sum(g.cpu() for g in gateways) - before) / max(result["requests"], 1) * 1e6
    return result


def show(name: str, r: dict[str, Any]) -> None:
    print(
        f"  {name:<40} {r['rps']:>8,.0f} req/s  p50 {r['p50'] / 1000:6.2f} ms  "
        f"p99 {r['p99'] / 1000:7.2f} ms  errors {r['non2xx'] + r['errors']}  "
        f"CPU {r['cpu_us']:.0f} µs/request"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="hookgate-bench-scale-"))
    redis = RedisServer()
    pg = PostgresServer()
    started: list[Gateway] = []
    nginx: list[NginxServer] = []

    def gateway(name: str, cache: str, logs: str) -> Gateway:
        g = Gateway(workdir, name, cache=cache, logs=logs)
        started.append(g)
        return g

    def balancer(*gws: Gateway) -> NginxServer:
        second = gws[1] if len(gws) > 1 else gws[0]
        n = NginxServer(
            str(ROOT / "deploy" / "nginx" / "hookgate.conf"),
            {
                "gateway-1:8787": f"127.0.0.1:{gws[0].port}",
                "gateway-2:8787": f"127.0.0.1:{second.port}",
            },
        )
        nginx.append(n)
        return n

    shared_cache = f'backend = "redis"\nurl = "{redis.url}"'
    plain = lua(workdir, "plain", {})
    try:
        database = pg.database()
        pg_logs = f'{{ url = "{database}" }}'
        a = gateway("a", shared_cache, pg_logs)
        b = gateway("b", shared_cache, pg_logs)
        c = args.connections
        print(f"1. topologies, wrk c{c}, {args.seconds:g} s (Redis cache, PostgreSQL logs):")
        show("one instance, direct", run(a.url, plain, c, args.seconds, [a]))
        show("one instance behind nginx", run(balancer(a).url, plain, c, args.seconds, [a]))
        show("two instances behind nginx", run(balancer(a, b).url, plain, c, args.seconds, [a, b]))

        print("2. an exact-cache entry made through one instance, asked once through the other")
        print("   that long after the answer that made it (20 fresh questions per delay):")
        with httpx.Client(timeout=10) as client:
            headers = {"x-portkey-config": json.dumps({"cache": {"mode": "simple"}})}
            for delay_ms in (0, 10, 50, 100):
                hits = 0
                for _ in range(20):
                    body = {
                        "model": "m",
                        "messages": [{"role": "user", "content": str(uuid.uuid4())}],
                    }
                    client.post(f"{a.url}/v1/chat/completions", json=body, headers=headers)
                    time.sleep(delay_ms / 1000)
                    r = client.post(f"{b.url}/v1/chat/completions", json=body, headers=headers)
                    hits += r.headers.get("x-portkey-cache-status") == "HIT"
                print(f"  after {delay_ms:>3} ms: HIT {hits} of 20")
        for g in (a, b):
            g.stop()
        started.clear()
        for n in nginx:
            n.close()
        nginx.clear()

        print("3. shared backends, per request, one instance, wrk c16:")
        hit = lua(workdir, "hit", {"x-portkey-config": json.dumps({"cache": {"mode": "simple"}})})
        memory = gateway("memory", 'backend = "memory"', "{ enabled = false }")
        show("exact-cache hit, memory", run(memory.url, hit, 16, args.seconds, [memory]))
        memory.stop()
        shared = gateway("redis", shared_cache, "{ enabled = false }")
        show("exact-cache hit, Redis", run(shared.url, hit, 16, args.seconds, [shared]))
        shared.stop()
        sqlite = gateway("sqlite", 'backend = "memory"', f'{{ path = "{workdir}/logs.db" }}')
        show("no cache, logs into SQLite", run(sqlite.url, plain, 16, args.seconds, [sqlite]))
        sqlite.stop()
        postgres = gateway("pg", 'backend = "memory"', f'{{ url = "{pg.database()}" }}')
        show(
            "no cache, logs into PostgreSQL", run(postgres.url, plain, 16, args.seconds, [postgres])
        )
        postgres.stop()
        started.clear()
    finally:
        for n in nginx:
            n.close()
        for g in started:
            if g.process.poll() is None:
                g.stop()
        redis.stop()
        pg.close()


if __name__ == "__main__":
    main()

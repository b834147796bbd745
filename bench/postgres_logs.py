"""The PostgreSQL log store: records per second into the database, and what a stalled database
costs the answers.

Prerequisites: PostgreSQL's ``initdb``/``pg_ctl`` (``bash tests/install-deps.sh``) and ``wrk``
(``apt-get install -y wrk``). Run::

    uv run python bench/postgres_logs.py [--records 50000] [--seconds 10] [--connections 16]

1. **Records per second**: the store (``PostgresLogStore``, COPY in batches from its own thread)
   is handed ``--records`` real records (one request's record, cloned with fresh trace ids and
   times) in writer-sized batches; the clock stops when the last is committed.
2. **A stalled database under load**: ``hookgate serve`` (mock provider, logging into the
   database, default workers) under wrk at ``--connections`` for ``--seconds``, first with the
   database answering, then with every PostgreSQL process frozen (SIGSTOP) for the whole run.
   Reported: p50/p99, requests/s and errors of both runs, how long the backlog took to drain
   after SIGCONT, and whether every answered request's record arrived.

The database is a throwaway cluster started here on a free port (fsync off, as in the tests).
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import psycopg  # noqa: E402
from server_load import CHAT_BODY, WRK_SCRIPT, free_port, hookgate_executable, wait_port, wrk  # noqa: E402

from tests.support.servers import PostgresServer  # noqa: E402


def rows(url: str) -> int:
    with psycopg.connect(url) as conn:
        if conn.execute("SELECT to_regclass('hookgate_requests')").fetchone() == (None,):
            return 0
        found = conn.execute("SELECT count(*) FROM hookgate_requests").fetchone()
        return int(found[0]) if found else 0


def sample_record() -> tuple[dict[str, object], str]:
    """One real record, as the logging plugin builds it for a mock answer."""
    import asyncio

    from hookgate import Gateway
    from hookgate_logging import Plugin, Settings

    got: list[dict[str, object]] = []
    plugin = Plugin(Settings(log_to="none", store={"enabled": False}), sinks=[got.append])
    gw = Gateway({"gateway": {"plugins": ["mock"], "default_provider": "mock"}})
    gw.register(plugin, "logging")

    async def one() -> None:
        async with gw:
            await gw.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "Say hello"}],
                options={"metadata": {"team": "bench"}},
            )
            await plugin.flush()

    asyncio.run(one())
    record = got[0]
    return record, json.dumps(record)


def records_per_second(url: str, n: int) -> float:
    from hookgate_logging.pgstore import PostgresLogStore

    record, _ = sample_record()
    now = time.time()
    items = []
    for i in range(n):
        clone = {**record, "trace_id": f"bench-{i}", "ts": now + i * 1e-4}
        items.append((clone, json.dumps(clone)))
    store = PostgresLogStore(url, batch_size=1000)
    store.connect()
    store.write(None, items[:1])  # the schema and today's partition, outside the clock
    assert store.flush(60)
    began = time.perf_counter()
    for start in range(1, n, 500):  # the writer's thread hands over batches of this size
        store.write(None, items[start : start + 500])
    assert store.flush(300), "the store did not catch up"
    took = time.perf_counter() - began
    store.close()
    return (n - 1) / took


def write_config(workdir: Path, url: str, port: int) -> Path:
    path = workdir / "plugins.toml"
    path.write_text(
        textwrap.dedent(f"""
        [gateway]
        plugins = ["mock", "retry", "fallback", "cache", "logging"]
        default_provider = "mock"
        [server]
        port = {port}
        [plugins.logging]
        log_to = "none"
        store = {{ url = "{url}" }}
        """)
    )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()

    pg = PostgresServer()
    try:
        url = pg.database()
        rate = records_per_second(url, args.records)
        print(f"records into PostgreSQL: {rate:,.0f} records/s ({args.records:,} records, COPY)")

        url = pg.database()
        workdir = Path(tempfile.mkdtemp(prefix="hookgate-bench-pg-"))
        port = free_port()
        config = write_config(workdir, url, port)
        script = workdir / "post.lua"
        script.write_text(WRK_SCRIPT.format(body=json.dumps(CHAT_BODY)))
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        with open(workdir / "serve.log", "wb") as log:
            server = subprocess.Popen(
                [hookgate_executable(), "serve", "--config", str(config)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
            try:
                wait_port(port, server, timeout=60)
                target = f"http://127.0.0.1:{port}/v1/chat/completions"
                warm = wrk(target, script, connections=8, threads=2, seconds=2)
                while rows(url) < warm["requests"]:
                    time.sleep(0.1)
                base = rows(url)
                threads = 2
                normal = wrk(
                    target,
                    script,
                    connections=args.connections,
                    threads=threads,
                    seconds=args.seconds,
                )
                with pg.stall():
                    stalled = wrk(
                        target,
                        script,
                        connections=args.connections,
                        threads=threads,
                        seconds=args.seconds,
                    )
                resumed = time.perf_counter()
                answered = normal["requests"] + stalled["requests"]
                deadline = resumed + 120
                while rows(url) - base < answered and time.perf_counter() < deadline:
                    time.sleep(0.1)
                drained = time.perf_counter() - resumed
                stored = rows(url) - base
            finally:
                server.terminate()
                server.wait(60)
        print(
            f"hookgate serve, mock provider, logging into PostgreSQL, wrk c{args.connections} "
            f"for {args.seconds:g} s each:"
        )
        for name, run in (("database answering", normal), ("database stalled (SIGSTOP)", stalled)):
            print(
                f"  {name:<27} p50 {run['p50'] / 1000:.2f} ms  p99 {run['p99'] / 1000:.2f} ms  "
                f"{run['rps']:,.0f} req/s  non-2xx {run['non2xx']}  socket errors {run['errors']}"
            )
        print(
            f"  p99 stalled / answering: {stalled['p99'] / max(normal['p99'], 1):.2f}x; "
            f"backlog drained {drained:.1f} s after SIGCONT; records stored {stored:,} of "
            f"{answered:,} answered"
        )
    finally:
        pg.close()


if __name__ == "__main__":
    main()

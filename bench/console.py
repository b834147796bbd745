"""The console on real volumes: log queries and pages at 10k, 100k and 1M request records.

    uv run python bench/console.py [--records 10000 100000 1000000] [--folder DIR] [--no-http]
                                   [--postgres URL|auto]

1. Seeds a SQLite log store per size (once; kept in ``--folder`` for the next run) with
   records spread over the last 24 hours: 6 models, 3 providers, 4 workspaces, cache hits and
   misses, 2 % errors, a ``team`` metadata key. They are written the way the logging plugin
   writes them (``LogStore.write``, 5000 per transaction, rollups included).
   With ``--postgres``, the same records go into PostgreSQL instead (``PostgresLogStore``,
   COPY batches with their rollups; ``auto`` starts a server of its own from
   ``tests/support/servers.py`` in a temporary folder), one database per size, seeded anew
   each run unless the database already holds that many records.
2. Times the log query hooks' implementation (``LogReader``, what the console awaits): the
   newest page, a page deep in the log by its cursor, a page per filter, and monitoring
   aggregates over 1 h, 24 h and 7 d (one with a metadata key, one that must read records).
3. Unless ``--no-http``: starts ``hookgate serve`` on the biggest store and times the
   console's pages over HTTP (logs, logs filtered, a request page, monitoring 24 h).

Each number is the median of 5 runs (after one warm-up), in milliseconds. The targets: the
logs page <= 300 ms, monitoring queries <= 1 s.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
from hookgate.logquery import AggregateQuery, LogFilter, LogQuery
from hookgate_logging.pgstore import PostgresLogStore
from hookgate_logging.query import LogReader
from hookgate_logging.store import LogStore

ROOT = Path(__file__).resolve().parents[1]

MODELS = [
    "gpt-4o-mini",
    "gpt-4o",
    "claude-3-5-haiku",
    "yi-lightning",
    "deepseek-chat",
    "gemini-1.5-flash",
]
PROVIDERS = ["openai", "anthropic", "lingyi"]
WORKSPACES = ["ws-a", "ws-b", "ws-c", "ws-d"]
CACHE = ["MISS"] * 5 + ["HIT"] * 2 + ["SEMANTIC HIT", "SEMANTIC MISS", "DISABLED"]
ADMIN = "bench-admin-key-0123456789"


def record(i: int, ts: float, rng: random.Random) -> dict[str, Any]:
    model = MODELS[i % len(MODELS)]
    cache = CACHE[rng.randrange(len(CACHE))]
    failed = rng.random() < 0.02
    status = rng.choice((429, 500, 503)) if failed else 200
    latency = rng.lognormvariate(5.5, 0.8)  # median ~245 ms
    prompt, completion = rng.randrange(10, 2000), rng.randrange(1, 800)
    hit = cache in ("HIT", "SEMANTIC HIT")
    cost = (prompt * 0.15 + completion * 0.6) / 1e6
    return {
        "timestamp": "",
        "ts": ts,
        "trace_id": f"{int(ts * 1000):012x}{i:020x}",
        "endpoint": "chat.completions",
        "metadata": {"team": f"team-{i % 7}", "env": "prod"},
        "provider": None if hit else PROVIDERS[i % len(PROVIDERS)],
        "model": model,
        "model_sent": model,
        "model_answered": model,
        "target": "config.targets[0]",
        "config_id": "pc-bench" if i % 3 == 0 else None,
        "config_version": (i % 5) + 1 if i % 3 == 0 else None,
        "workspace": WORKSPACES[i % len(WORKSPACES)],
        "status": status,
        "stream": False,
        "completed": True,
        "latency_ms": round(1.0 if hit else latency, 3),
        "upstream_ms": None if hit else round(latency * 0.95, 3),
        "ttft_ms": None,
        "attempts": [] if hit else [{"path": "config.targets[0]", "provider": "openai", "retry": 0, "status": status, "error": None, "delay_ms": 0.0, "latency_ms": latency}],
        "retries": 0,
        "fallbacks": 0,
        "cache_status": cache,
        "cache_similarity": 0.93 if cache == "SEMANTIC HIT" else None,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "usage_source": "response",
        "cost_usd": 0.0 if hit else cost,
        "cost_saved_usd": cost if hit else None,
        "error_type": "ProviderError" if failed else None,
        "error_code": "upstream_error" if failed else None,
    }  # fmt: skip


def seed(path: Path, n: int) -> float:
    """Write ``n`` records over the last 24 h; returns seconds taken (0 if already there)."""
    done = path.with_suffix(".done")
    if done.exists():
        return 0.0
    path.unlink(missing_ok=True)
    store = LogStore(path)
    conn = store.connect()
    rng = random.Random(n)
    now = time.time()
    start = now - 86400
    started = time.perf_counter()
    batch: list[tuple[dict[str, Any], str]] = []
    for i in range(n):
        r = record(i, start + 86400 * i / n, rng)
        batch.append((r, orjson.dumps(r).decode()))
        if len(batch) == 5000:
            store.write(conn, batch)
            batch = []
    if batch:
        store.write(conn, batch)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("ANALYZE")
    conn.close()
    done.write_text(str(n))
    return time.perf_counter() - started


def seed_postgres(url: str, n: int) -> float:
    """``n`` records over the last 24 h into PostgreSQL (0 if it holds them already)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass('hookgate_requests')").fetchone()
        if exists and exists[0] is not None:
            have = conn.execute("SELECT count(*) FROM hookgate_requests").fetchone()
            if have and have[0] == n:
                return 0.0
            for table in ("requests", "rollup", "rollup_meta", "rollup_dim"):
                conn.execute(f"DROP TABLE IF EXISTS hookgate_{table} CASCADE")
    store = PostgresLogStore(url, batch_size=5000, backlog=n + 1)
    rng = random.Random(n)
    start = time.time() - 86400
    started = time.perf_counter()
    batch: list[tuple[dict[str, Any], str]] = []
    for i in range(n):
        r = record(i, start + 86400 * i / n, rng)
        batch.append((r, orjson.dumps(r).decode()))
        if len(batch) == 5000:
            store.write(None, batch)
            batch = []
            store.flush(600)  # keep the backlog (memory) small
    if batch:
        store.write(None, batch)
    assert store.flush(600), "the records did not reach PostgreSQL"
    store.close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - started


def timed(work: Callable[[], Any], runs: int = 5) -> float:
    work()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def queries(store: LogStore | PostgresLogStore) -> dict[str, float]:
    reader = LogReader(store)
    out: dict[str, float] = {}
    now = time.time()
    try:
        with reader.store.reading() as conn:

            def page(**kwargs: Any) -> Callable[[], Any]:
                return lambda: reader.page(conn, LogQuery(filter=LogFilter(**kwargs), limit=50))

            out["logs: newest 50"] = timed(page())
            cursor = None
            for _ in range(20):  # 20 pages back: 1000 records deep
                cursor = reader.page(conn, LogQuery(limit=50, cursor=cursor)).next_cursor
            out["logs: page 21 by cursor"] = timed(
                lambda: reader.page(conn, LogQuery(limit=50, cursor=cursor))
            )
            out["logs: model"] = timed(page(model="gpt-4o"))
            out["logs: status 5xx"] = timed(page(status_class=5))
            out["logs: model + 5xx"] = timed(page(model="gpt-4o", status_class=5))
            out["logs: workspace"] = timed(page(workspace="ws-b"))
            out["logs: cache SEMANTIC HIT"] = timed(page(cache_status="SEMANTIC HIT"))
            out["logs: config + version"] = timed(page(config_id="pc-bench", config_version=3))
            out["logs: metadata team=team-3"] = timed(page(metadata=(("team", "team-3"),)))
            out["logs: trace id"] = timed(page(trace_id=f"{int((now - 3600) * 1000):012x}"))
            out["logs: last hour, 503"] = timed(page(since=now - 3600, status=503))

            def agg(span: float, **kwargs: Any) -> Callable[[], Any]:
                bucket = 60 if span <= 3600 else (900 if span <= 86400 else 7200)
                key = kwargs.pop("metadata_key", None)
                return lambda: reader.aggregate(
                    conn,
                    AggregateQuery(
                        filter=LogFilter(since=now - span, until=now, **kwargs),
                        bucket_s=bucket,
                        metadata_key=key,
                    ),
                )

            out["monitoring: 1 h"] = timed(agg(3600))
            out["monitoring: 24 h"] = timed(agg(86400))
            out["monitoring: 24 h by team"] = timed(agg(86400, metadata_key="team"))
            out["monitoring: 24 h one workspace"] = timed(agg(86400, workspace="ws-c"))
            out["monitoring: 7 d"] = timed(agg(7 * 86400))
            out["monitoring: 1 h, metadata filter"] = timed(
                agg(3600, metadata=(("team", "team-1"),))
            )
            out["monitoring: 24 h, metadata filter"] = timed(
                agg(86400, metadata=(("team", "team-1"),))
            )
            out["monitoring: 24 h, provider"] = timed(agg(86400, provider="openai"))
            out["monitoring: 24 h, config + version"] = timed(
                agg(86400, config_id="pc-bench", config_version=3)
            )
            out["monitoring: 1 h, provider + metadata (records)"] = timed(
                agg(3600, provider="openai", metadata=(("team", "team-1"),))
            )
    finally:
        reader.close()
    return out


def pages(folder: Path, store: str) -> dict[str, float]:
    """``store``: the TOML inline table's body naming the store."""
    config = folder / "plugins.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            [gateway]
            plugins = ["mock", "logging", "console"]
            default_provider = "mock"
            [server]
            api_keys = ["{ADMIN}"]
            workers = 1
            [plugins.logging]
            log_to = "none"
            store = {{ {store}, retention_days = 0 }}
            """
        )
    )
    port = 18000 + random.randrange(2000)
    hookgate = str(Path(sys.executable).parent / "hookgate")
    process = subprocess.Popen(
        [hookgate, "serve", "--config", str(config), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    out: dict[str, float] = {}
    try:
        with httpx.Client(timeout=30, headers={"x-portkey-api-key": ADMIN}) as client:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    if client.get(f"{url}/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            trace = client.get(f"{url}/console/api/logs", params={"limit": 1}).json()["data"][0][
                "trace_id"
            ]

            def get(path: str) -> Callable[[], Any]:
                def run() -> None:
                    answer = client.get(url + path)
                    assert answer.status_code == 200, (path, answer.status_code)

                return run

            out["page /console/logs"] = timed(get("/console/logs"))
            out["page /console/logs?model=gpt-4o&status=5xx"] = timed(
                get("/console/logs?model=gpt-4o&status=5xx")
            )
            out["page /console/logs?trace_id=..."] = timed(get(f"/console/logs?trace_id={trace}"))
            out["page /console/requests/{trace}"] = timed(get(f"/console/requests/{trace}"))
            out["page /console/monitoring (24 h)"] = timed(get("/console/monitoring?range=24h"))
            out["page /console/monitoring (7 d, by team)"] = timed(
                get("/console/monitoring?range=7d&by=team")
            )
    finally:
        process.terminate()
        process.wait(30)
    return out


def database(admin_url: str, name: str) -> str:
    """The URL of database ``name`` on the server of ``admin_url``, created if missing."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument(
        "--folder", type=Path, default=Path(tempfile.gettempdir()) / "hookgate-console-bench"
    )
    parser.add_argument("--no-http", action="store_true")
    parser.add_argument(
        "--postgres",
        default=None,
        metavar="URL",
        help="PostgreSQL (a URL whose user may create databases, or 'auto' for a server of its own)",
    )
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    server = None
    if args.postgres == "auto":
        sys.path.insert(0, str(ROOT))
        from tests.support.servers import PostgresServer

        server = PostgresServer()
        args.postgres = server.url
    results: dict[int, dict[str, float]] = {}
    try:
        for n in args.records:
            store: LogStore | PostgresLogStore
            if args.postgres:
                url = database(args.postgres, f"hookgate_bench_{n}")
                took = seed_postgres(url, n)
                store, where = PostgresLogStore(url), f'url = "{url}"'
                what = "PostgreSQL"
            else:
                db = args.folder / f"logs-{n}.db"
                took = seed(db, n)
                store, where = LogStore(db), f'path = "{db}"'
                migrating = time.perf_counter()
                store.connect().close()  # what the gateway does first: bring the schema up to date
                if (spent := time.perf_counter() - migrating) > 1:
                    print(f"{n:>9,} records: schema brought up to date in {spent:.1f} s")
                what = f"{db.stat().st_size / 1e6:.0f} MB"
            print(
                f"{n:>9,} records: {f'seeded in {took:.1f} s' if took else 'store reused'}, {what}",
                flush=True,
            )
            results[n] = queries(store)
            if not args.no_http:
                results[n].update(pages(args.folder, where))
    finally:
        if server is not None:
            server.close()
    names = list(next(iter(results.values())))
    print()
    print(f"{'median ms':<48}" + "".join(f"{n:>12,}" for n in results))
    for name in names:
        print(f"{name:<48}" + "".join(f"{results[n][name]:>12.1f}" for n in results))


if __name__ == "__main__":
    main()

"""The log store on a real PostgreSQL: every instance's records in one place, never in the way."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
import structlog
from hookgate import CallOptions, Gateway
from hookgate.errors import SettingsError
from hookgate_logging import Plugin, Settings
from hookgate_logging.pgstore import PostgresLogStore

from tests.support.servers import PostgresServer

HOOKGATE = str(Path(sys.executable).with_name("hookgate"))
HELLO = [{"role": "user", "content": "hello"}]


def gateway(url: str, **store: object) -> tuple[Gateway, Plugin]:
    plugin = Plugin(Settings(log_to="none", store={"url": url, **store}))
    gw = Gateway({"gateway": {"plugins": ["mock"], "default_provider": "mock"}})
    gw.register(plugin, "logging")
    return gw, plugin


def count(url: str, where: str = "") -> int:
    with psycopg.connect(url) as conn:
        exists = conn.execute("SELECT to_regclass('hookgate_requests')").fetchone()
        if exists is None or exists[0] is None:
            return 0  # the store creates its table at its first write
        row = conn.execute(f"SELECT count(*) FROM hookgate_requests {where}").fetchone()
    assert row is not None
    return int(row[0])


async def test_records_reach_the_database_without_a_flush(postgres_url):
    gw, _ = gateway(postgres_url)
    async with gw:
        for i in range(20):
            await gw.chat.completions.create(
                model="m", messages=HELLO, options=CallOptions(trace_id=f"t-{i}")
            )
        deadline = time.monotonic() + 10
        while count(postgres_url) < 20 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert count(postgres_url) == 20
    with psycopg.connect(postgres_url) as conn:
        trace, status, record = conn.execute(
            "SELECT trace_id, status, record FROM hookgate_requests WHERE trace_id = 't-7'"
        ).fetchone()
        assert (trace, status) == ("t-7", 200)
        assert json.loads(record)["model"] == "m"
        # one partition per day, indexes on the parent for the readers' queries
        parts = conn.execute(
            "SELECT count(*) FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent "
            "WHERE p.relname = 'hookgate_requests'"
        ).fetchone()
        assert parts is not None and parts[0] >= 2  # today and tomorrow
        plan = "\n".join(
            row[0]
            for row in conn.execute(
                "EXPLAIN SELECT record FROM hookgate_requests WHERE trace_id = 't-7'"
            )
        )
        assert "hookgate_requests" in plan


@pytest.mark.timeout(300)  # four processes start and import the gateway
def test_logs_and_stats_read_every_instance(postgres_url, tmp_path, write_toml):
    """Two gateways (two processes, as two instances are) write one database; the CLI, from a
    third, reads both."""
    script = (
        "import asyncio, sys\n"
        "from hookgate import Gateway, CallOptions\n"
        "async def main(url, name):\n"
        "    s = {'gateway': {'plugins': ['mock', 'logging'], 'default_provider': 'mock'},\n"
        "         'plugins': {'logging': {'log_to': 'none', 'metrics': False,\n"
        "                                 'store': {'url': url}}}}\n"
        "    async with Gateway(s) as gw:\n"
        "        for i in range(15):\n"
        "            await gw.chat.completions.create(model=name, messages=[{'role': 'user',\n"
        "                'content': 'hi'}], options=CallOptions(trace_id=f'{name}-{i}',\n"
        "                metadata={'instance': name}))\n"
        "asyncio.run(main(sys.argv[1], sys.argv[2]))\n"
    )
    runs = [
        subprocess.Popen([sys.executable, "-c", script, postgres_url, name])
        for name in ("one", "two")
    ]
    assert [run.wait(240) for run in runs] == [0, 0]
    config = write_toml(
        f"""
        [gateway]
        plugins = ["mock", "logging"]
        [plugins.logging]
        store = {{ url = "{postgres_url}" }}
        """
    )

    def cli(*args: str) -> str:
        done = subprocess.run(
            [HOOKGATE, *args, "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    records = [json.loads(line) for line in cli("logs", "--json", "--limit", "100").splitlines()]
    assert sorted(r["trace_id"] for r in records) == sorted(
        f"{name}-{i}" for name in ("one", "two") for i in range(15)
    )
    assert [r["ts"] for r in records] == sorted((r["ts"] for r in records), reverse=True)
    only = cli("logs", "--json", "--model", "two", "--trace-id", "two-3").splitlines()
    assert [json.loads(line)["trace_id"] for line in only] == ["two-3"]
    stats = json.loads(cli("stats", "--json", "--by", "instance"))
    assert stats["requests"] == 30
    assert stats["errors"] == 0
    assert {m["model"]: m["requests"] for m in stats["by_model"]} == {"one": 15, "two": 15}
    groups = {g["value"]: g["requests"] for g in stats["by_metadata"]["groups"]}
    assert groups == {"one": 15, "two": 15}
    assert stats["latency_ms"]["p50"] is not None
    assert "requests: 30" in cli("stats")


def test_logs_says_when_the_database_is_unreachable(tmp_path, write_toml):
    config = write_toml(
        """
        [gateway]
        plugins = ["mock", "logging"]
        [plugins.logging]
        store = { url = "postgresql://hookgate:s3cret-pw@127.0.0.1:1/logs" }
        """
    )
    done = subprocess.run(
        [HOOKGATE, "logs", "--config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "cannot read the log store" in done.stderr
    assert "Traceback" not in done.stderr
    assert "s3cret-pw" not in done.stderr


async def test_a_database_that_goes_away_costs_no_answer_and_the_backlog_drains(
    postgres_server: PostgresServer, postgres_url
):
    gw, plugin = gateway(postgres_url)
    with structlog.testing.capture_logs() as logs:
        async with gw:
            await gw.chat.completions.create(model="m", messages=HELLO)
            assert await plugin.flush()
            postgres_server.stop()
            try:
                answers = await asyncio.gather(
                    *[
                        asyncio.wait_for(gw.chat.completions.create(model="m", messages=HELLO), 5)
                        for _ in range(30)
                    ]
                )
                assert all(a.choices[0].message.content.startswith("[mock]") for a in answers)
                assert not await plugin.flush(1)  # the store tried, and failed
                body, _ = plugin.exposition()  # what /metrics answers
                errors = [
                    line
                    for line in body.decode().splitlines()
                    if line.startswith("hookgate_log_store_errors_total")
                ]
                assert float(errors[0].split()[-1]) >= 1
            finally:
                postgres_server.start()
            assert await plugin.flush(30)
    assert count(postgres_url) == 31
    events = [e["event"] for e in logs]
    assert events.count("log_store_unavailable") == 1  # once per outage, not per retry
    assert "log_store_recovered" in events


async def test_the_backlog_is_bounded_and_what_it_drops_is_counted(
    postgres_server: PostgresServer, postgres_url
):
    gw, plugin = gateway(postgres_url, backlog=5)
    async with gw:
        await gw.chat.completions.create(model="m", messages=HELLO)
        assert await plugin.flush()
        postgres_server.stop()
        try:
            for i in range(20):
                await gw.chat.completions.create(
                    model="m", messages=HELLO, options=CallOptions(trace_id=f"late-{i}")
                )
            assert not await plugin.flush(1)  # the database is down: not everything is in
        finally:
            postgres_server.start()
        assert await plugin.flush(30)
        body, _ = plugin.exposition()
    dropped = [
        line
        for line in body.decode().splitlines()
        if line.startswith("hookgate_log_store_dropped_total")
    ]
    assert float(dropped[0].split()[-1]) == 15
    with psycopg.connect(postgres_url) as conn:
        kept = [r[0] for r in conn.execute("SELECT trace_id FROM hookgate_requests ORDER BY ts")]
    assert kept[1:] == [f"late-{i}" for i in range(15, 20)]  # the newest were kept


async def test_a_stalled_database_blocks_neither_answers_nor_log_lines(
    postgres_server: PostgresServer, postgres_url, tmp_path
):
    lines = tmp_path / "requests.jsonl"
    plugin = Plugin(Settings(log_to=str(lines), store={"url": postgres_url}))
    gw = Gateway({"gateway": {"plugins": ["mock"], "default_provider": "mock"}})
    gw.register(plugin, "logging")
    async with gw:
        await gw.chat.completions.create(model="m", messages=HELLO)
        assert await plugin.flush()
        with postgres_server.stall():
            for i in range(10):
                answer = await asyncio.wait_for(
                    gw.chat.completions.create(
                        model="m", messages=HELLO, options=CallOptions(trace_id=f"s-{i}")
                    ),
                    5,
                )
                assert answer.choices[0].message.content.startswith("[mock]")
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:  # the log lines do not wait for the database
                if lines.exists() and lines.read_text().count("\n") == 11:
                    break
                await asyncio.sleep(0.05)
            assert lines.read_text().count("\n") == 11
        assert await plugin.flush(30)
    assert count(postgres_url) == 11


def test_instances_starting_together_create_the_schema_once(postgres_url):
    stores = [PostgresLogStore(postgres_url) for _ in range(4)]
    failures: list[BaseException] = []

    def start(store: PostgresLogStore) -> None:
        try:
            with store.reading() as conn:
                conn.execute("SELECT count(*) FROM hookgate_requests")
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=start, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert failures == []


def test_retention_drops_old_days_whole_and_trims_the_oldest_day_left(postgres_url):
    store = PostgresLogStore(postgres_url)
    now = time.time()

    def record(trace: str, ts: float) -> tuple[dict[str, object], str]:
        item = {"ts": ts, "trace_id": trace, "status": 200, "attempts": [], "metadata": {}}
        return item, json.dumps(item)

    try:
        store.write(
            None,
            [
                record("ancient", now - 40 * 86400),
                record("old", now - 3.5 * 86400),
                record("edge", now - 2.2 * 86400),
                record("new", now),
            ],
        )
        assert store.flush(10)
        with psycopg.connect(postgres_url) as conn:
            before = {
                r[0]
                for r in conn.execute(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "WHERE c.relkind = 'r'"
                )
            }
        store.delete_older_than(None, 2.5)
        deadline = time.monotonic() + 10
        while count(postgres_url) != 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        with psycopg.connect(postgres_url) as conn:
            left = [
                r[0] for r in conn.execute("SELECT trace_id FROM hookgate_requests ORDER BY ts")
            ]
            after = {
                r[0]
                for r in conn.execute(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "WHERE c.relkind = 'r'"
                )
            }
        assert left == ["edge", "new"]
        assert len(before - after) == 2  # the 40-day-old and 3.5-day-old partitions are gone
    finally:
        store.close()


async def test_an_unknown_url_scheme_is_a_start_up_error():
    gw, _ = gateway("mysql://localhost/logs")
    with pytest.raises(SettingsError, match="postgresql://"):
        async with gw:
            pass


async def test_logs_copy_moves_a_sqlite_store_into_postgres_once(logged, postgres_url):
    log = logged()
    async with log.gateway as gw:
        for i in range(12):
            await gw.chat.completions.create(
                model="m", messages=HELLO, options=CallOptions(trace_id=f"old-{i}")
            )
        await log.flush()

    def copy() -> str:
        done = subprocess.run(
            [HOOKGATE, "logs-copy", "--from", str(log.db), "--to", postgres_url],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "copied 12 of 12" in copy()
    assert "copied 0 of 12" in copy()  # again: nothing twice
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute("SELECT record FROM hookgate_requests ORDER BY ts").fetchall()
    assert [json.loads(r[0]) for r in rows] == log.records()


def test_a_database_from_before_the_rollups_gets_them_and_answers_the_query_hooks(postgres_url):
    """An older schema (no workspace or config columns, no rollup tables) is brought up to
    date on first use, its records added into the rollups once."""
    from hookgate.logquery import AggregateQuery, LogFilter, LogQuery
    from hookgate_logging.query import LogReader

    now = time.time()
    items = []
    for i in range(6):
        item = {
            "ts": now - 30 + i,
            "trace_id": f"old-{i}",
            "model": "m",
            "provider": "p1" if i % 2 else "p2",
            "status": 200,
            "latency_ms": 12.0,
            "total_tokens": 3,
            "attempts": [],
            "metadata": {"team": "red"},
        }
        items.append((item, json.dumps(item)))
    store = PostgresLogStore(postgres_url)
    store.write(None, items)
    assert store.flush(10)
    store.close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:  # back to the older schema
        for table in ("hookgate_rollup", "hookgate_rollup_meta", "hookgate_rollup_dim"):
            conn.execute(f"DROP TABLE {table}")
        conn.execute("DROP INDEX hookgate_requests_failed")
        for column in ("workspace", "config_id", "config_version"):
            conn.execute(f"ALTER TABLE hookgate_requests DROP COLUMN {column}")
    reader = LogReader(PostgresLogStore(postgres_url))
    try:
        with reader.store.reading() as conn:
            window = LogFilter(since=now - 120, until=now + 60)
            agg = reader.aggregate(conn, AggregateQuery(filter=window, metadata_key="team"))
            assert agg.requests == 6 and agg.total_tokens == 18
            assert [(m["value"], m["requests"]) for m in agg.by_metadata] == [("red", 6)]
            p1 = reader.aggregate(
                conn,
                AggregateQuery(filter=LogFilter(since=now - 120, until=now + 60, provider="p1")),
            )
            assert p1.requests == 3
            page = reader.page(conn, LogQuery(filter=LogFilter(model="m"), limit=4))
            assert [r["trace_id"] for r in page.records] == ["old-5", "old-4", "old-3", "old-2"]
            assert page.next_cursor is not None
    finally:
        reader.close()


def test_instances_adding_into_the_same_rollup_rows_at_once_lose_nothing(postgres_url):
    """Four stores (as four instances) write the same minutes at once: every record is counted
    once in the rollups, and none of their transactions deadlocks."""
    from hookgate.logquery import AggregateQuery, LogFilter
    from hookgate_logging.query import LogReader

    now = time.time()
    stores = [PostgresLogStore(postgres_url, batch_size=50) for _ in range(4)]

    def items(which: int) -> list[tuple[dict[str, object], str]]:
        out = []
        for i in range(400):
            item = {
                "ts": now - 240 + (i % 240),
                "trace_id": f"s{which}-{i}",
                "model": ("a", "b")[i % 2],
                "provider": ("p1", "p2")[i % 2],
                "status": 200,
                "latency_ms": 10.0,
                "total_tokens": 1,
                "attempts": [],
                "metadata": {"team": ("red", "blue")[i % 2]},
            }
            out.append((item, json.dumps(item)))
        return out

    with structlog.testing.capture_logs() as logs:
        for which, store in enumerate(stores):
            store.write(None, items(which))
        assert all(store.flush(60) for store in stores)
        for store in stores:
            store.close()
    assert [e for e in logs if e["event"] == "log_store_unavailable"] == []
    assert sum(store.errors for store in stores) == 0
    reader = LogReader(PostgresLogStore(postgres_url))
    try:
        with reader.store.reading() as conn:
            window = dict(since=now - 600, until=now + 60)
            agg = reader.aggregate(
                conn, AggregateQuery(filter=LogFilter(**window), metadata_key="team")
            )
            assert agg.requests == 1600 and agg.total_tokens == 1600
            assert {m["value"]: m["requests"] for m in agg.by_metadata} == {
                "red": 800,
                "blue": 800,
            }
            p1 = reader.aggregate(
                conn, AggregateQuery(filter=LogFilter(**window, provider="p1"), bucket_s=300)
            )
            assert p1.requests == 800
    finally:
        reader.close()


async def test_a_query_while_the_database_is_down_is_a_503_and_works_again_after(
    postgres_server: PostgresServer, postgres_url
):
    from hookgate.errors import UnavailableError
    from hookgate.logquery import LogQuery

    gw, plugin = gateway(postgres_url)
    async with gw:
        await gw.chat.completions.create(
            model="m", messages=HELLO, options=CallOptions(trace_id="before")
        )
        assert await plugin.flush()
        page = await gw.hooks.query_logs(gw, LogQuery())
        assert [r["trace_id"] for r in page.records] == ["before"]
        postgres_server.stop()
        try:
            with pytest.raises(UnavailableError, match="log store cannot be read") as failed:
                await asyncio.wait_for(gw.hooks.query_logs(gw, LogQuery()), 30)
            assert failed.value.http_status == 503
        finally:
            postgres_server.start()
        page = await gw.hooks.query_logs(gw, LogQuery())  # a new connection, at once
        assert [r["trace_id"] for r in page.records] == ["before"]

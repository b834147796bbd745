"""The log query interface (query_logs / aggregate_logs), answered by each store: the SQLite
file and PostgreSQL (the ``backend`` fixture runs a test on both)."""

from __future__ import annotations

import sqlite3
import time

import orjson
import pytest
from hookgate import BadRequestError, CallOptions
from hookgate.logquery import AggregateQuery, LogFilter, LogQuery
from hookgate_logging.pgstore import PostgresLogStore
from hookgate_logging.query import LogReader
from hookgate_logging.sql import SQLITE, record_filters
from hookgate_logging.store import LogStore, rollups

HELLO = [{"role": "user", "content": "hello"}]


async def _fill(gw, n: int = 12) -> None:
    for i in range(n):
        meta = {"team": "red" if i % 3 == 0 else "blue"}
        config = {"cache": {"mode": "simple"}} if i >= 8 else None
        await gw.chat.completions.create(
            model="alpha" if i % 2 else "beta",
            messages=[{"role": "user", "content": "same" if i >= 8 else f"hello {i}"}],
            config=config,
            options=CallOptions(metadata=meta, trace_id=f"trace-{i:02d}"),
        )
    # two failures, with retries spent
    for i in range(2):
        with pytest.raises(Exception, match="503"):
            await gw.chat.completions.create(
                model="alpha",
                messages=HELLO,
                config={"targets": [{"provider": "mock", "mock": {"fail_status": 503}}]},
                options=CallOptions(metadata={"team": "red"}, trace_id=f"fail-{i}"),
            )


async def test_pages_come_newest_first_and_the_cursor_walks_them_all(logged, backend):
    setup = logged(extra="[plugins.cache]\n", plugins='["mock", "cache", "logging"]', url=backend)
    gw = setup.gateway
    async with gw:
        await _fill(gw)
        await setup.flush()
        seen: list[str] = []
        cursor = None
        while True:
            page = await gw.hooks.query_logs(gw, LogQuery(limit=5, cursor=cursor))
            assert page is not None
            assert len(page.records) <= 5
            seen += [r["trace_id"] for r in page.records]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == ["fail-1", "fail-0", *[f"trace-{i:02d}" for i in range(11, -1, -1)]]

        async def ids(**kwargs) -> list[str]:
            page = await gw.hooks.query_logs(gw, LogQuery(filter=LogFilter(**kwargs), limit=100))
            return [r["trace_id"] for r in page.records]

        assert await ids(trace_id="trace-03") == ["trace-03"]
        assert await ids(model="beta") == [f"trace-{i:02d}" for i in (10, 8, 6, 4, 2, 0)]
        assert await ids(status=503) == ["fail-1", "fail-0"]
        assert await ids(status_class=5) == ["fail-1", "fail-0"]
        assert await ids(cache_status="HIT") == ["trace-11", "trace-10"]
        assert await ids(metadata=(("team", "red"),), model="alpha") == [
            "fail-1",
            "fail-0",
            "trace-09",
            "trace-03",
        ]
        assert await ids(provider="mock", since=time.time() + 60) == []
        record = (
            await gw.hooks.query_logs(gw, LogQuery(filter=LogFilter(trace_id="fail-0")))
        ).records[0]
        assert record["error_type"] and record["status"] == 503
        with pytest.raises(BadRequestError, match="cursor"):
            await gw.hooks.query_logs(gw, LogQuery(cursor="not-a-cursor"))


async def test_aggregates_from_rollups_match_the_records(logged, backend):
    setup = logged(extra="[plugins.cache]\n", plugins='["mock", "cache", "logging"]', url=backend)
    gw = setup.gateway
    async with gw:
        start = time.time() - 120
        await _fill(gw)
        await setup.flush()
        now = time.time() + 60
        agg = await gw.hooks.aggregate_logs(
            gw, AggregateQuery(filter=LogFilter(since=start, until=now), metadata_key="team")
        )
        records = setup.records()
        assert agg.requests == len(records) == 14
        assert agg.errors == 2
        assert agg.exact_hits == 2  # "same" missed once per model, then hit
        assert agg.lookups == 4
        assert agg.hit_rate == pytest.approx(0.5)
        assert sum(agg.histogram) == 14
        assert agg.latency_ms["p50"] is not None
        assert agg.latency_ms["p50"] <= agg.latency_ms["p90"] <= agg.latency_ms["p99"]
        assert sum(s["requests"] for s in agg.series) == 14
        assert {e["status"] for e in agg.error_series} == {503}
        assert sum(e["n"] for e in agg.error_series) == 2
        models = {m["model"]: m["requests"] for m in agg.by_model}
        assert models == {"alpha": 8, "beta": 6}
        teams = {m["value"]: m["requests"] for m in agg.by_metadata}
        assert teams == {"red": 6, "blue": 8}
        assert agg.total_tokens == sum(r["total_tokens"] or 0 for r in records)
        assert agg.cost_saved_usd == pytest.approx(sum(r["cost_saved_usd"] or 0 for r in records))

        only_beta = await gw.hooks.aggregate_logs(
            gw, AggregateQuery(filter=LogFilter(since=start, until=now, model="beta"))
        )
        assert only_beta.requests == 6
        # a filter the rollups cannot answer comes from the records, in the same shape
        raw = await gw.hooks.aggregate_logs(
            gw,
            AggregateQuery(
                filter=LogFilter(since=start, until=now, metadata=(("team", "red"),)),
                metadata_key="team",
            ),
        )
        assert raw.requests == 6
        assert raw.errors == 2
        assert [m["value"] for m in raw.by_metadata] == ["red"]
        # one metadata pair without a grouping key: from the dimension rollups, the same numbers
        red = await gw.hooks.aggregate_logs(
            gw,
            AggregateQuery(filter=LogFilter(since=start, until=now, metadata=(("team", "red"),))),
        )
        assert (red.requests, red.errors, red.histogram, red.total_tokens) == (
            raw.requests,
            raw.errors,
            raw.histogram,
            raw.total_tokens,
        )
        assert red.by_model == raw.by_model
        assert red.error_series == raw.error_series
        by_provider = await gw.hooks.aggregate_logs(
            gw, AggregateQuery(filter=LogFilter(since=start, until=now, provider="mock"))
        )
        served = [r for r in records if r["provider"] == "mock"]
        assert by_provider.requests == len(served) > 0
        assert by_provider.total_tokens == sum(r["total_tokens"] or 0 for r in served)
        # two such filters at once: from the records
        both = await gw.hooks.aggregate_logs(
            gw,
            AggregateQuery(
                filter=LogFilter(
                    since=start, until=now, provider="mock", metadata=(("team", "blue"),)
                )
            ),
        )
        blue = [r for r in served if r["metadata"].get("team") == "blue"]
        assert both.requests == len(blue) > 0
        with pytest.raises(BadRequestError, match="time range"):
            await gw.hooks.aggregate_logs(gw, AggregateQuery())


def write_directly(store: LogStore | PostgresLogStore, records: list[dict]) -> None:
    items = [(r, orjson.dumps(r).decode()) for r in records]
    if isinstance(store, PostgresLogStore):
        store.write(None, items)
        assert store.flush(10)
        store.close()
        return
    conn = store.connect()
    try:
        store.write(conn, items)
    finally:
        conn.close()


def a_store(folder, backend: str | None) -> LogStore | PostgresLogStore:
    return PostgresLogStore(backend) if backend else LogStore(folder / "logs.db")


def test_workspace_and_config_version_filter_records_and_rollups(tmp_path, backend):
    """What a control plane puts on a record (workspace, config version) filters pages and
    aggregates: a workspace sees only its own."""
    store = a_store(tmp_path, backend)
    now = time.time()
    records = [
        {
            "ts": now - 10 + i,
            "trace_id": f"t{i}",
            "model": "m",
            "status": 200,
            "latency_ms": 5.0,
            "total_tokens": 2,
            "workspace": "ws-a" if i % 2 else "ws-b",
            "config_id": "pc-x",
            "config_version": 1 + i % 3,
            "metadata": {},
        }
        for i in range(9)
    ]
    write_directly(store, records)
    reader = LogReader(store)
    try:
        with reader.store.reading() as conn:
            page = reader.page(conn, LogQuery(filter=LogFilter(workspace="ws-a")))
            assert [r["trace_id"] for r in page.records] == ["t7", "t5", "t3", "t1"]
            page = reader.page(conn, LogQuery(filter=LogFilter(config_id="pc-x", config_version=2)))
            assert [r["trace_id"] for r in page.records] == ["t7", "t4", "t1"]
            agg = reader.aggregate(
                conn,
                AggregateQuery(filter=LogFilter(since=now - 60, until=now + 60, workspace="ws-b")),
            )
            assert agg.requests == 5 and agg.total_tokens == 10
            agg = reader.aggregate(
                conn,
                AggregateQuery(filter=LogFilter(since=now - 60, until=now + 60, config_version=3)),
            )
            assert agg.requests == 3
            agg = reader.aggregate(
                conn,
                AggregateQuery(
                    filter=LogFilter(
                        since=now - 60, until=now + 60, config_id="pc-x", config_version=3
                    )
                ),
            )
            assert agg.requests == 3 and agg.total_tokens == 6
            agg = reader.aggregate(
                conn,
                AggregateQuery(filter=LogFilter(since=now - 60, until=now + 60, config_id="pc-x")),
            )
            assert agg.requests == 9
    finally:
        reader.close()


def test_failed_requests_of_one_model_page_from_their_own_index(tmp_path, backend):
    """ "5xx for this model" (the logs page's commonest hunt) pages through failures only,
    newest first, the cursor included."""
    store = a_store(tmp_path, backend)
    now = time.time()
    records = [
        {
            "ts": now - 100 + i,
            "trace_id": f"t{i}",
            "model": "m" if i % 2 else "other",
            "model_answered": "m" if i % 2 else "other",
            "status": 503 if i % 10 == 1 else (429 if i % 10 == 3 else 200),
            "latency_ms": 5.0,
            "metadata": {},
        }
        for i in range(100)
    ]
    write_directly(store, records)
    reader = LogReader(store)
    try:
        with reader.store.reading() as conn:
            f = LogFilter(model="m", status_class=5)
            first = reader.page(conn, LogQuery(filter=f, limit=6))
            rest = reader.page(conn, LogQuery(filter=f, limit=6, cursor=first.next_cursor))
            seen = [r["trace_id"] for r in first.records + rest.records]
            assert seen == [f"t{i}" for i in range(91, 0, -10)]
            assert rest.next_cursor is None
            limited = reader.page(conn, LogQuery(filter=LogFilter(status=429, model="m")))
            assert [r["trace_id"] for r in limited.records] == [f"t{i}" for i in range(93, 0, -10)]
            if isinstance(store, LogStore):
                clauses, params = record_filters(SQLITE, f)
                plan = " ".join(
                    str(row[-1])
                    for row in conn.execute(
                        "EXPLAIN QUERY PLAN SELECT id, ts FROM requests WHERE "
                        + " AND ".join(clauses)
                        + " ORDER BY ts DESC, id DESC LIMIT 51",
                        params,
                    )
                )
                assert "requests_failed" in plan, plan
    finally:
        reader.close()


def test_an_old_store_file_gets_the_new_columns_and_its_rollups(tmp_path):
    path = tmp_path / "old.db"
    record = {
        "ts": 1_700_000_000.0,
        "trace_id": "t1",
        "model": "m",
        "status": 200,
        "latency_ms": 12.0,
        "total_tokens": 7,
        "metadata": {"team": "red"},
    }
    with sqlite3.connect(path) as conn:  # the schema as the first release wrote it
        conn.execute(
            "CREATE TABLE requests (id INTEGER PRIMARY KEY, ts REAL NOT NULL, trace_id TEXT, "
            "endpoint TEXT, provider TEXT, model TEXT, model_answered TEXT, target TEXT, "
            "status INTEGER, stream INTEGER, cache_status TEXT, cache_similarity REAL, "
            "latency_ms REAL, upstream_ms REAL, ttft_ms REAL, attempts INTEGER, retries INTEGER, "
            "fallbacks INTEGER, prompt_tokens INTEGER, completion_tokens INTEGER, "
            "total_tokens INTEGER, usage_source TEXT, cost_usd REAL, cost_saved_usd REAL, "
            "error_type TEXT, error_code TEXT, metadata TEXT, record TEXT NOT NULL)"
        )
        conn.execute(  # as the first release wrote a row: its columns and the record
            "INSERT INTO requests (ts, trace_id, model, status, latency_ms, total_tokens, "
            "metadata, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record["ts"],
                "t1",
                "m",
                200,
                12.0,
                7,
                orjson.dumps(record["metadata"]).decode(),
                orjson.dumps(record).decode(),
            ),
        )
    store = LogStore(path)
    conn = store.connect()
    try:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(requests)")}
        assert {"workspace", "config_id", "config_version"} <= columns
        assert conn.execute(
            "SELECT SUM(n), SUM(total_tokens) FROM rollup WHERE level = 1"
        ).fetchone() == (1, 7)
        assert conn.execute("SELECT value, n FROM rollup_meta WHERE level = 60").fetchall() == [
            ("red", 1)
        ]
    finally:
        conn.close()


def test_rollups_sum_a_batch_per_minute_and_kind():
    base = 60 * 1000.0
    records = [
        {"ts": base + 1, "model": "m", "status": 200, "latency_ms": 4.0, "total_tokens": 3},
        {"ts": base + 2, "model": "m", "status": 200, "latency_ms": 400.0, "total_tokens": 5},
        {"ts": base + 61, "model": "m", "status": 200, "latency_ms": 4.0},
    ]
    sums, meta, dims = rollups(records)
    assert meta == [] and dims == []
    minutes = [row for row in sums if row[0] == 1]  # the per-minute level
    assert sorted(row[1] for row in minutes) == [1000, 1001]
    first = next(row for row in minutes if row[1] == 1000)
    assert first[7] == 2 and first[10] == 8  # n, total tokens
    hours = [row for row in sums if row[0] == 60]  # both minutes in one hour
    assert len(hours) == 1 and hours[0][7] == 3


def test_the_rollups_of_an_older_store_are_those_its_records_would_have_written(
    tmp_path, backend, postgres_server
):
    """An upgraded file's rollups are added up by the database; they must be the very rows the
    writer adds up batch by batch."""
    now = time.time()
    records = [
        {
            "ts": now - 7200 + i * 37.3,
            "trace_id": f"t{i}",
            "model": "m" if i % 3 else "n",
            "model_answered": None if i % 5 == 0 else ("m" if i % 3 else "n"),
            "provider": ("p1", "p2", None)[i % 3],
            "status": (200, 200, 429, 503)[i % 4],
            "cache_status": ("MISS", "HIT", "DISABLED")[i % 3],
            "error_type": "ProviderError" if i % 4 == 3 else None,
            "latency_ms": (0.5, 12.0, 700.0, 250_000.0, None)[i % 5],
            "prompt_tokens": i,
            "completion_tokens": None if i % 7 == 0 else 2 * i,
            "total_tokens": 3 * i,
            "cost_usd": i / 1000,
            "cost_saved_usd": None,
            "workspace": ("ws-a", None)[i % 2],
            "config_id": "pc-x" if i % 2 else None,
            "config_version": 1 + i % 3 if i % 2 else None,
            "metadata": {"team": f"t{i % 4}", "env": "prod"} if i % 6 else {},
        }
        for i in range(300)
    ]
    written = a_store(tmp_path / "a", backend)
    write_directly(written, records)
    upgraded = a_store(tmp_path / "b", backend and postgres_server.database())
    write_directly(upgraded, records)
    tables = [upgraded.dialect.table(t) for t in ("rollup", "rollup_meta", "rollup_dim")]
    with upgraded.reading() as conn:
        for table in tables:
            conn.execute(f"DROP TABLE {table}")
    with upgraded.reading() as conn:  # a PostgreSQL reader brings the schema up to date
        pass
    if isinstance(upgraded, LogStore):
        upgraded.connect().close()  # as does the SQLite writer

    def rows(store: LogStore | PostgresLogStore, table: str) -> list[tuple]:
        with store.reading() as conn:
            found = conn.execute(f"SELECT * FROM {table}").fetchall()
        return sorted(tuple(round(v, 9) if isinstance(v, float) else v for v in r) for r in found)

    for table in tables:
        assert rows(upgraded, table) == rows(written, table), table
        assert rows(written, table)

"""The log store and the sinks: off the request path, never breaking a response."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
import time

import orjson
import pytest
import structlog
from hookgate import Gateway
from hookgate_logging import Plugin, Settings

HELLO = [{"role": "user", "content": "hello"}]
MOCK = {"gateway": {"plugins": ["mock"], "default_provider": "mock"}}


async def test_a_raising_sink_does_not_break_a_response(tmp_path):
    seen = []

    def broken(record):
        raise OSError("disk on fire")

    plugin = Plugin(
        Settings(log_to="none", store={"path": str(tmp_path / "logs.db")}),
        sinks=[broken, seen.append],
    )
    gw = Gateway(MOCK)
    gw.register(plugin, "logging")
    with structlog.testing.capture_logs() as logs:
        async with gw:
            for _ in range(3):
                answer = await gw.chat.completions.create(model="m", messages=HELLO)
                assert answer.choices[0].message.content == "[mock] you said: hello"
            assert await plugin.flush()
    assert len(seen) == 3  # the next sink still got every record
    with sqlite3.connect(tmp_path / "logs.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM requests").fetchone() == (3,)
    warnings = [e for e in logs if e["event"] == "request_log_step_failed"]
    assert len(warnings) == 1  # said once, not per record
    assert "disk on fire" in warnings[0]["error"]


async def test_an_unwritable_store_does_not_break_a_response(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the store's folder should be")
    plugin = Plugin(Settings(log_to="none", store={"path": str(blocker / "logs.db")}))
    gw = Gateway(MOCK)
    gw.register(plugin, "logging")
    with structlog.testing.capture_logs() as logs:
        async with gw:
            answer = await gw.chat.completions.create(model="m", messages=HELLO)
            assert answer.choices[0].message.content.startswith("[mock]")
            assert await plugin.flush()
    steps = {e["step"] for e in logs if e["event"] == "request_log_step_failed"}
    assert steps == {"store", "retention"}


WRITER = textwrap.dedent("""
    import asyncio, sys
    from hookgate import Gateway, CallOptions

    async def main(db, name, n):
        settings = {
            "gateway": {"plugins": ["mock", "logging"], "default_provider": "mock"},
            "plugins": {"logging": {"log_to": "none", "metrics": False,
                                    "store": {"path": db, "batch_size": 7}}},
        }
        async with Gateway(settings) as gw:
            for i in range(n):
                await gw.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "hi"}],
                    options=CallOptions(trace_id=f"{name}-{i}"))
                if i % 25 == 0:
                    await asyncio.sleep(0.001)  # let the writer commit small batches

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
""")


def test_two_processes_write_the_same_store(tmp_path):
    db = tmp_path / "shared" / "logs.db"
    n = 400
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(db), name, str(n)])
        for name in ("a", "b")
    ]
    for proc in procs:
        assert proc.wait(60) == 0
    with sqlite3.connect(db) as conn:
        ids = {row[0] for row in conn.execute("SELECT trace_id FROM requests")}
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert ids == {f"{name}-{i}" for name in ("a", "b") for i in range(n)}


async def test_retention_deletes_old_records(tmp_path):
    db = tmp_path / "logs.db"
    settings = Settings(log_to="none", store={"path": str(db), "retention_days": 7})
    for _ in range(2):
        gw = Gateway(MOCK)
        gw.register(Plugin(settings), "logging")
        async with gw:
            await gw.chat.completions.create(model="m", messages=HELLO)
            await gw.chat.completions.create(model="m", messages=HELLO)
            assert await gw.plugin("logging").flush()
        with sqlite3.connect(db) as conn:
            # age the records: one past the retention window, one within it
            conn.execute("UPDATE requests SET ts = ? WHERE id = 1", (time.time() - 8 * 86400,))
            conn.execute("UPDATE requests SET ts = ? WHERE id = 2", (time.time() - 6 * 86400,))
    # the second gateway's writer applied retention when it started
    with sqlite3.connect(db) as conn:
        assert [r[0] for r in conn.execute("SELECT id FROM requests ORDER BY id")] == [2, 3, 4]


def test_a_bad_setting_is_named(write_toml):
    from hookgate import SettingsError

    path = write_toml("""
        [gateway]
        plugins = ["mock", "logging"]
        [plugins.logging]
        store = { pth = "x.db" }
    """)
    with pytest.raises(SettingsError) as err:
        Gateway.from_toml(path)
    assert "[plugins.logging]" in str(err.value) and "store.pth" in str(err.value)


async def test_a_writer_that_falls_behind_drops_and_counts(tmp_path):
    import threading

    release = threading.Event()
    blocked = []

    def slow(record):  # a sink stuck on its first record
        blocked.append(record["trace_id"])
        release.wait(10)

    plugin = Plugin(
        Settings(log_to="none", store={"path": str(tmp_path / "logs.db")}, queue_size=2),
        sinks=[slow],
    )
    gw = Gateway(MOCK)
    gw.register(plugin, "logging")
    async with gw:
        await gw.chat.completions.create(model="m", messages=HELLO)
        while not blocked:
            await asyncio.sleep(0.001)
        for _ in range(10):  # answered at full speed while the writer is stuck
            await gw.chat.completions.create(model="m", messages=HELLO)
        release.set()
        assert await plugin.flush()
        body, _ = plugin.exposition()
    with sqlite3.connect(tmp_path / "logs.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM requests").fetchone() == (3,)
    assert "hookgate_log_records_dropped_total 8.0" in body.decode()
    # the metrics are counted on the event loop: they still saw every request
    assert 'hookgate_requests_total{model="m",provider="mock",status="200"} 11.0' in body.decode()


async def test_records_reach_the_log_and_store_without_a_flush(tmp_path):
    log_file = tmp_path / "requests.jsonl"
    settings = Settings(
        log_to=str(log_file), store={"path": str(tmp_path / "logs.db")}, flush_interval=0.02
    )
    gw = Gateway(MOCK)
    gw.register(Plugin(settings), "logging")
    async with gw:
        answer = await gw.chat.completions.create(model="m", messages=HELLO)
        deadline = time.monotonic() + 5
        while (plugin := gw.plugin("logging")).writer.written < 1:  # type: ignore[attr-defined]
            assert time.monotonic() < deadline, "the writer never wrote on its own"
            await asyncio.sleep(0.01)
        assert plugin.writer.failures == {}
        line = orjson.loads(log_file.read_text())
        assert line["trace_id"] == answer.hookgate.trace_id
        with sqlite3.connect(tmp_path / "logs.db") as conn:
            assert conn.execute("SELECT trace_id FROM requests").fetchall() == [
                (answer.hookgate.trace_id,)
            ]

"""``hookgate logs`` and ``hookgate stats``, run as a user runs them, checked against our own SQL."""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hookgate import CallOptions, GatewayError

from tests.plugins.logging.plugins_for_tests import CacheWhenAsked

HOOKGATE = str(Path(sys.executable).with_name("hookgate"))


def hookgate(config: Path, *args: str) -> str:
    result = subprocess.run(
        [HOOKGATE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=config.parent,
        env={**os.environ, "HOOKGATE_CONFIG": str(config)},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
async def filled(logged):
    """A store with successes, failures, cache hits and misses over three models, two teams."""
    log = logged()
    log.gateway.register(CacheWhenAsked(), "cache_when_asked")
    plan = [
        # (model, team, mock behaviour, cached)
        *[("gpt-4o-mini", "a", {"latency_ms": i * 2}, "no") for i in range(8)],
        *[("gpt-4o", "b", {"latency_ms": 3}, "no") for _ in range(3)],
        *[("gpt-4o-mini", "b", {}, "yes") for _ in range(4)],
        ("house-model", "a", {}, "no"),
        *[("gpt-4o", "a", {"fail_status": 503}, "no") for _ in range(3)],
        *[("gpt-4o-mini", "b", {"fail_status": 429}, "no") for _ in range(2)],
    ]
    async with log.gateway as gw:
        for i, (model, team, mock, cached) in enumerate(plan):
            with contextlib.suppress(GatewayError):
                await gw.chat.completions.create(
                    model=model,
                    messages=[{"role": "user", "content": "word " * (i + 1)}],
                    config={"provider": "mock", "mock": mock},
                    options=CallOptions(
                        trace_id=f"t-{i}", metadata={"team": team, "cached": cached}
                    ),
                )
        await log.flush()
    with sqlite3.connect(log.db) as conn:  # one old record, outside the default 24 h window
        conn.execute("UPDATE requests SET ts = ts - 3 * 86400 WHERE trace_id = 't-0'")
    return log, len(plan)


def rounded(values: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(round(v, 12) if isinstance(v, float) else v for v in values)


def nearest_rank(conn: sqlite3.Connection, since: float, p: int) -> float:
    n = conn.execute(
        "SELECT COUNT(*) FROM requests WHERE ts >= ? AND json_extract(record, '$.latency_ms') IS NOT NULL",
        (since,),
    ).fetchone()[0]
    offset = max(math.ceil(p / 100 * n), 1) - 1
    return conn.execute(
        "SELECT json_extract(record, '$.latency_ms') AS l FROM requests WHERE ts >= ? "
        "ORDER BY l LIMIT 1 OFFSET ?",
        (since, offset),
    ).fetchone()[0]


def test_stats_match_our_own_sql(filled, write_toml):
    log, total = filled
    config = log.gateway.settings.source
    started = time.time()
    stats = json.loads(hookgate(Path(config), "stats", "--json", "--by", "team"))
    text = hookgate(Path(config), "stats", "--by", "team")
    since = stats["since"]
    assert started - 86400 - 60 < since <= started - 86400 + 60  # the default window: 24 h

    with sqlite3.connect(log.db) as conn:
        q = lambda sql, *a: conn.execute(sql, (since, *a)).fetchall()  # noqa: E731
        assert stats["requests"] == q("SELECT COUNT(*) FROM requests WHERE ts >= ?")[0][0]
        assert stats["requests"] == total - 1  # the aged record is outside the window
        errors = q(
            "SELECT COUNT(*) FROM requests WHERE ts >= ? AND json_extract(record, '$.status') >= 400"
        )[0][0]
        assert stats["errors"] == errors == 5
        for p in (50, 90, 99):
            assert stats["latency_ms"][f"p{p}"] == nearest_rank(conn, since, p)
        assert sum(b["n"] for b in stats["latency_histogram"]) == stats["requests"]
        hits, lookups = q(
            "SELECT SUM(json_extract(record, '$.cache_status') = 'HIT'), "
            "SUM(json_extract(record, '$.cache_status') != 'DISABLED') FROM requests WHERE ts >= ?"
        )[0]
        assert (stats["cache"]["hits"], stats["cache"]["lookups"]) == (hits, lookups) == (4, 20)
        assert stats["cache"]["hit_rate"] == pytest.approx(4 / 20)
        own_errors = q(
            "SELECT json_extract(record, '$.error_type'), json_extract(record, '$.status'), COUNT(*) "
            "FROM requests WHERE ts >= ? AND json_extract(record, '$.error_type') IS NOT NULL "
            "GROUP BY 1, 2"
        )
        assert sorted(
            (e["error_type"], e["status"], e["n"]) for e in stats["error_types"]
        ) == sorted(own_errors)

        def usage(group: str) -> dict[Any, tuple[Any, ...]]:
            rows = q(
                f"SELECT {group}, COUNT(*), SUM(json_extract(record, '$.prompt_tokens')), "
                "SUM(json_extract(record, '$.completion_tokens')), "
                "SUM(json_extract(record, '$.cost_usd')), "
                "SUM(json_extract(record, '$.cost_saved_usd')) "
                "FROM requests WHERE ts >= ? GROUP BY 1"
            )
            return {r[0]: rounded(r[1:]) for r in rows}

        def mine(entries: list[dict[str, Any]], key: str) -> dict[Any, tuple[Any, ...]]:
            return {
                e[key]: rounded(
                    (
                        e["requests"],
                        e["prompt_tokens"] or None,
                        e["completion_tokens"] or None,
                        e["cost_usd"],
                        e["cost_saved_usd"],
                    )
                )
                for e in entries
            }

        by_model = usage(
            "COALESCE(json_extract(record, '$.model_answered'), json_extract(record, '$.model'))"
        )
        assert mine(stats["by_model"], "model") == by_model
        assert set(by_model) == {"gpt-4o-mini", "gpt-4o", "house-model"}
        assert by_model["house-model"][3] is None  # unknown price: no cost, not zero
        by_team = usage("json_extract(record, '$.metadata.team')")
        assert mine(stats["by_metadata"]["groups"], "value") == by_team

    assert f"p50 {stats['latency_ms']['p50']:.1f} ms" in text
    assert "cache: 4 hits of 20 lookups (20.0%)" in text
    assert "by metadata team:" in text
    assert "     3  503  ProviderError" in text  # error types, with count and status


def test_logs_filters(filled):
    log, total = filled
    config = Path(log.gateway.settings.source)

    def records(*args: str) -> list[dict[str, Any]]:
        out = hookgate(config, "logs", "--json", *args)
        return [json.loads(line) for line in out.splitlines()]

    everything = records("--limit", "1000")
    assert len(everything) == total
    assert [r["trace_id"] for r in everything[:2]] == [f"t-{total - 1}", f"t-{total - 2}"]
    assert [r["trace_id"] for r in records("--trace-id", "t-3")] == ["t-3"]
    assert {r["status"] for r in records("--status", "503")} == {503}
    assert len(records("--status", "503")) == 3
    assert {r["model"] for r in records("--model", "gpt-4o")} == {"gpt-4o"}
    assert len(records("--limit", "2")) == 2
    assert [r["trace_id"] for r in records("--until", "2d")] == ["t-0"]  # the aged one
    assert len(records("--since", "2d", "--limit", "1000")) == total - 1
    table = hookgate(config, "logs", "--status", "429").splitlines()
    assert table[0].split()[:3] == ["time", "trace_id", "status"]
    assert len(table) == 3 and all(" 429 " in line for line in table[1:])


def test_logs_says_when_there_is_no_store(write_toml):
    path = write_toml("""
        [gateway]
        plugins = ["mock", "logging"]
        [plugins.logging]
        store = { path = "never-written.db" }
    """)
    result = subprocess.run(
        [HOOKGATE, "logs"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HOOKGATE_CONFIG": str(path)},
    )
    assert result.returncode == 1
    assert "no log store at" in result.stderr and "never-written.db" in result.stderr


def test_stats_of_an_empty_window(filled):
    log, _ = filled
    config = Path(log.gateway.settings.source)
    stats = json.loads(hookgate(config, "stats", "--json", "--since", "0s"))
    assert stats["requests"] == 0
    assert stats["latency_ms"] == {"p50": None, "p90": None, "p99": None}
    assert stats["cache"]["hit_rate"] is None
    text = hookgate(config, "stats", "--since", "0s")
    assert "requests: 0" in text and "p50 -" in text and "(-)" in text

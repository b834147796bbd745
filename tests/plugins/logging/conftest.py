"""A gateway with the logging plugin writing into tmp_path, and ways to read what it wrote."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from hookgate import Gateway


@dataclass
class Logged:
    """Where one test's gateway logs: the JSON-lines file and the SQLite store."""

    gateway: Gateway
    log_file: Path
    db: Path
    url: str | None = None
    """The PostgreSQL store's URL, when the records go there instead of ``db``."""

    @property
    def plugin(self) -> Any:
        return self.gateway.plugin("logging")

    async def flush(self) -> None:
        assert await self.plugin.flush(), "the writer did not catch up"

    def lines(self) -> list[dict[str, Any]]:
        if not self.log_file.exists():
            return []
        return [orjson.loads(line) for line in self.log_file.read_text().splitlines() if line]

    def rows(self, sql: str = "SELECT record FROM requests ORDER BY id") -> list[Any]:
        with sqlite3.connect(self.db) as conn:
            return conn.execute(sql).fetchall()

    def records(self) -> list[dict[str, Any]]:
        if self.url is not None:
            import psycopg

            with psycopg.connect(self.url) as conn:
                rows = conn.execute("SELECT record FROM hookgate_requests ORDER BY id").fetchall()
            return [orjson.loads(row[0]) for row in rows]
        return [orjson.loads(row[0]) for row in self.rows()]

    async def one(self) -> dict[str, Any]:
        """The single record logged so far, checked to be the same in the log and the store."""
        await self.flush()
        lines = self.lines()
        records = self.records()
        assert len(lines) == len(records) == 1, (lines, records)
        line = dict(lines[0])
        assert line.pop("event") == "gateway_request"
        assert line.pop("level") == "info"
        assert line == records[0]
        return records[0]


@pytest.fixture
def logged(write_toml, tmp_path: Path) -> Callable[..., Logged]:
    """``logged(extra_toml="", plugins=..., url=None)``: a Gateway with mock + logging (not
    started), its store in ``logs.db``, or in PostgreSQL at ``url``."""

    def make(
        extra: str = "", plugins: str = '["mock", "logging"]', url: str | None = None
    ) -> Logged:
        log_file = tmp_path / "requests.jsonl"
        db = tmp_path / "logs.db"
        path = write_toml(
            f"""
            [gateway]
            plugins = {plugins}
            default_provider = "mock"

            [plugins.logging]
            log_to = "{log_file}"
            store = {{ {f'url = "{url}"' if url else 'path = "logs.db"'} }}
            """
            + extra
        )
        return Logged(Gateway.from_toml(path), log_file, db, url)

    return make


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str | None:
    """Each store in turn: None for the SQLite file, else a fresh PostgreSQL database's URL."""
    if request.param == "sqlite":
        return None
    return str(request.getfixturevalue("postgres_url"))

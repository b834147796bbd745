"""Fixtures every test may use: real servers on loopback and gateways built from plugins.toml."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
import structlog
from hookgate import Gateway

from tests.support.servers import (
    PostgresServer,
    RedisServer,
    ServerThread,
    UvicornServer,
    serving,
)


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    """A CLI run configures structlog process-wide (level filter, renderer); undo it after
    each test so the next one sees the defaults and ``capture_logs`` sees every event."""
    yield
    structlog.reset_defaults()


# server_thread, fake_openai, fake_anthropic and fake_gemini come from hookgate.testing's
# pytest plugin (entry point pytest11), the same fixtures a third-party plugin's tests get.


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL for the session (or ``$HOOKGATE_TEST_POSTGRES_URL``'s)."""
    server = PostgresServer()
    yield server
    server.close()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of a fresh, empty database on the session's PostgreSQL."""
    return postgres_server.database()


@pytest.fixture
def write_toml(tmp_path: Path) -> Callable[[str], Path]:
    """Write a plugins.toml (dedented) into tmp_path and return its path."""

    def write(text: str, name: str = "plugins.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def make_gateway(write_toml: Callable[[str], Path]) -> Callable[[str], Gateway]:
    """A Gateway from plugins.toml text; use it as ``async with make_gateway(...) as gw``."""

    def make(text: str) -> Gateway:
        return Gateway.from_toml(write_toml(text))

    return make


@pytest.fixture
def serve(
    server_thread: ServerThread,
) -> Callable[[Gateway], AbstractContextManager[UvicornServer]]:
    """``with serve(gateway) as server:`` runs hookgate's HTTP app on a free port."""
    from hookgate.server.app import create_app

    def run(gateway: Gateway) -> AbstractContextManager[UvicornServer]:
        return serving(create_app(gateway), server_thread)

    return run


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stop any process a test started and left running, and say which one it was.

    A leaked ``Popen`` would otherwise be garbage-collected at exit with a ResourceWarning
    that (warnings are errors) fails the run without naming the culprit.
    """
    import gc
    import subprocess
    import sys

    for process in [o for o in gc.get_objects() if isinstance(o, subprocess.Popen)]:
        if process.poll() is not None:
            continue
        print(f"\nleaked process {process.pid}: {process.args!r}", file=sys.stderr)
        process.kill()
        process.wait()

"""The pytest plugin of :mod:`hookgate.testing` (entry point ``pytest11``: ``hookgate``).

Fixtures are documented in :mod:`hookgate.testing`. Nothing heavy is imported until a test
asks for a fixture, so having hookgate installed costs a pytest run nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from . import gateway_from_toml
from .servers import ServerThread, UvicornServer, serving

if TYPE_CHECKING:
    from ..gateway import Gateway
    from .anthropic import FakeAnthropic
    from .gemini import FakeGemini
    from .openai import FakeOpenAI


@pytest.fixture(scope="session")
def server_thread() -> Iterator[ServerThread]:
    """A background event loop for fake upstreams and served apps, one per session."""
    thread = ServerThread()
    yield thread
    thread.close()


@pytest.fixture
def fake_openai(server_thread: ServerThread) -> Iterator[FakeOpenAI]:
    """An OpenAI upstream on a free loopback port (``.url`` ends in ``/v1``)."""
    from .openai import FakeOpenAI

    fake = FakeOpenAI(server_thread).start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_anthropic(server_thread: ServerThread) -> Iterator[FakeAnthropic]:
    """An Anthropic Messages API upstream; needs the ``anthropic`` SDK (request checks)."""
    from .anthropic import FakeAnthropic

    fake = FakeAnthropic(server_thread).start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_gemini(server_thread: ServerThread) -> Iterator[FakeGemini]:
    """A Gemini (AI Studio) upstream; needs ``google-genai`` (request checks)."""
    from .gemini import FakeGemini

    fake = FakeGemini(server_thread).start()
    yield fake
    fake.stop()
    # Every request the gateway sent passed the google-genai SDK's own request types.
    assert fake.problems == [], fake.problems


@pytest.fixture
def hookgate_gateway(tmp_path: Path) -> Callable[[str], Gateway]:
    """``hookgate_gateway(toml_text)``: a Gateway from plugins.toml text in ``tmp_path``."""

    def make(text: str) -> Gateway:
        return gateway_from_toml(text, tmp_path)

    return make


@pytest.fixture
def serve_gateway(
    server_thread: ServerThread,
) -> Callable[[Gateway], AbstractContextManager[UvicornServer]]:
    """``with serve_gateway(gw) as server:`` serves ``gw`` over HTTP at ``server.url``."""

    def run(gateway: Gateway) -> AbstractContextManager[UvicornServer]:
        from ..server.app import create_app

        app: Any = create_app(gateway)
        return serving(app, server_thread)

    return run

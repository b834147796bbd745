"""Fixtures for the server tests: a fake upstream that notices a caller hanging up while it
makes the caller wait, and a small observer plugin (a class with ``@hookimpl`` methods)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from hookgate import RequestContext, hookimpl

from tests.support.fake_openai import FakeOpenAI, Received, Reply
from tests.support.servers import ServerThread


class PatientFake(FakeOpenAI):
    """:class:`FakeOpenAI` whose ``Reply.delay`` ends early, with outcome ``disconnected``,
    when the caller closes the connection during the wait: proof the call was cancelled."""

    async def _begin(self, request: web.Request) -> tuple[Received, Reply]:
        try:
            body = await request.json() if request.can_read_body else None
        except ValueError:
            body = None
        received = Received(
            request.path,
            request.method,
            {k.lower(): v for k, v in request.headers.items()},
            body,
            time.monotonic(),
        )
        self.requests.append(received)
        reply = self._script.popleft() if self._script else self.default
        deadline = time.monotonic() + reply.delay
        while time.monotonic() < deadline:
            transport = request.transport
            if transport is None or transport.is_closing():
                received.outcome = "disconnected"
                raise asyncio.CancelledError
            await asyncio.sleep(0.01)
        return received, reply


@pytest.fixture
def upstream(server_thread: ServerThread) -> Iterator[PatientFake]:
    fake = PatientFake(server_thread).start()
    yield fake
    fake.stop()


class Seen:
    """Records what the pipeline made of each request's headers."""

    def __init__(self) -> None:
        self.contexts: list[dict[str, Any]] = []

    @hookimpl
    def pre_request(self, ctx: RequestContext) -> None:
        self.contexts.append(
            {
                "trace_id": ctx.trace_id,
                "metadata": dict(ctx.metadata),
                "cache_force_refresh": ctx.cache_force_refresh,
                "cache_namespace": ctx.cache_namespace,
                "timeout": ctx.timeout,
                "headers": dict(ctx.headers),
            }
        )


def wait_for(predicate: Any, timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes (for another thread's state)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())

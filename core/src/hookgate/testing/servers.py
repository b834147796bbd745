"""Real servers for plugin tests, on free loopback ports, in a background event loop.

Servers (fake upstreams, ``hookgate serve``'s app) run outside the test's own event loop, so
blocking clients (the openai SDK's sync client) work as well as async ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

__all__ = ["FakeServer", "ServerThread", "UvicornServer", "free_port", "serving"]

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerThread:
    """An asyncio loop in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="test-servers", daemon=True
        )
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


class FakeServer:
    """Base of the fake upstreams: an aiohttp.web app on a free loopback port, served from a
    :class:`ServerThread`. aiohttp rather than ASGI, because a fake must be able to drop a
    connection before answering or in the middle of a stream."""

    def __init__(self, thread: ServerThread) -> None:
        self.thread = thread
        self.port = free_port()
        self._runner: Any = None

    @property
    def host(self) -> str:
        """``http://127.0.0.1:<port>``: what SDKs take as their base URL."""
        return f"http://127.0.0.1:{self.port}"

    def serve(self, app: Any) -> None:
        from aiohttp import web

        async def begin() -> None:
            self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

        self.thread.run(begin())

    def stop(self) -> None:
        if self._runner is not None:
            self.thread.run(self._runner.cleanup())
            self._runner = None


class UvicornServer:
    """An ASGI app served by uvicorn on a free loopback port, in a :class:`ServerThread`."""

    def __init__(self, app: Any, thread: ServerThread) -> None:
        import uvicorn  # the server extra; only tests that serve an ASGI app need it

        self.port = free_port()
        self.thread = thread
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="error",
            lifespan="on",
            loop="none",
            http="h11",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(config)
        self.server.install_signal_handlers = lambda: None  # type: ignore[attr-defined]
        self._task: asyncio.Future[Any] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> UvicornServer:
        async def begin() -> None:
            self._task = asyncio.ensure_future(self.server.serve())
            while not self.server.started:
                if self._task.done():
                    self._task.result()
                await asyncio.sleep(0.005)

        self.thread.run(begin())
        return self

    def stop(self) -> None:
        async def end() -> None:
            self.server.should_exit = True
            if self._task is not None:
                await asyncio.wait_for(self._task, 10)

        self.thread.run(end())


@contextlib.contextmanager
def serving(app: Any, thread: ServerThread) -> Iterator[UvicornServer]:
    server = UvicornServer(app, thread).start()
    try:
        yield server
    finally:
        server.stop()

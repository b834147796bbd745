"""The semantic-cache service: one process that holds the store and the model for every worker.

``hookgate serve`` starts it (the plugin's ``server_services`` hook, :func:`main`), with its
settings in the environment. It
takes the folder's lock, loads the embedding model once, opens the store (the embedded
Chroma folder, or a Chroma server's collection with ``chroma_url``), and only then listens
on a unix socket, so a worker that can connect can be served. Workers send lookups and
writes over one connection each; the :class:`~.engine.Engine` batches them across all
workers.

The wire format: each message is a 4-byte big-endian length and a JSON object. A request
has an ``id`` and an ``op`` (``lookup``, ``put``, ``prune``, ``ping``); the answer has the
same ``id`` and ``result`` or ``error``. Answers come back in the order they are ready, so
one connection carries any number of concurrent requests.

The socket is ``<path>/service.sock`` (or, if that path is too long for a unix socket, one
in the temporary folder named after a hash of ``path``), readable by this user only. The
service exits when the server that started it is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import structlog

__all__ = ["ServiceClient", "socket_path"]

log = structlog.get_logger("hookgate.semantic_cache")

ENV = "HOOKGATE_SEMANTIC_CACHE_SERVICE"
_HEADER = struct.Struct(">I")
_MAX_MESSAGE = 64 * 1024 * 1024
_SUN_PATH = 100  # sockaddr_un holds 108 bytes on Linux, 104 on macOS


def socket_path(folder: Path) -> Path:
    """Where the service of the store in ``folder`` listens."""
    inside = folder / "service.sock"
    if len(os.fsencode(inside)) < _SUN_PATH:
        return inside
    digest = hashlib.sha256(os.fsencode(folder)).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"hookgate-semantic-{digest}.sock"


def _frame(message: dict[str, Any]) -> bytes:
    body = orjson.dumps(message)
    return _HEADER.pack(len(body)) + body


async def _read(reader: asyncio.StreamReader) -> dict[str, Any]:
    (size,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
    if size > _MAX_MESSAGE:
        raise ValueError(f"a message of {size} bytes")
    message = orjson.loads(await reader.readexactly(size))
    if not isinstance(message, dict):
        raise ValueError("a message that is not an object")
    return message


# ---- the worker's side ----------------------------------------------------------------


class ServiceClient:
    """A worker's connection to the service: one socket, concurrent requests on it.

    A call that cannot be sent (no service yet, or it died) fails at once, so a dead service
    costs a request nothing but a miss. A refused or missing socket is tried again by the next
    call (that costs microseconds, and a restarted service is used the moment it listens);
    only a connection that timed out makes the next attempts wait ``retry_after`` seconds.
    """

    def __init__(self, path: Path, retry_after: float = 0.25) -> None:
        self.path = path
        self.retry_after = retry_after
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reading: asyncio.Task[None] | None = None
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._next = 0
        self._connecting: asyncio.Lock | None = None
        self._failed_at = 0.0

    async def call(
        self, op: str, timeout: float, sent: asyncio.Future[None] | None = None, **fields: Any
    ) -> Any:
        """Send ``op`` and wait for its answer; ``sent`` is set once it is on its way (the
        service handles one connection's messages in the order they were sent)."""
        writer = await self._connection()
        self._next += 1
        ident = self._next
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[ident] = future
        try:
            writer.write(_frame({"id": ident, "op": op, **fields}))
            if sent is not None and not sent.done():
                sent.set_result(None)
            return await asyncio.wait_for(future, timeout)
        finally:
            self._waiting.pop(ident, None)

    async def _connection(self) -> asyncio.StreamWriter:
        if self._writer is not None and not self._writer.is_closing():
            return self._writer
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._writer is not None and not self._writer.is_closing():
                return self._writer
            if time.monotonic() - self._failed_at < self.retry_after:
                raise ConnectionError("the semantic-cache service was unreachable a moment ago")
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_unix_connection(str(self.path)), 1.0
                )
            except (OSError, TimeoutError) as exc:
                if isinstance(exc, TimeoutError):
                    self._failed_at = time.monotonic()
                raise ConnectionError(
                    f"the semantic-cache service at {self.path} is not answering "
                    f"({type(exc).__name__})"
                ) from None
            self._reader, self._writer = reader, writer
            self._reading = asyncio.create_task(self._read_answers(reader))
            return writer

    async def _read_answers(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                message = await _read(reader)
                future = self._waiting.get(int(message.get("id", 0)))
                if future is None or future.done():
                    continue  # its caller gave up (timeout)
                if message.get("error") is not None:
                    future.set_exception(RuntimeError(str(message["error"])))
                else:
                    future.set_result(message.get("result"))
        except (OSError, EOFError, ValueError, asyncio.IncompleteReadError):
            pass
        finally:
            self._drop()

    def _drop(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(ConnectionError("the semantic-cache service went away"))

    async def aclose(self) -> None:
        if self._reading is not None:
            self._reading.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reading
            self._reading = None
        self._drop()


# ---- the service's side ---------------------------------------------------------------


class _Service:
    def __init__(self, engine: Any, path: Path) -> None:
        self.engine = engine
        self.path = path
        self._server: asyncio.AbstractServer | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    async def serve(self, stop: asyncio.Event) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a socket left by a service that was killed
        old = os.umask(0o077)
        try:
            self._server = await asyncio.start_unix_server(self._client, str(self.path))
        finally:
            os.umask(old)
        log.info("semantic_cache_service_ready", socket=str(self.path), pid=os.getpid())
        await stop.wait()
        self._server.close()
        # Closing a connection ends its reader with EOF; cancelling its task instead would make
        # Python 3.11's start_unix_server print a CancelledError traceback for each one.
        for writer in self._connections.values():
            writer.close()
        if self._connections:
            await asyncio.wait(list(self._connections), timeout=1.0)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        pending: set[asyncio.Task[None]] = set()
        try:
            while True:
                try:
                    message = await _read(reader)
                except (asyncio.IncompleteReadError, OSError, ValueError):
                    return
                handling = asyncio.create_task(self._handle(message, writer))
                pending.add(handling)
                handling.add_done_callback(pending.discard)
        finally:
            self._connections.pop(task, None)
            for handling in pending:
                handling.cancel()
            writer.close()

    async def _handle(self, message: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        from .engine import Lookup, Put

        ident = message.get("id")
        try:
            op = message.get("op")
            if op == "lookup":
                found = await self.engine.lookup(Lookup(**message["lookup"]))
                result: Any = found.dump()
            elif op == "put":
                await self.engine.put(Put(**message["put"]))
                result = None
            elif op == "prune":
                result = await self.engine.prune(float(message["now"]))
            elif op == "ping":
                result = "pong"
            else:
                raise ValueError(f"unknown op {op!r}")
            answer = {"id": ident, "result": result}
        except Exception as exc:
            answer = {"id": ident, "error": f"{type(exc).__name__}: {exc}"}
        if not writer.is_closing():
            writer.write(_frame(answer))


async def _main(config: dict[str, Any]) -> int:
    from . import Settings, _make_engine
    from .store import FolderLock

    settings = Settings.model_validate(config["settings"])
    parent = int(config["parent"])
    path = Path(config["socket"])
    lock = None
    if settings.chroma_url is None:
        lock = FolderLock(Path(settings.path))
        try:
            lock.acquire()
        except Exception as exc:
            print(f"hookgate semantic-cache service: {exc}", file=sys.stderr, flush=True)
            return 3
    engine = _make_engine(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def orphaned() -> None:  # the server was killed without stopping us
        while os.getppid() == parent:
            await asyncio.sleep(1)
        stop.set()

    watch = asyncio.create_task(orphaned())
    try:
        failed = await engine.start()
        for part, failure in failed:  # the lookups report it too
            error = f"{type(failure).__name__}: {failure}"
            log.warning(f"semantic_cache_{part}_unavailable", error=error)
        if not any(part == "store" for part, _ in failed):
            with contextlib.suppress(Exception):
                await engine.prune(time.time())
        pruner = None
        if settings.prune_interval > 0:
            pruner = asyncio.create_task(_prune_every(engine, settings.prune_interval))
        await _Service(engine, path).serve(stop)
        if pruner is not None:
            pruner.cancel()
    finally:
        watch.cancel()
        with contextlib.suppress(Exception):
            await engine.aclose()
        if lock is not None:
            lock.release()
    return 0


async def _prune_every(engine: Any, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            removed = await engine.prune(time.time())
        except Exception as exc:
            engine.store.reset()
            log.warning("semantic_cache_store_unavailable", error=f"{type(exc).__name__}: {exc}")
            continue
        if removed:
            log.info("semantic_cache_pruned", entries=removed)


def main() -> None:
    """The service's process: ``python -c "from hookgate_semantic_cache.service import main;
    main()"`` with its settings in ``$HOOKGATE_SEMANTIC_CACHE_SERVICE``."""
    import logging

    # JSON lines on stderr, as the server's own records.
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    config = orjson.loads(os.environ.pop(ENV))
    try:
        import uvloop
    except ImportError:  # hookgate[server] brings uvloop
        sys.exit(asyncio.run(_main(config)))
    sys.exit(uvloop.run(_main(config)))


if __name__ == "__main__":
    main()

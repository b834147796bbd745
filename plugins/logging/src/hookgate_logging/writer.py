"""Where a finished request becomes a log line, metrics, a span and a row in the store.

The work is split by what it costs, so that no request waits for it and the event loop never
shares the GIL with a busy thread record by record:

* On the event loop, just after the response went out (``post_response`` only appends what it
  saw to a list and schedules one callback per loop iteration): the record is built, counted
  in the metrics and rendered to JSON — a few microseconds of pure Python each.
* On one daemon thread, in batches (woken at most every ``flush_interval`` seconds): what
  blocks or is not ours — the log lines in one write, the extra sinks, the OpenTelemetry
  span, and the SQLite store in one transaction per batch.

Each step is guarded on its own: a failing sink, a full disk or a locked database costs that
step, never a response, and never the other steps. When the thread falls behind by
``queue_size`` records, new records skip the thread (dropped and counted); the metrics have
counted them already.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING, Any, TextIO, cast

import structlog

from .metrics import Metrics
from .otel import SpanExporter
from .prices import PriceTable
from .record import Seen, build_record
from .store import LogStore

if TYPE_CHECKING:
    from .pgstore import PostgresLogStore

__all__ = ["LogLines", "Sink", "Writer", "open_log"]

log = structlog.get_logger("hookgate.logging")

Sink = Callable[[dict[str, Any]], None]
Item = tuple[dict[str, Any], str]
"""A record and its JSON text (what the store keeps and the JSON log line is made from)."""
_STOP = object()
_RETENTION_EVERY_S = 3600.0
_LINE_HEAD = '{"event":"gateway_request","level":"info",'


class LogLines:
    """The request log: JSON lines written as they were rendered on the loop, or structlog's
    console renderer for a terminal."""

    def __init__(self, stream: IO[str], fmt: str, opened: bool) -> None:
        self.stream = stream
        self.opened = opened
        self._console: Any = None
        if fmt == "console":
            self._console = structlog.wrap_logger(
                structlog.PrintLogger(cast(TextIO, stream)),
                processors=[
                    structlog.processors.add_log_level,
                    structlog.dev.ConsoleRenderer(colors=False),
                ],
                # Its own level filter: the request log is independent of the app's log level
                # (`hookgate serve` configures structlog at "warning").
                wrapper_class=structlog.make_filtering_bound_logger(0),
                context_class=dict,
                cache_logger_on_first_use=True,
            )

    def write(self, items: Sequence[Item]) -> None:
        if self._console is not None:
            for record, _ in items:
                self._console.info("gateway_request", **record)
            return
        # Records are redacted when built (record.build_record): no second pass here.
        self.stream.write("".join([f"{_LINE_HEAD}{text[1:]}\n" for _, text in items]))
        self.stream.flush()

    def close(self) -> None:
        if self.opened:
            self.stream.close()


def open_log(log_to: str, fmt: str) -> LogLines | None:
    """The request log for ``log_to``: stderr, stdout, none or a file path."""
    if log_to == "none":
        return None
    if log_to == "stderr":
        return LogLines(sys.stderr, fmt, opened=False)
    if log_to == "stdout":
        return LogLines(sys.stdout, fmt, opened=False)
    return LogLines(open(log_to, "a", encoding="utf-8"), fmt, opened=True)


class Writer:
    """Builds records on the loop and hands them to the thread that writes them."""

    def __init__(
        self,
        *,
        prices: PriceTable,
        store: LogStore | PostgresLogStore | None,
        lines: LogLines | None = None,
        sinks: Sequence[Sink] = (),
        metrics: Metrics | None = None,
        spans: SpanExporter | None = None,
        retention_days: float = 0,
        batch_size: int = 500,
        queue_size: int = 100_000,
        flush_interval: float = 0.05,
        log_bodies: bool = False,
        max_body_chars: int = 2048,
    ) -> None:
        self.prices = prices
        self.store = store
        self.lines = lines
        self.sinks = list(sinks)
        self.metrics = metrics
        self.spans = spans
        self.retention_days = retention_days
        self.batch_size = batch_size
        self.queue_size = queue_size
        self.flush_interval = flush_interval
        self.log_bodies = log_bodies
        self.max_body_chars = max_body_chars
        self.dropped = 0
        self.written = 0
        self.failures: dict[str, int] = {}
        self._seen: list[Seen] = []
        self._ready: deque[Any] = deque()  # appended on the loop, taken by the thread
        self._wake = threading.Event()
        self._hurry = False
        self._thread = threading.Thread(target=self._run, name="hookgate-logging", daemon=True)
        self._conn: Any = None
        self._next_retention = 0.0
        self._counted_drops = 0

    # ---- the event loop ---------------------------------------------------------------

    def submit(self, seen: Seen) -> None:
        """Called by ``post_response``: the record is made once the response has gone out."""
        self._seen.append(seen)
        if len(self._seen) == 1:
            try:
                asyncio.get_running_loop().call_soon(self.process)
            except RuntimeError:  # no event loop (a script feeding the writer): now
                self.process()

    def process(self) -> None:
        """Build, count and render what was submitted; hand it to the thread."""
        seen, self._seen = self._seen, []
        ready = self._ready
        for item in seen:
            try:
                record, text = build_record(
                    item,
                    self.prices,
                    log_bodies=self.log_bodies,
                    max_body_chars=self.max_body_chars,
                )
            except Exception as exc:
                self._failed("record", exc)
                continue
            if self.metrics is not None:
                try:
                    self.metrics.count(record)
                except Exception as exc:
                    self._failed("metrics", exc)
            if len(ready) >= self.queue_size:
                self.dropped += 1  # the thread fell behind: lose a line, not latency
                continue
            ready.append((record, text))
        if seen and not self._wake.is_set():
            self._wake.set()

    # ---- control (any thread) ---------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything handed to the thread so far is written (call :meth:`process`
        on the loop first for what was submitted in this loop iteration)."""
        if not self._thread.is_alive():
            return False
        deadline = time.monotonic() + timeout
        done = threading.Event()
        self._ready.append(done)
        self._hurry = True
        self._wake.set()
        if not done.wait(timeout):
            return False
        store = self.store
        if store is not None and getattr(store, "has_own_thread", False):
            return bool(store.flush(max(0.0, deadline - time.monotonic())))  # type: ignore[union-attr]
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Write what is waiting, then stop the thread."""
        if self._seen:
            self.process()
        if self._thread.is_alive():
            self._ready.append(_STOP)
            self._hurry = True
            self._wake.set()
            self._thread.join(timeout)

    # ---- the thread -------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait()
            if not self._hurry and self.flush_interval > 0:
                time.sleep(self.flush_interval)  # gather a batch: one write, one transaction
            self._hurry = False
            self._wake.clear()  # before draining: what arrives later wakes us again
            if self._drain():
                break
        self._finish()

    def _drain(self) -> bool:
        """Write everything waiting, in batches; True once told to stop."""
        stopping = False
        ready = self._ready
        while True:
            items: list[Item] = []
            markers: list[threading.Event] = []
            while len(items) < self.batch_size:
                try:
                    item = ready.popleft()
                except IndexError:
                    break
                if item is _STOP:
                    stopping = True
                elif isinstance(item, threading.Event):
                    markers.append(item)
                else:
                    items.append(item)
            if items:
                self._write(items)
            self._retention()
            self._count_drops()
            for marker in markers:
                marker.set()
            if not ready:
                return stopping

    def _failed(self, step: str, exc: BaseException) -> None:
        count = self.failures.get(step, 0) + 1
        self.failures[step] = count
        if count == 1 or count % 1000 == 0:  # say so, without flooding the log
            log.warning(
                "request_log_step_failed",
                step=step,
                failures=count,
                error=f"{type(exc).__name__}: {exc}",
            )

    def _write(self, items: list[Item]) -> None:
        if self.lines is not None:
            try:
                self.lines.write(items)
            except Exception as exc:
                self._failed("log", exc)
        for sink in self.sinks:
            name = f"sink {getattr(sink, '__qualname__', type(sink).__name__)}"
            for record, _ in items:
                try:
                    sink(record)
                except Exception as exc:
                    self._failed(name, exc)
        if self.spans is not None:
            for record, _ in items:
                try:
                    self.spans.export(record)
                except Exception as exc:
                    self._failed("otel", exc)
        self._store(items)

    def _store(self, items: list[Item]) -> None:
        if self.store is None:
            return
        try:
            if self._conn is None:
                self._conn = self.store.connect()
            self.store.write(self._conn, items)
            self.written += len(items)
        except Exception as exc:
            self._failed("store", exc)
            if self.metrics is not None:
                self.metrics.store_errors.inc()
            self._reset_connection()

    def _reset_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception as exc:
                self._failed("store close", exc)
            self._conn = None

    def _retention(self) -> None:
        if self.store is None or self.retention_days <= 0:
            return
        now = time.monotonic()
        if now < self._next_retention:
            return
        self._next_retention = now + _RETENTION_EVERY_S
        try:
            if self._conn is None:
                self._conn = self.store.connect()
            self.store.delete_older_than(self._conn, self.retention_days)
        except Exception as exc:
            self._failed("retention", exc)
            self._reset_connection()

    def _count_drops(self) -> None:
        dropped = self.dropped
        if dropped != self._counted_drops and self.metrics is not None:
            self.metrics.dropped.inc(dropped - self._counted_drops)
            self._counted_drops = dropped

    def _finish(self) -> None:
        self._reset_connection()
        store = self.store
        if store is not None and getattr(store, "has_own_thread", False):
            try:
                store.close(10.0)  # type: ignore[union-attr]
            except Exception as exc:
                self._failed("store close", exc)
        if self.spans is not None:
            try:
                self.spans.shutdown()
            except Exception as exc:
                self._failed("otel shutdown", exc)

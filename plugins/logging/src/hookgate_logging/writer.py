"""The background writer: everything slow happens here, never on the request path.

``post_response`` only puts what it saw on a queue (a few hundred nanoseconds). One daemon
thread takes what is queued, in batches, and for each request builds the record, writes the
structured log line, calls the extra sinks, counts the metrics and makes the span; then it
writes the batch to the SQLite store with its own connection. Each of those steps is guarded
on its own: a failing sink, a full disk or a locked database costs that step, never a
response, and never the other steps.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import IO, Any

import orjson
import structlog

from .metrics import Metrics
from .otel import SpanExporter
from .prices import PriceTable
from .record import Seen, build_record
from .store import LogStore

__all__ = ["Sink", "Writer", "open_log"]

log = structlog.get_logger("hookgate.logging")

Sink = Callable[[dict[str, Any]], None]
_STOP = object()
_RETENTION_EVERY_S = 3600.0


def _dumps(obj: Any, **_: Any) -> str:
    return orjson.dumps(obj, default=str).decode()


def open_log(log_to: str, fmt: str) -> tuple[Sink | None, IO[str] | None]:
    """The structured-log sink for ``log_to`` (stderr, stdout, none or a file path), and the
    file it opened (to close at shutdown)."""
    if log_to == "none":
        return None, None
    opened = None
    if log_to == "stderr":
        stream: IO[str] = sys.stderr
    elif log_to == "stdout":
        stream = sys.stdout
    else:
        opened = stream = open(log_to, "a", encoding="utf-8")  # noqa: SIM115 - closed at shutdown
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_dumps)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    logger = structlog.wrap_logger(
        structlog.PrintLogger(stream),
        # records are redacted when built (record.scrub): no second pass here
        processors=[structlog.processors.add_log_level, renderer],
        # Its own level filter: the request log is independent of the app's log level
        # (`hookgate serve` configures structlog at "warning").
        wrapper_class=structlog.make_filtering_bound_logger(0),
        context_class=dict,
        cache_logger_on_first_use=True,
    )

    def emit(record: dict[str, Any]) -> None:
        logger.info("gateway_request", **record)

    return emit, opened


class Writer:
    """A queue and the thread that empties it."""

    def __init__(
        self,
        *,
        prices: PriceTable,
        store: LogStore | None,
        sinks: Sequence[Sink] = (),
        metrics: Metrics | None = None,
        spans: SpanExporter | None = None,
        retention_days: float = 0,
        batch_size: int = 500,
        queue_size: int = 100_000,
        log_bodies: bool = False,
        max_body_chars: int = 2048,
    ) -> None:
        self.prices = prices
        self.store = store
        self.sinks = list(sinks)
        self.metrics = metrics
        self.spans = spans
        self.retention_days = retention_days
        self.batch_size = batch_size
        self.queue_size = queue_size
        self.log_bodies = log_bodies
        self.max_body_chars = max_body_chars
        self.dropped = 0
        self.written = 0
        self.failures: dict[str, int] = {}
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="hookgate-logging", daemon=True)
        self._conn: Any = None
        self._next_retention = 0.0
        self._counted_drops = 0

    # ---- the request path -------------------------------------------------------------

    def submit(self, seen: Seen) -> None:
        if self._queue.qsize() >= self.queue_size:
            self.dropped += 1  # the writer fell behind: lose a record, not latency
            return
        self._queue.put(seen)

    # ---- control ----------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted so far is logged and stored."""
        if not self._thread.is_alive():
            return False
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the thread."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)

    # ---- the thread -------------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            items = [self._queue.get()]
            while len(items) < self.batch_size:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            records = []
            markers = []
            for item in items:
                if item is _STOP:
                    stopping = True
                elif isinstance(item, threading.Event):
                    markers.append(item)
                else:
                    record = self._process(item)
                    if record is not None:
                        records.append(record)
            if records:
                self._store(records)
            self._retention()
            self._count_drops()
            for marker in markers:
                marker.set()
        self._finish()

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

    def _process(self, seen: Seen) -> dict[str, Any] | None:
        try:
            record = build_record(
                seen, self.prices, log_bodies=self.log_bodies, max_body_chars=self.max_body_chars
            )
        except Exception as exc:
            self._failed("record", exc)
            return None
        for sink in self.sinks:
            try:
                sink(record)
            except Exception as exc:
                self._failed(f"sink {getattr(sink, '__qualname__', type(sink).__name__)}", exc)
        if self.metrics is not None:
            try:
                self.metrics.count(record)
            except Exception as exc:
                self._failed("metrics", exc)
        if self.spans is not None:
            try:
                self.spans.export(record)
            except Exception as exc:
                self._failed("otel", exc)
        return record

    def _store(self, records: list[dict[str, Any]]) -> None:
        if self.store is None:
            return
        try:
            if self._conn is None:
                self._conn = self.store.connect()
            self.store.write(self._conn, records)
            self.written += len(records)
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
        if self.spans is not None:
            try:
                self.spans.shutdown()
            except Exception as exc:
                self._failed("otel shutdown", exc)

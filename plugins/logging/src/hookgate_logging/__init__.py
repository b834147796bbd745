"""hookgate-logging: one structured record per request, tokens and cost, Prometheus metrics, a
log store (a SQLite file, or PostgreSQL shared by every instance) that answers the log query
hooks and ``hookgate logs`` / ``hookgate stats``, and optional OpenTelemetry spans.

``post_response`` only appends what it saw to a list (see :mod:`hookgate_logging.writer`): the
record is built, counted and rendered on the event loop once the response has gone out, and a
background thread writes log lines, sinks, spans and the store in batches, so no request waits
for any of it and a slow disk or a broken sink never reaches a client.

Tests and apps may pass ``tracer_provider`` (any OpenTelemetry ``TracerProvider``, e.g. one with
an ``InMemorySpanExporter``) and extra ``sinks`` (callables that get each redacted record, on
the writer's thread) to the constructor, and register the plugin with
``Gateway.register(plugin, "logging")``.
"""

from __future__ import annotations

import asyncio
import atexit
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from hookgate import Gauge, RequestContext, Response, StreamResponse, Usage, hookimpl
from pydantic import BaseModel, ConfigDict, Field

from .prices import PriceTable
from .record import Seen

if TYPE_CHECKING:
    import click
    from hookgate import Gateway
    from hookgate.logquery import AggregateQuery, Aggregates, LogPage, LogQuery

    from .metrics import Metrics
    from .query import LogReader
    from .writer import LogLines, Sink, Writer

__all__ = [
    "LoggingSettings",
    "OtelSettings",
    "Plugin",
    "PriceOverride",
    "Settings",
    "StoreSettings",
]


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StoreSettings(_Table):
    enabled: bool = True
    path: str = "hookgate-logs.db"
    """SQLite file; a relative path is relative to the plugins.toml that names it."""
    url: str | None = Field(default=None, repr=False)
    """``postgresql://user:pass@host/db``: keep the records in PostgreSQL instead, shared by
    every instance (needs ``hookgate-logging[postgres]``); ``path`` is then unused."""
    backlog: Annotated[int, Field(ge=1)] = 100_000
    """PostgreSQL: records kept in memory while the database is slow or down; past this the
    oldest are dropped (counted in ``hookgate_log_store_dropped_total``)."""
    retention_days: Annotated[float, Field(ge=0)] = 30.0
    """Delete records older than this (checked at the first write, then hourly); 0 keeps all."""
    batch_size: Annotated[int, Field(ge=1, le=100_000)] = 500
    busy_timeout_s: Annotated[float, Field(gt=0)] = 10.0


class OtelSettings(_Table):
    endpoint: str | None = None
    """OTLP/HTTP traces endpoint (``http://collector:4318/v1/traces``); unset: no spans."""
    headers: dict[str, str] = Field(default_factory=dict, repr=False)
    service_name: str = "hookgate"


class PriceOverride(_Table):
    """US dollars per million tokens."""

    input: Annotated[float, Field(ge=0)]
    output: Annotated[float, Field(ge=0)] = 0.0
    cached_input: Annotated[float, Field(ge=0)] | None = None


class LoggingSettings(_Table):
    log_to: str = "stderr"
    """Where request log lines go: ``stderr``, ``stdout``, ``none`` or a file path."""
    format: Literal["json", "console"] = "json"
    """JSON lines, or structlog's console renderer for a terminal."""
    log_bodies: bool = False
    """Add the request and response bodies (redacted, capped) to each record."""
    max_body_chars: Annotated[int, Field(ge=0)] = 2048
    store: StoreSettings = Field(default_factory=StoreSettings)
    metrics: bool = True
    """Serve Prometheus metrics at ``metrics_path`` from ``hookgate serve``."""
    metrics_path: str = "/metrics"
    metrics_multiprocess_dir: str | None = None
    """A directory where every worker writes its metrics, so /metrics adds up all of them
    (prometheus-client multiprocess mode). Unset: ``hookgate serve`` with several workers uses
    a folder of its own for this, so /metrics reports every worker anyway."""
    max_model_labels: Annotated[int, Field(ge=1)] = 100
    prices: dict[str, PriceOverride] = Field(default_factory=dict)
    """Add or replace model prices (USD per million tokens)."""
    prices_file: str | None = None
    """A JSON price table replacing the shipped one (same format as ``prices.json``)."""
    queue_size: Annotated[int, Field(ge=1)] = 10_000
    """Records waiting for the writer's thread; beyond this their log line and row are dropped
    (and counted; the metrics still count the request)."""
    flush_interval: Annotated[float, Field(ge=0, le=10)] = 0.05
    """Seconds the writer's thread gathers records before one write and one store
    transaction; 0 writes as soon as anything is waiting."""
    otel: OtelSettings = Field(default_factory=OtelSettings)


def _resolve(path: str, source: str) -> Path:
    candidate = Path(path).expanduser()
    if candidate.is_absolute():
        return candidate
    base = Path(source)
    if source.startswith("<") or not base.is_file():
        return candidate
    return base.parent / candidate


def _secrets_in(value: Any, key: str = "") -> list[str]:
    from hookgate.log import SECRET_FIELDS

    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _secrets_in(v, str(k).lower())]
    if isinstance(value, list):
        return [s for v in value for s in _secrets_in(v, key)]
    if isinstance(value, str) and (key in SECRET_FIELDS or key.endswith(("api_key", "_token"))):
        return [value]
    return []


Settings = LoggingSettings
"""The name the loader and older code use."""


class Plugin:
    """The ``logging`` plugin."""

    Settings = LoggingSettings

    def __init__(
        self,
        settings: LoggingSettings | None = None,
        *,
        tracer_provider: Any = None,
        sinks: Sequence[Sink] = (),
    ) -> None:
        self.settings = settings = settings or LoggingSettings()
        self.tracer_provider = tracer_provider
        """An OpenTelemetry TracerProvider to make spans on (overrides ``otel.endpoint``)."""
        self.sinks = list(sinks)
        """Extra callables that receive every (redacted) record, after the log line."""
        self.prices = PriceTable.load(
            settings.prices_file, {k: v.model_dump() for k, v in settings.prices.items()}
        )
        self.multiprocess_dir: str | None = None
        if settings.metrics:
            from .metrics import enable_multiprocess

            self.multiprocess_dir = enable_multiprocess(settings.metrics_multiprocess_dir)
        self.metrics: Metrics | None = None
        self.writer: Writer | None = None
        self.store_path: Path | None = None
        self.reader: LogReader | None = None
        self._lines: LogLines | None = None

    # ---- life cycle ---------------------------------------------------------------------

    def _ensure_metrics(self) -> Metrics | None:
        if self.metrics is None and self.settings.metrics:
            from .metrics import Metrics

            self.metrics = Metrics(self.multiprocess_dir, self.settings.max_model_labels)
        return self.metrics

    @hookimpl
    def startup(self, gateway: Gateway) -> None:
        from hookgate.log import register_secret

        from .otel import SpanExporter, otlp_tracer_provider
        from .store import LogStore
        from .writer import Writer, open_log

        if self.writer is not None:
            return
        config = gateway.settings
        for vk in config.virtual_keys.values():
            register_secret(vk.api_key)
        for key in config.server.api_keys:
            register_secret(key)
        for secret in _secrets_in(config.plugins):
            register_secret(secret)
        for secret in _secrets_in(self.settings.otel.headers, "api_key"):
            register_secret(secret)

        settings = self.settings
        store = None
        if settings.store.enabled and settings.store.url:
            store = self._postgres_store()
        elif settings.store.enabled:
            self.store_path = _resolve(settings.store.path, config.source)
            store = LogStore(self.store_path, settings.store.busy_timeout_s)
        if store is not None:
            from .query import LogReader

            self.reader = LogReader(store)
        spans = None
        operations = {
            spec.name: spec.operation for spec in gateway.endpoints.specs.values() if spec.operation
        }
        if self.tracer_provider is not None:
            spans = SpanExporter(self.tracer_provider, operations=operations)
        elif settings.otel.endpoint:
            spans = SpanExporter(
                otlp_tracer_provider(
                    settings.otel.endpoint, settings.otel.headers, settings.otel.service_name
                ),
                owned=True,
                operations=operations,
            )
        self._lines = open_log(settings.log_to, settings.format)
        self.writer = Writer(
            prices=self.prices,
            store=store,
            lines=self._lines,
            sinks=self.sinks,
            metrics=self._ensure_metrics(),
            spans=spans,
            retention_days=settings.store.retention_days,
            batch_size=settings.store.batch_size,
            queue_size=settings.queue_size,
            flush_interval=settings.flush_interval,
            log_bodies=settings.log_bodies,
            max_body_chars=settings.max_body_chars,
        )
        self.writer.start()
        # An app that never closes its Gateway still gets what was queued written at exit.
        atexit.register(self.writer.close, 5.0)

    def _postgres_store(self) -> Any:
        from .pgstore import PostgresLogStore, is_postgres_url, register_url_secrets

        url = self.settings.store.url or ""
        if not is_postgres_url(url):
            from hookgate.errors import SettingsError

            raise SettingsError(
                "[plugins.logging] store.url must be a postgresql:// URL "
                "(or leave it unset for the SQLite file at store.path)"
            )
        register_url_secrets(url)
        metrics = self._ensure_metrics()
        return PostgresLogStore(
            url,
            batch_size=max(self.settings.store.batch_size, 1000),
            backlog=self.settings.store.backlog,
            on_error=metrics.store_errors.inc if metrics is not None else None,
            on_dropped=metrics.store_dropped.inc if metrics is not None else None,
        )

    @hookimpl
    async def shutdown(self, gateway: Gateway) -> None:
        writer, self.writer = self.writer, None
        if writer is not None:
            atexit.unregister(writer.close)
            writer.process()
            await asyncio.to_thread(writer.close)
        if self._lines is not None:
            self._lines.close()
            self._lines = None
        reader, self.reader = self.reader, None
        if reader is not None:
            await asyncio.to_thread(reader.close)

    async def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every request so far is logged, counted and stored."""
        writer = self.writer
        if writer is None:
            return False
        writer.process()
        return await asyncio.to_thread(writer.flush, timeout)

    def exposition(self, gauges: Sequence[Gauge] = ()) -> tuple[bytes, str]:
        """What ``/metrics`` answers: Prometheus' text format and its content type (in
        multiprocess mode, every worker's numbers added up), plus other plugins' ``gauges``."""
        metrics = self._ensure_metrics()
        if metrics is None:
            raise RuntimeError("metrics are disabled ([plugins.logging] metrics = false)")
        body, content_type = metrics.exposition()
        if gauges:
            from .metrics import render_gauges

            body += render_gauges(gauges)
        return body, content_type

    # ---- the request path ----------------------------------------------------------------

    @hookimpl
    def post_response(
        self, ctx: RequestContext, response: Response | StreamResponse | None
    ) -> None:
        writer = self.writer
        if writer is not None:
            writer.submit(
                Seen(
                    ctx,
                    response,
                    ctx.status,
                    ctx.cache_status,
                    ctx.cache_similarity,
                    ctx.error,
                    ctx.completed,
                    ctx.cache_reason,
                )
            )

    @hookimpl
    def request_usage(
        self, ctx: RequestContext, response: Response | StreamResponse | None
    ) -> Usage | None:
        from .record import measure

        measured = measure(ctx, response, self.prices)
        if measured.usage is None:
            return None
        return Usage(
            measured.usage.prompt,
            measured.usage.completion,
            measured.cost,
            estimated=measured.source == "estimated",
        )

    # ---- the log query interface (hookgate.logquery) -----------------------------------

    @hookimpl
    def query_logs(self, gateway: Gateway, query: LogQuery) -> Awaitable[LogPage] | None:
        reader = self.reader
        if reader is None:
            return None
        return reader.run(lambda conn: reader.page(conn, query))

    @hookimpl
    def aggregate_logs(
        self, gateway: Gateway, query: AggregateQuery
    ) -> Awaitable[Aggregates] | None:
        reader = self.reader
        if reader is None:
            return None
        return reader.run(lambda conn: reader.aggregate(conn, query))

    # ---- server and CLI ----------------------------------------------------------------

    @hookimpl
    def register_routes(self, gateway: Gateway) -> list[Any]:
        if not self.settings.metrics:
            return []
        from starlette.requests import Request
        from starlette.responses import Response as HTTPResponse
        from starlette.routing import Route

        plugin = self

        def metrics(request: Request) -> HTTPResponse:  # sync: Starlette runs it in a thread
            body, content_type = plugin.exposition(gateway.hooks.metrics(gateway))
            return HTTPResponse(body, media_type=content_type)

        return [Route(self.settings.metrics_path, metrics, methods=["GET"])]

    @hookimpl
    def register_commands(self, cli: click.Group) -> None:
        from .cli import add_commands

        add_commands(cli)

"""OpenTelemetry: one span per request, with GenAI semantic-convention attributes.

Spans are made by the background writer after the request finished, with the request's real
start and end times, so tracing adds nothing to the request path. Needs the ``otel`` extra
(``pip install 'hookgate-logging[otel]'``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["SpanExporter", "otlp_tracer_provider"]

# gen_ai.system values from the GenAI semantic conventions, for hookgate's provider names.
_SYSTEMS = {
    "openai": "openai",
    "azure-openai": "az.ai.openai",
    "anthropic": "anthropic",
    "gemini": "gcp.gemini",
    "deepseek": "deepseek",
    "groq": "groq",
    "mistral": "mistral_ai",
}
# The core's endpoints; a plugin's endpoint says its own (``EndpointSpec.operation``).
_OPERATIONS = {
    "chat.completions": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
}


def otlp_tracer_provider(endpoint: str, headers: Mapping[str, str], service_name: str) -> Any:
    """A tracer provider exporting to an OTLP/HTTP endpoint in batches."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, headers=dict(headers)))
    )
    return provider


class SpanExporter:
    """Turns records into spans on ``tracer_provider``."""

    def __init__(
        self,
        tracer_provider: Any,
        *,
        owned: bool = False,
        operations: Mapping[str, str] | None = None,
    ) -> None:
        from opentelemetry.trace import SpanKind, Status, StatusCode

        self.provider = tracer_provider
        self.owned = owned
        self.operations = {**_OPERATIONS, **(operations or {})}
        """``gen_ai.operation.name`` by endpoint; any other endpoint is named as it is."""
        """Shut the provider down with the plugin (it was built from the settings)."""
        self.tracer = tracer_provider.get_tracer("hookgate_logging")
        self._kind = SpanKind.CLIENT
        self._status = Status
        self._code = StatusCode

    def export(self, record: dict[str, Any]) -> None:
        operation = self.operations.get(record["endpoint"], record["endpoint"])
        provider = record["provider"]
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "hookgate.trace_id": record["trace_id"],
            "hookgate.target": record["target"],
            "hookgate.status": record["status"],
            "hookgate.cache_status": record["cache_status"],
            "hookgate.attempts": len(record["attempts"]),
            "hookgate.retries": record["retries"],
            "hookgate.fallbacks": record["fallbacks"],
            "hookgate.stream": record["stream"],
            "http.response.status_code": record["status"],
        }
        optional = {
            "gen_ai.system": _SYSTEMS.get(provider, provider) if provider else None,
            "gen_ai.request.model": record["model_sent"] or record["model"],
            "gen_ai.response.model": record["model_answered"],
            "gen_ai.usage.input_tokens": record["prompt_tokens"],
            "gen_ai.usage.output_tokens": record["completion_tokens"],
            "hookgate.provider": provider,
            "hookgate.cache_similarity": record["cache_similarity"],
            "hookgate.cost_usd": record["cost_usd"],
            "hookgate.cost_saved_usd": record["cost_saved_usd"],
            "hookgate.usage_source": record["usage_source"],
            "hookgate.upstream_ms": record["upstream_ms"],
            "hookgate.ttft_ms": record["ttft_ms"],
            "error.type": record["error_code"] or record["error_type"],
        }
        attributes.update((k, v) for k, v in optional.items() if v is not None)
        for key, value in record["metadata"].items():
            attributes[f"hookgate.metadata.{key}"] = str(value)
        start = int(record["ts"] * 1e9)
        end = start + int((record["latency_ms"] or 0.0) * 1e6)
        model = attributes.get("gen_ai.request.model")
        span = self.tracer.start_span(
            f"{operation} {model}" if model else operation,
            kind=self._kind,
            attributes=attributes,
            start_time=start,
        )
        if record["error_type"] is not None:
            span.set_status(self._status(self._code.ERROR, record["error_message"] or None))
        span.end(end_time=max(end, start))

    def shutdown(self) -> None:
        if self.owned:
            self.provider.shutdown()
            return
        flush = getattr(self.provider, "force_flush", None)
        if flush is not None:
            flush()

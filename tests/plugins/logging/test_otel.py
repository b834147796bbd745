"""OpenTelemetry spans, one per request, checked with the SDK's in-memory exporter."""

from __future__ import annotations

import asyncio

import pytest
from hookgate import CallOptions, Gateway, ProviderError
from hookgate_logging import Plugin, Settings
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

HELLO = [{"role": "user", "content": "hello there"}]


@pytest.fixture
def exporter():
    return InMemorySpanExporter()


@pytest.fixture
async def gw(exporter, tmp_path):
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    gateway = Gateway({"gateway": {"plugins": ["mock"], "default_provider": "mock"}})
    gateway.register(
        Plugin(
            Settings(log_to="none", store={"path": str(tmp_path / "logs.db")}),
            tracer_provider=provider,
        ),
        "logging",
    )
    async with gateway:
        yield gateway
    provider.shutdown()


async def test_a_span_per_request_with_genai_attributes(gw, exporter):
    answer = await gw.chat.completions.create(
        model="gpt-4o-mini",
        messages=HELLO,
        options=CallOptions(trace_id="trace-span", metadata={"team": "search"}),
    )
    assert await gw.plugin("logging").flush()
    (span,) = exporter.get_finished_spans()
    attrs = dict(span.attributes)
    assert span.name == "chat gpt-4o-mini"
    assert span.kind == SpanKind.CLIENT
    assert span.status.status_code == StatusCode.UNSET
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.system"] == "mock"
    assert attrs["gen_ai.request.model"] == attrs["gen_ai.response.model"] == "gpt-4o-mini"
    assert attrs["gen_ai.usage.input_tokens"] == answer.usage.prompt_tokens
    assert attrs["gen_ai.usage.output_tokens"] == answer.usage.completion_tokens
    assert attrs["hookgate.trace_id"] == "trace-span"
    assert attrs["hookgate.metadata.team"] == "search"
    assert attrs["hookgate.cache_status"] == "DISABLED"
    assert attrs["hookgate.cost_usd"] > 0
    assert attrs["http.response.status_code"] == 200
    assert 0 <= span.end_time - span.start_time < 5e9


async def test_a_failed_request_is_an_error_span(gw, exporter):
    with pytest.raises(ProviderError):
        await gw.chat.completions.create(
            model="m", messages=HELLO, config={"provider": "mock", "mock": {"fail_status": 502}}
        )
    assert await gw.plugin("logging").flush()
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code == StatusCode.ERROR
    assert "mock failure 502" in span.status.description
    assert span.attributes["error.type"] == "ProviderError"
    assert span.attributes["http.response.status_code"] == 502
    assert span.attributes["hookgate.attempts"] == 1


def test_spans_reach_a_configured_otlp_endpoint(make_gateway, server_thread, tmp_path):
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    from tests.support.servers import serving

    received = []

    async def traces(request):
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.body())
        received.append((dict(request.headers), message))
        return Response(b"", media_type="application/x-protobuf")

    collector = Starlette(routes=[Route("/v1/traces", traces, methods=["POST"])])
    with serving(collector, server_thread) as otlp:
        gateway = make_gateway(f"""
            [gateway]
            plugins = ["mock", "logging"]
            default_provider = "mock"
            [plugins.logging]
            log_to = "none"
            store = {{ enabled = false }}
            otel = {{ endpoint = "{otlp.url}/v1/traces", headers = {{ x-team = "gw" }} }}
        """)

        async def run():
            async with gateway as gw:
                await gw.chat.completions.create(model="gpt-4o", messages=HELLO)

        asyncio.run(run())  # shutting down flushes the batch to the collector
    assert len(received) == 1
    headers, message = received[0]
    assert headers["x-team"] == "gw"
    (resource_spans,) = message.resource_spans
    service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert service["service.name"] == "hookgate"
    (span,) = resource_spans.scope_spans[0].spans
    attrs = {a.key: a.value for a in span.attributes}
    assert span.name == "chat gpt-4o"
    assert attrs["gen_ai.request.model"].string_value == "gpt-4o"
    assert attrs["gen_ai.usage.input_tokens"].int_value > 0

"""``/v1/messages`` is the anthropic plugin's declared endpoint, not the core's: without the
plugin it is a 404 naming the plugin to enable; with it, it is documented in
``/openapi.json`` and logged as a chat call with Anthropic's usage and cost."""

from __future__ import annotations

import anthropic
import httpx
import pytest
from hookgate import Gateway
from hookgate.errors import NotFoundError
from hookgate_logging import Plugin as Logging
from hookgate_logging import Settings as LoggingSettings
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.support.fake_anthropic import Reply, message

HELLO = [{"role": "user", "content": "hello gateway"}]
BODY = {"model": "claude-sonnet-4-0", "max_tokens": 16, "messages": HELLO}


def test_the_endpoint_is_declared_by_the_anthropic_plugin(make_gateway, fake_anthropic):
    import hookgate.models
    from hookgate_anthropic import MessagesRequest

    gateway = make_gateway(f"""
        [gateway]
        plugins = ["anthropic"]
        [plugins.anthropic]
        base_url = "{fake_anthropic.url}"
    """)
    spec = gateway.endpoints.spec("messages")
    assert spec is not None and gateway.endpoints.owners["messages"] == "anthropic"
    assert (spec.method, spec.path, spec.request_model) == ("POST", "/v1/messages", MessagesRequest)
    assert spec.streams and not spec.done_marker and spec.cacheable
    assert not hasattr(hookgate.models, "MessagesRequest")  # the core has no such model


@pytest.mark.parametrize("path", ["/v1/messages", "/messages"])
def test_without_the_plugin_the_route_is_a_404_naming_it(make_gateway, serve, path):
    gateway = make_gateway("""
        [gateway]
        plugins = ["mock"]
        default_provider = "mock"
    """)
    with serve(gateway) as server:
        answer = httpx.post(server.url + path, json=BODY, timeout=10)
        other = httpx.post(server.url + "/v1/nothing-here", json=BODY, timeout=10)
    assert answer.status_code == 404
    error = answer.json()["error"]
    assert error["code"] == "endpoint_not_enabled"
    assert "'messages' endpoint" in error["message"]
    assert "add 'anthropic' to [gateway] plugins" in error["message"]
    # a path no installed plugin declares stays a plain 404
    assert other.status_code == 404
    assert other.json()["error"]["message"] == "no route for POST /v1/nothing-here"


def test_the_sdk_sees_the_404_too(make_gateway, serve):
    gateway = make_gateway('[gateway]\nplugins = ["mock"]\ndefault_provider = "mock"')
    with (
        serve(gateway) as server,
        anthropic.Anthropic(base_url=server.url, api_key="sk-ant-caller", max_retries=0) as client,
        pytest.raises(anthropic.NotFoundError) as err,
    ):
        client.messages.create(**BODY)
    assert "anthropic" in str(err.value)


async def test_embedded_request_without_the_plugin_names_it():
    async with Gateway({"gateway": {"plugins": ["mock"], "default_provider": "mock"}}) as gw:
        with pytest.raises(NotFoundError) as err:
            await gw.request("messages", BODY)
    assert err.value.code == "endpoint_not_enabled"
    assert "'anthropic'" in err.value.message


def test_turned_off_it_is_not_declared(make_gateway, serve):
    gateway = make_gateway("""
        [gateway]
        plugins = ["anthropic"]
        [plugins.anthropic]
        messages_route = false
    """)
    assert gateway.endpoints.spec("messages") is None
    with serve(gateway) as server:
        document = httpx.get(f"{server.url}/openapi.json", timeout=10).json()
    assert "/v1/messages" not in document["paths"]


def test_openapi_documents_the_request_model(make_gateway, serve, fake_anthropic):
    gateway = make_gateway(f"""
        [gateway]
        plugins = ["anthropic"]
        [plugins.anthropic]
        base_url = "{fake_anthropic.url}"
    """)
    with serve(gateway) as server:
        document = httpx.get(f"{server.url}/openapi.json", timeout=10).json()
    operation = document["paths"]["/v1/messages"]["post"]
    assert operation["operationId"] == "messages"
    assert operation["tags"] == ["anthropic"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    if "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    assert {"model", "messages", "max_tokens"} <= set(schema["required"])
    assert "text/event-stream" in operation["responses"]["200"]["content"]


@pytest.fixture
def spans():
    return InMemorySpanExporter()


@pytest.fixture
def logged(make_gateway, serve, fake_anthropic, spans):
    """A server with the logging plugin: ``(server, records)``."""
    tracer = TracerProvider()
    tracer.add_span_processor(SimpleSpanProcessor(spans))
    records: list[dict] = []
    gateway = make_gateway(f"""
        [gateway]
        plugins = ["anthropic"]
        default_provider = "anthropic"
        [plugins.anthropic]
        base_url = "{fake_anthropic.url}"
    """)
    logging = Logging(
        LoggingSettings(log_to="none", store={"enabled": False}),
        tracer_provider=tracer,
        sinks=[records.append],
    )
    gateway.register(logging, "logging")
    with serve(gateway) as server:
        yield server, records, logging
    tracer.shutdown()


USAGE = {"input_tokens": 30, "cache_read_input_tokens": 12, "output_tokens": 9}


@pytest.mark.parametrize("stream", [False, True])
def test_logged_as_a_chat_call_with_anthropics_usage_and_cost(
    logged, fake_anthropic, spans, stream
):
    server, records, logging = logged
    answer = message([{"type": "text", "text": "hi"}], usage=USAGE, model="claude-sonnet-4-0")
    fake_anthropic.script(Reply(message=answer))
    with anthropic.Anthropic(base_url=server.url, api_key="sk-ant-caller", max_retries=0) as sdk:
        if stream:
            with sdk.messages.stream(**BODY) as events:
                final = events.get_final_message()
        else:
            final = sdk.messages.create(**BODY)
    assert final.usage.output_tokens == 9
    assert server.thread.run(logging.flush())
    [record] = records
    assert record["endpoint"] == "messages"
    assert record["prompt_tokens"] == 42  # input, plus the cache reads Anthropic counts apart
    assert record["completion_tokens"] == 9
    assert record["cached_tokens"] == 12
    assert record["usage_source"] == ("stream" if stream else "response")
    assert record["cost_usd"] > 0
    [span] = spans.get_finished_spans()
    assert span.attributes["gen_ai.operation.name"] == "chat"  # the spec's, not the name
    assert span.attributes["gen_ai.system"] == "anthropic"


def test_check_names_the_plugin_that_serves_its_settings(write_toml):
    from click.testing import CliRunner
    from hookgate.cli import cli

    path = write_toml("""
        [gateway]
        plugins = ["mock"]
        [plugins.anthropic]
        messages_route = true
    """)
    result = CliRunner().invoke(cli, ["check", "--config", str(path)])
    assert result.exit_code == 1
    assert "[plugins.anthropic] configures a plugin that is not enabled" in result.output
    assert "add 'anthropic' to [gateway] plugins" in result.output

"""``GET /openapi.json`` and a bounded schemathesis run against the real app over HTTP:
no 500, and every answer within its documented status, content type, headers and schema."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def gateway(make_gateway):
    return make_gateway("""
        [gateway]
        plugins = ["mock", "openai", "anthropic", "responses", "retry", "fallback", "cache"]
        default_provider = "mock"
        [plugins.openai]
        base_url = "http://127.0.0.1:9/v1"
        connect_timeout = 0.5
    """)


@pytest.fixture
def server(gateway, serve):
    with serve(gateway) as running:
        yield running


def test_the_document_lists_every_route_and_portkey_headers(server):
    document = httpx.get(f"{server.url}/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    paths = document["paths"]
    for path, method in [
        ("/v1/chat/completions", "post"),
        ("/v1/completions", "post"),
        ("/v1/embeddings", "post"),
        ("/v1/models", "get"),
        ("/health", "get"),
        ("/ready", "get"),
        ("/v1/responses", "post"),  # the responses plugin's
        ("/v1/responses/{response_id}", "delete"),
        ("/v1/audio/transcriptions", "post"),  # the openai plugin's
        ("/v1/files/{file_id}/content", "get"),
        ("/v1/messages", "post"),  # registered by the anthropic plugin
    ]:
        assert method in paths.get(path, {}), (path, method)
    chat = paths["/v1/chat/completions"]["post"]
    headers = {p["$ref"].rsplit("/", 1)[1] for p in chat["parameters"]}
    assert {"XPortkeyConfig", "XPortkeyProvider", "XPortkeyVirtualKey"} <= headers
    assert "x-portkey-cache-status" in str(chat["responses"]["200"]["headers"])
    form = paths["/v1/audio/transcriptions"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in form
    speech = paths["/v1/audio/speech"]["post"]["responses"]["200"]["content"]
    assert "audio/mpeg" in speech


MAX_EXAMPLES = 6
"""Per operation and mode (valid and invalid data): bounded, so the run stays quick."""


def test_schemathesis_finds_no_500_and_no_schema_violation(server, capsys):
    document = httpx.get(f"{server.url}/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document)
    schema.config.update(base_url=server.url)
    operations = [result.ok() for result in schema.get_all_operations()]
    examples = 0
    failures: list[str] = []
    for operation in operations:
        # Invalid data exists only where there is a schema to break: JSON bodies (headers
        # and path segments are free strings).
        json_body = "application/json" in str(operation.definition.raw.get("requestBody"))
        modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if json_body else [])
        for mode in modes:

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=MAX_EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            def run(case: schemathesis.Case) -> None:
                nonlocal examples
                examples += 1
                case.call_and_validate(checks=CHECKS, timeout=10)

            try:
                run()
            except Unsatisfiable:
                continue  # nothing invalid to generate for this one
            except Exception as exc:  # collect every operation's failure, then report all
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    with capsys.disabled():
        print(
            f"\nschemathesis: {len(operations)} operations, {examples} examples, "
            f"{len(failures)} failing operations"
        )
    assert len(operations) >= 25
    assert not failures, "\n\n".join(failures)

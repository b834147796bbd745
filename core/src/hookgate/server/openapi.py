"""``GET /openapi.json``: an OpenAPI 3.1 document of every route the server has.

The core's routes come with their request and answer schemas (the pydantic models of
:mod:`hookgate.models`); an endpoint a plugin declares adds itself from its
:class:`~hookgate.endpoints.EndpointSpec` (path, method, body kind, request model, what a
success is); any other route a plugin registers (``register_routes``) is listed with its
methods and the first line of its handler's docstring. Every gateway operation documents
Portkey's request headers, the ``x-portkey-*`` answer headers and OpenAI's error shape.
Built once, when the app is built.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from .. import __version__
from ..endpoints import EndpointSpec
from ..models import (
    ChatCompletion,
    ChatCompletionRequest,
    Completion,
    CompletionRequest,
    CreateEmbeddingResponse,
    EmbeddingRequest,
)

__all__ = ["openapi_document"]

_REQUEST_HEADERS = {
    "x-portkey-config": "A config (JSON) or the id of one declared in plugins.toml",
    "x-portkey-provider": "The provider to call (Portkey's slug or an alias)",
    "x-portkey-virtual-key": "A virtual key declared in plugins.toml",
    "x-portkey-custom-host": "Another upstream URL for the provider (allow-listed)",
    "x-portkey-trace-id": "Your trace id, echoed in the answer",
    "x-portkey-metadata": "A JSON object of string tags for the logs",
    "x-portkey-cache-force-refresh": "true: skip the cache lookup, store the fresh answer",
    "x-portkey-cache-namespace": "A partition of the cache",
    "x-portkey-request-timeout": "Milliseconds until the answer must start (408 after)",
}
_ANSWER_HEADERS = {
    "x-portkey-trace-id": "The request's trace id",
    "x-portkey-provider": "The provider that answered",
    "x-portkey-cache-status": "HIT, MISS, SEMANTIC HIT, SEMANTIC MISS, REFRESH or DISABLED",
    "x-portkey-last-used-option-index": "config, or the path of the target that answered",
    "x-portkey-retry-attempt-count": "Retries on the last target; -1 when they ran out",
}
_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": ["string", "null"]},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "integer", "null"]},
            },
        },
        "provider": {"type": "string"},
    },
}
_ANY_OBJECT: dict[str, Any] = {"type": "object"}
_EVENT = {
    "description": "One server-sent event: JSON in data (the last is [DONE] for OpenAI's)",
    "type": "object",
    "properties": {"event": {"type": "string"}, "data": {"type": "string"}},
}
_PARAM = re.compile(r"\{([^}:]+)(?::[^}]+)?\}")


def _name(header: str) -> str:
    return "".join(part.capitalize() for part in header.split("-"))


class _Builder:
    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {"Error": _ERROR}
        self.paths: dict[str, dict[str, Any]] = {}

    def schema(self, model: type[BaseModel]) -> dict[str, Any]:
        """A reference to ``model``'s schema, its definitions hoisted into components."""
        name = model.__name__
        if name not in self.schemas:
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for key, definition in schema.pop("$defs", {}).items():
                self.schemas.setdefault(key, definition)
            self.schemas[name] = schema
        return {"$ref": f"#/components/schemas/{name}"}

    def add(self, path: str, method: str, operation: dict[str, Any]) -> None:
        self.paths.setdefault(path, {})[method.lower()] = operation

    def has(self, path: str, method: str) -> bool:
        return method.lower() in self.paths.get(path, {})


def _parameters(path: str, gateway_operation: bool) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PARAM.findall(path)
    ]
    if gateway_operation:
        params += [{"$ref": f"#/components/parameters/{_name(h)}"} for h in _REQUEST_HEADERS]
    return params


def _responses(success: dict[str, Any] | None, description: str = "The answer") -> dict[str, Any]:
    headers = {h: {"$ref": f"#/components/headers/{_name(h)}"} for h in _ANSWER_HEADERS}
    ok: dict[str, Any] = {"description": description, "headers": headers}
    if success is not None:
        ok["content"] = success
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    return {"200": ok, "default": {"description": "An error, in OpenAI's shape", "content": error}}


def _json(schema: dict[str, Any], streams: bool = False) -> dict[str, Any]:
    content: dict[str, Any] = {"application/json": {"schema": schema}}
    if streams:
        content["text/event-stream"] = {"schema": _EVENT}
    return content


def _core(builder: _Builder) -> None:
    for path, op_id, request, answer, streams, summary in (
        (
            "/v1/chat/completions",
            "chat.completions",
            ChatCompletionRequest,
            ChatCompletion,
            True,
            "Create a chat completion (JSON, or SSE with stream: true)",
        ),
        (
            "/v1/completions",
            "completions",
            CompletionRequest,
            Completion,
            True,
            "Create a text completion",
        ),
        (
            "/v1/embeddings",
            "embeddings",
            EmbeddingRequest,
            CreateEmbeddingResponse,
            False,
            "Create embeddings",
        ),
    ):
        builder.add(
            path,
            "POST",
            {
                "operationId": op_id,
                "summary": summary,
                "tags": ["openai"],
                "parameters": _parameters(path, True),
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": builder.schema(request)}},
                },
                "responses": _responses(_json(builder.schema(answer), streams)),
            },
        )
    models = {
        "type": "object",
        "required": ["data"],
        "properties": {"object": {"type": "string"}, "data": {"type": "array"}},
    }
    builder.add(
        "/v1/models",
        "GET",
        {
            "operationId": "models",
            "summary": "The models of the provider the request routes to",
            "tags": ["openai"],
            "parameters": _parameters("/v1/models", True),
            "responses": _responses(_json(models)),
        },
    )
    status = {"type": "object", "properties": {"status": {"type": "string"}}}
    for path, op_id, summary, codes in (
        ("/health", "health", "Alive", ("200",)),
        ("/ready", "ready", "Plugins started and their backends reachable", ("200", "503")),
    ):
        answers = {code: {"description": summary, "content": _json(status)} for code in codes}
        builder.add(
            path,
            "GET",
            {"operationId": op_id, "summary": summary, "tags": ["server"], "responses": answers},
        )
    builder.add(
        "/openapi.json",
        "GET",
        {
            "operationId": "openapi",
            "summary": "This document",
            "tags": ["server"],
            "responses": {"200": {"description": "OpenAPI 3.1", "content": _json(_ANY_OBJECT)}},
        },
    )


def _declared(builder: _Builder, spec: EndpointSpec) -> None:
    operation: dict[str, Any] = {
        "operationId": spec.name,
        "summary": spec.summary or spec.name,
        "tags": [spec.tag or "plugins"],
        "parameters": _parameters(spec.path, True),
    }
    if spec.body == "json":
        schema = builder.schema(spec.request_model) if spec.request_model else _ANY_OBJECT
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schema}},
        }
    elif spec.body == "multipart":
        fields = builder.schema(spec.request_model) if spec.request_model else _ANY_OBJECT
        form: dict[str, Any] = {
            "type": "object",
            "required": list(spec.files),
            "properties": {name: {"type": "string", "format": "binary"} for name in spec.files},
        }
        operation["requestBody"] = {
            "required": True,
            "content": {"multipart/form-data": {"schema": {"allOf": [fields, form]}}},
        }
    if spec.response_media_type == "application/json":
        success = _json(_ANY_OBJECT, spec.streams)
    else:
        success = {spec.response_media_type: {"schema": {"type": "string", "format": "binary"}}}
    operation["responses"] = _responses(success)
    builder.add(spec.path, spec.method, operation)


def _registered(builder: _Builder, routes: Iterable[Any]) -> None:
    for route in routes:
        path = getattr(route, "path", None)
        methods = getattr(route, "methods", None)
        if not path or not methods:
            continue
        endpoint = getattr(route, "endpoint", None)
        doc = (getattr(endpoint, "__doc__", None) or "").strip().splitlines()
        openapi_path = _PARAM.sub(lambda m: "{" + m.group(1) + "}", path)
        for method in sorted(set(methods) - {"HEAD"}):
            if builder.has(openapi_path, method):
                continue
            operation = {
                "operationId": f"{method.lower()} {openapi_path}",
                "summary": doc[0] if doc else f"{method} {openapi_path}",
                "tags": ["plugins"],
                "parameters": _parameters(openapi_path, False),
                "responses": {"default": {"description": "The plugin's answer"}},
            }
            builder.add(openapi_path, method, operation)


def openapi_document(specs: Iterable[EndpointSpec], routes: Iterable[Any]) -> dict[str, Any]:
    """The document for the core's routes, the declared ``specs`` and the other ``routes``."""
    builder = _Builder()
    _core(builder)
    for spec in specs:
        _declared(builder, spec)
    _registered(builder, routes)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "hookgate",
            "version": __version__,
            "description": (
                "An OpenAI-compatible AI gateway. Every /v1 path also answers without its "
                "/v1 prefix. Provider keys go in Authorization (Bearer) or x-api-key; the "
                "gateway's own key, when [server] api_keys is set, in x-portkey-api-key."
            ),
        },
        "paths": builder.paths,
        "components": {
            "schemas": builder.schemas,
            "parameters": {
                _name(h): {
                    "name": h,
                    "in": "header",
                    "required": False,
                    "description": text,
                    "schema": {"type": "string"},
                }
                for h, text in _REQUEST_HEADERS.items()
            },
            "headers": {
                _name(h): {"description": text, "schema": {"type": "string"}}
                for h, text in _ANSWER_HEADERS.items()
            },
            "securitySchemes": {
                "gatewayKey": {"type": "apiKey", "in": "header", "name": "x-portkey-api-key"},
                "providerKey": {"type": "http", "scheme": "bearer"},
            },
        },
        "security": [{}, {"gatewayKey": []}, {"providerKey": []}],
    }

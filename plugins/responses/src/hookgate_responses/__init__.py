"""hookgate-responses: OpenAI's Responses API for every provider.

The plugin declares the endpoints (``POST /v1/responses`` with JSON and SSE answers, and
``GET``/``DELETE /v1/responses/{response_id}``, ``POST .../cancel``, ``GET .../input_items``
for responses an upstream keeps). Providers that have the API (``openai``, ``azure-openai``:
their ``serves`` says so) get the request as it came. For every other provider (Anthropic,
Gemini, the mock, OpenAI-compatible presets) the core bridges ``POST /v1/responses`` through
the provider's chat API with :mod:`hookgate_responses.translate`; what cannot be translated
is a 400 naming the field. Stored responses exist only upstream, so ``GET``/``DELETE`` of a
translated provider's response is the 404 naming the provider.

Requests run through the whole pipeline: retries, fallbacks, both caches, logs and cost
(usage is reported as ``input_tokens``/``output_tokens``, which the logging plugin reads).

::

    [gateway]
    plugins = ["mock", "openai", "anthropic", ..., "responses", "retry", ...]
"""

from __future__ import annotations

from typing import Annotated, Any

from hookgate.endpoints import Bridge, EndpointSpec
from pydantic import BaseModel, ConfigDict, Field

from .translate import chat_request, response_from_chat, stream_from_chat

__all__ = ["ENDPOINTS", "Plugin", "ResponsesRequest"]


class ResponsesRequest(BaseModel):
    """``POST /v1/responses``: what must be there; every other field travels as it came."""

    model_config = ConfigDict(extra="allow", defer_build=True)

    model: Annotated[str, Field(min_length=1)]
    input: str | list[Any] | None = None
    instructions: str | None = None
    stream: bool | None = None
    tools: list[dict[str, Any]] | None = None
    max_output_tokens: Annotated[int, Field(ge=1)] | None = None


_TAG = "responses"

ENDPOINTS = (
    EndpointSpec(
        name="responses",
        path="/v1/responses",
        request_model=ResponsesRequest,
        streams=True,
        cacheable=True,
        bridge=Bridge(
            via="chat.completions",
            request=chat_request,
            response=response_from_chat,
            stream=stream_from_chat,
        ),
        summary="Create a model response (OpenAI's Responses API)",
        tag=_TAG,
    ),
    EndpointSpec(
        name="responses.retrieve",
        path="/v1/responses/{response_id}",
        method="GET",
        body="none",
        summary="Retrieve a stored response (providers that keep them)",
        tag=_TAG,
    ),
    EndpointSpec(
        name="responses.delete",
        path="/v1/responses/{response_id}",
        method="DELETE",
        body="none",
        summary="Delete a stored response",
        tag=_TAG,
    ),
    EndpointSpec(
        name="responses.cancel",
        path="/v1/responses/{response_id}/cancel",
        method="POST",
        body="none",
        summary="Cancel a background response",
        tag=_TAG,
    ),
    EndpointSpec(
        name="responses.input_items",
        path="/v1/responses/{response_id}/input_items",
        method="GET",
        body="none",
        summary="List the input items of a stored response",
        tag=_TAG,
    ),
)


class Plugin:
    """The ``responses`` plugin: declarations only; the core and the providers do the rest."""

    endpoints = ENDPOINTS

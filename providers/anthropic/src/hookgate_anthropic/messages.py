"""Anthropic's own ``POST /v1/messages``, declared by this plugin (see :mod:`hookgate.endpoints`).

The request is validated by :class:`MessagesRequest` (a missing ``max_tokens`` is a 400 in
Anthropic's error shape) and then travels as the client sent it; ``"stream": true`` makes the
answer Anthropic's event stream. Answers are a function of the request, so caches may keep
them. Errors are rendered by :func:`render_error`, the way Anthropic answers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import orjson
from hookgate import GatewayError, ProviderError
from hookgate.endpoints import EndpointSpec
from pydantic import BaseModel, ConfigDict, Field, Strict

from .stream import anthropic_error_body
from .translate import error_type_for_status

if TYPE_CHECKING:
    from starlette.responses import Response as HTTPResponse

__all__ = ["MESSAGES", "MessagesRequest", "render_error"]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", defer_build=True)


class MessageParam(_Open):
    role: Annotated[str, Strict()]
    content: str | list[Any] | None = None


class MessagesRequest(_Open):
    """``POST /v1/messages``: what must be there; every other field travels as it came.

    Types are strict: ``"stream": "false"`` is a 400, not a stream."""

    model: Annotated[str, Strict(), Field(min_length=1)]
    messages: Annotated[list[MessageParam], Field(min_length=1)]
    max_tokens: Annotated[int, Strict(), Field(ge=1)]
    stream: Annotated[bool, Strict()] | None = None


def render_error(error: GatewayError, headers: dict[str, str]) -> HTTPResponse:
    """An error on ``/v1/messages``, the way Anthropic answers: the upstream's own body when
    Anthropic sent one, else ``{"type": "error", "error": {"type", "message"}}``."""
    from starlette.responses import Response as HTTPResponse

    body: Any = None
    extra: dict[str, str] = {}
    if isinstance(error, ProviderError):
        extra = {k: v for k, v in error.headers.items() if k in ("retry-after", "request-id")}
        if isinstance(error.body, dict) and error.body.get("type") == "error":
            body = error.body
    if body is None:
        body = anthropic_error_body(error_type_for_status(error.http_status), error.message)
    return HTTPResponse(
        orjson.dumps(body),
        status_code=error.http_status,
        media_type="application/json",
        headers={**extra, **headers},
    )


MESSAGES = EndpointSpec(
    name="messages",
    path="/v1/messages",
    request_model=MessagesRequest,
    streams=True,
    done_marker=False,
    cacheable=True,
    render_error=render_error,
    operation="chat",
    summary="Create a message (Anthropic's Messages API)",
    tag="anthropic",
)
"""The endpoint, as ``hookgate serve`` mounts it (and ``/messages`` without ``/v1``)."""

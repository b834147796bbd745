"""OpenAI's request and response shapes, as pydantic models that keep unknown fields.

Requests are validated with these models (so a missing ``model`` is a clear 400) but travel
through the pipeline as the client's own dict, untouched: a parameter OpenAI adds tomorrow
reaches the upstream today. Responses are parsed into these models only by the embedded API.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, Strict, ValidationError

from .config import format_validation_error
from .context import Outcome
from .errors import BadRequestError

__all__ = [
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "ChatMessage",
    "Completion",
    "CompletionRequest",
    "CreateEmbeddingResponse",
    "EmbeddingRequest",
    "Usage",
    "validate_request",
]


class OpenAIModel(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="allow")


# ---- requests -------------------------------------------------------------------------


# Types are strict: "stream": "false" is a 400, not a stream (lax pydantic would read any
# non-empty string as true), and 1.0 is not an n.
_Bool = Annotated[bool, Strict()]
_Number = Annotated[float, Strict()]
_Count = Annotated[int, Strict(), Field(ge=1)]

MAX_N = 128
"""Choices one chat request may ask for (OpenAI's own limit)."""
MAX_EMBEDDING_INPUTS = 2048
"""Inputs one embeddings request may carry (OpenAI's own limit)."""
MAX_EMBEDDING_DIMENSIONS = 16384
"""The largest ``dimensions`` accepted (OpenAI's models have at most 3072)."""


class ChatMessage(OpenAIModel):
    role: Annotated[str, Strict()]
    content: str | list[Any] | None = None


class _Sampling(OpenAIModel):
    stream: _Bool | None = None
    temperature: Annotated[_Number, Field(ge=0, le=2)] | None = None
    top_p: Annotated[_Number, Field(ge=0, le=1)] | None = None
    max_tokens: _Count | None = None


class ChatCompletionRequest(_Sampling):
    model: Annotated[str, Strict(), Field(min_length=1)]
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    n: Annotated[_Count, Field(le=MAX_N)] | None = None
    max_completion_tokens: _Count | None = None
    stream_options: dict[str, Any] | None = None


class CompletionRequest(_Sampling):
    model: Annotated[str, Strict(), Field(min_length=1)]
    prompt: str | list[Any]


class EmbeddingRequest(OpenAIModel):
    model: Annotated[str, Strict(), Field(min_length=1)]
    input: str | Annotated[list[Any], Field(min_length=1, max_length=MAX_EMBEDDING_INPUTS)]
    dimensions: Annotated[_Count, Field(le=MAX_EMBEDDING_DIMENSIONS)] | None = None
    encoding_format: Literal["float", "base64"] | None = None


_REQUEST_MODELS: dict[str, type[OpenAIModel]] = {
    "chat.completions": ChatCompletionRequest,
    "completions": CompletionRequest,
    "embeddings": EmbeddingRequest,
}


def _plainly_valid_chat(body: dict[str, Any]) -> bool:
    """A cheap check that a chat request is one ChatCompletionRequest accepts. False only
    means "not sure": pydantic then decides, and words the error."""
    model, messages = body.get("model"), body.get("messages")
    if not (type(model) is str and model and type(messages) is list and messages):
        return False
    for message in messages:
        if not (type(message) is dict and type(message.get("role")) is str):
            return False
        content = message.get("content")
        if not (content is None or type(content) is str or type(content) is list):
            return False
    for name, check in _CHEAP_CHECKS.items():
        value = body.get(name)
        if value is not None and not check(value):
            return False
    return True


def _number_within(low: float, high: float) -> Any:
    return lambda v: (type(v) is float or type(v) is int) and low <= v <= high


_CHEAP_CHECKS = {
    "stream": lambda v: type(v) is bool,
    "n": lambda v: type(v) is int and 1 <= v <= MAX_N,
    "temperature": _number_within(0, 2),
    "top_p": _number_within(0, 1),
    "max_tokens": lambda v: type(v) is int and v >= 1,
    "max_completion_tokens": lambda v: type(v) is int and v >= 1,
    "stream_options": lambda v: type(v) is dict,
}
"""What ChatCompletionRequest checks besides model and messages, as plain type tests."""


def validate_request(endpoint: str, body: Any, model: type[BaseModel] | None = None) -> None:
    """Raise :class:`BadRequestError` naming the first problem of a request body.

    ``model`` validates a plugin's endpoint (its ``EndpointSpec.request_model``)."""
    if not isinstance(body, dict):
        raise BadRequestError(
            f"request body must be a JSON object, not {type(body).__name__}", code="invalid_body"
        )
    if endpoint == "chat.completions" and _plainly_valid_chat(body):
        return
    if endpoint == "embeddings" and body.get("stream") not in (None, False):
        raise BadRequestError(
            "embeddings do not stream: leave out 'stream'", param="stream", code="invalid_request"
        )
    if model is None:
        model = _REQUEST_MODELS.get(endpoint)
    if model is None:
        return
    try:
        model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]["loc"]
        raise BadRequestError(
            f"invalid request: {format_validation_error(exc, '')}",
            param=str(first[0]) if first else None,
            code="invalid_request",
        ) from exc


# ---- responses ------------------------------------------------------------------------


class _WithOutcome(OpenAIModel):
    _outcome: Outcome | None = PrivateAttr(default=None)

    @property
    def hookgate(self) -> Outcome:
        """What the gateway did for this answer: trace id, cache status, attempts, target."""
        if self._outcome is None:
            raise AttributeError("this object did not come from a hookgate Gateway")
        return self._outcome


class Usage(OpenAIModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class FunctionCall(OpenAIModel):
    name: str | None = None
    arguments: str | None = None


class ToolCall(OpenAIModel):
    id: str | None = None
    type: str = "function"
    function: FunctionCall


class ChatCompletionMessage(OpenAIModel):
    role: str = "assistant"
    content: str | None = None
    tool_calls: list[ToolCall] | None = None


class Choice(OpenAIModel):
    index: int = 0
    message: ChatCompletionMessage
    finish_reason: str | None = None


class ChatCompletion(_WithOutcome):
    id: str
    created: int = 0
    model: str
    choices: list[Choice]
    usage: Usage | None = None


class ToolCallDelta(OpenAIModel):
    index: int = 0
    id: str | None = None
    type: str | None = None
    function: FunctionCall | None = None


class ChoiceDelta(OpenAIModel):
    role: str | None = None
    content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class ChunkChoice(OpenAIModel):
    index: int = 0
    delta: ChoiceDelta = Field(default_factory=ChoiceDelta)
    finish_reason: str | None = None


class ChatCompletionChunk(OpenAIModel):
    id: str
    created: int = 0
    model: str
    choices: list[ChunkChoice] = Field(default_factory=list)
    usage: Usage | None = None


class CompletionChoice(OpenAIModel):
    index: int = 0
    text: str
    finish_reason: str | None = None


class Completion(_WithOutcome):
    id: str
    created: int = 0
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


class Embedding(OpenAIModel):
    index: int = 0
    embedding: list[float] | str


class CreateEmbeddingResponse(_WithOutcome):
    data: list[Embedding]
    model: str
    usage: Usage | None = None

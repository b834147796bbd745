"""OpenAI's chat-completions format to Gemini's ``generateContent`` and back.

Written from the public references: OpenAI's chat completions API and Google AI Studio's
``models.generateContent`` / ``streamGenerateContent`` (v1beta). Pure functions, no I/O.

Usage: Gemini counts the model's thinking apart (``thoughtsTokenCount``); OpenAI counts
reasoning inside ``completion_tokens`` and details it in
``completion_tokens_details.reasoning_tokens``. So ``completion_tokens`` is
``candidatesTokenCount + thoughtsTokenCount``, ``prompt_tokens`` is ``promptTokenCount``
(``+ toolUsePromptTokenCount`` when tools ran), and ``total_tokens`` is Gemini's
``totalTokenCount`` unchanged, so billing totals match the upstream's exactly.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import os
import time
from collections.abc import Iterable
from typing import Any

import orjson
from hookgate import BadRequestError, ProviderError

__all__ = [
    "FINISH_REASONS",
    "StreamTranslator",
    "blocked_prompt_error",
    "chat_request",
    "chat_response",
    "embed_request",
    "embed_response",
    "openai_error",
    "usage",
]

PROVIDER = "google"
THOUGHT_SEPARATOR = "__thought__"
"""A tool call id ``<id>__thought__<signature>`` carries Gemini's ``thoughtSignature``."""

FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "MODEL_ARMOR": "content_filter",
}
"""Gemini ``finishReason`` -> OpenAI ``finish_reason``; anything else is ``stop``."""

_ROLES = {"user": "user", "assistant": "model", "tool": "user", "function": "user"}
_TOOL_CHOICE = {"none": "NONE", "auto": "AUTO", "required": "ANY"}
# OpenAI's simple sampling parameters and their Gemini generationConfig names.
_SAMPLING = {
    "temperature": "temperature",
    "top_p": "topP",
    "top_k": "topK",
    "seed": "seed",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
    "n": "candidateCount",
}


def _bad(message: str, param: str | None = None) -> BadRequestError:
    return BadRequestError(message, param=param, code="invalid_request")


# ---- requests -------------------------------------------------------------------------


def _image_part(url: str, where: str) -> dict[str, Any]:
    if url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        mime, _, encoding = header.partition(";")
        if not sep or encoding != "base64" or not mime:
            raise _bad(f"{where}: a data URL must look like data:<mime>;base64,<data>", "messages")
        try:
            base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _bad(f"{where}: the data URL is not valid base64", "messages") from exc
        return {"inlineData": {"mimeType": mime, "data": data}}
    # A URL Gemini fetches itself (a File API URI or a public file).
    mime = mimetypes.guess_type(url.split("?", 1)[0])[0] or "image/jpeg"
    return {"fileData": {"mimeType": mime, "fileUri": url}}


def _parts(content: Any, where: str) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise _bad(f"{where}.content must be a string or a list of parts", "messages")
    parts = []
    for i, part in enumerate(content):
        here = f"{where}.content[{i}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            parts.append({"text": part.get("text", "")})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str):
                raise _bad(f"{here}.image_url.url is missing", "messages")
            parts.append(_image_part(url, here))
        elif kind == "input_audio":
            audio = part.get("input_audio") or {}
            fmt = audio.get("format", "wav")
            parts.append({"inlineData": {"mimeType": f"audio/{fmt}", "data": audio.get("data")}})
        elif kind == "file":
            file = part.get("file") or {}
            data = file.get("file_data")
            if not isinstance(data, str):
                raise _bad(f"{here}.file.file_data must be a data URL", "messages")
            parts.append(_image_part(data, here))
        else:
            raise _bad(f"{here}: the google provider does not support part type {kind!r}")
    return parts


def _function_call(call: Any, where: str) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not function.get("name"):
        raise _bad(f"{where}.function.name is missing", "messages")
    raw = function.get("arguments") or "{}"
    try:
        args = orjson.loads(raw) if isinstance(raw, str) else raw
    except orjson.JSONDecodeError as exc:
        raise _bad(f"{where}.function.arguments is not valid JSON", "messages") from exc
    part: dict[str, Any] = {"functionCall": {"name": function["name"], "args": args}}
    call_id, signature = _split_id(call.get("id"))
    if call_id:
        part["functionCall"]["id"] = call_id
    if signature:
        part["thoughtSignature"] = signature
    return part


def _split_id(call_id: Any) -> tuple[str | None, str | None]:
    if not isinstance(call_id, str) or not call_id:
        return None, None
    base, sep, signature = call_id.partition(THOUGHT_SEPARATOR)
    return base, (signature or None) if sep else None


def _tool_result(message: dict[str, Any], names: dict[str, str], where: str) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    name = message.get("name") or names.get(call_id or "")
    if not name:
        raise _bad(
            f"{where}: tool_call_id {call_id!r} matches no earlier assistant tool call", "messages"
        )
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    try:
        result = orjson.loads(content) if isinstance(content, str) else content
    except orjson.JSONDecodeError:
        result = content
    if not isinstance(result, dict):
        result = {"result": result}  # Gemini wants an object: wrap plain text
    response: dict[str, Any] = {"name": name, "response": result}
    base_id, _ = _split_id(call_id)
    if base_id:
        response["id"] = base_id
    return {"functionResponse": response}


def _contents(messages: list[Any]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_parts(message.get("content"), where))
            continue
        if role not in _ROLES:
            raise _bad(f"{where}.role {role!r} is not one the google provider knows", "messages")
        if role in ("tool", "function"):
            parts = [_tool_result(message, names, where)]
        else:
            parts = _parts(message.get("content"), where)
            for j, call in enumerate(message.get("tool_calls") or ()):
                part = _function_call(call, f"{where}.tool_calls[{j}]")
                if call.get("id"):
                    names[call["id"]] = part["functionCall"]["name"]
                parts.append(part)
        if not parts:
            continue
        gemini_role = _ROLES[role]
        # Gemini wants turns to alternate: consecutive messages of one role are one turn
        # (several tool results answering one assistant turn, above all).
        if contents and contents[-1]["role"] == gemini_role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": gemini_role, "parts": parts})
    return contents, ({"parts": system} if system else None)


def _generation_config(body: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for name, gemini in _SAMPLING.items():
        if body.get(name) is not None:
            config[gemini] = body[name]
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens is not None:
        config["maxOutputTokens"] = max_tokens
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("logprobs"):
        config["responseLogprobs"] = True
        if body.get("top_logprobs") is not None:
            config["logprobs"] = body["top_logprobs"]
    fmt = body.get("response_format")
    if isinstance(fmt, dict):
        kind = fmt.get("type")
        if kind == "json_object":
            config["responseMimeType"] = "application/json"
        elif kind == "json_schema":
            config["responseMimeType"] = "application/json"
            schema = (fmt.get("json_schema") or {}).get("schema")
            if schema is not None:
                # responseJsonSchema takes JSON Schema as OpenAI clients write it
                # (additionalProperties, $defs, ...); responseSchema is a narrower OpenAPI subset.
                config["responseJsonSchema"] = schema
        elif kind not in (None, "text"):
            raise _bad(f"response_format.type {kind!r} is not supported", "response_format")
    return config


def _tools(body: dict[str, Any]) -> list[dict[str, Any]] | None:
    tools = body.get("tools")
    if not tools:
        return None
    declarations = []
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if tool.get("type") != "function" or not isinstance(function, dict):
            raise _bad(f"tools[{i}]: only function tools are supported", "tools")
        declaration: dict[str, Any] = {"name": function.get("name")}
        if function.get("description"):
            declaration["description"] = function["description"]
        if function.get("parameters"):
            declaration["parametersJsonSchema"] = function["parameters"]
        declarations.append(declaration)
    return [{"functionDeclarations": declarations}]


def _tool_config(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if isinstance(choice, str):
        mode = _TOOL_CHOICE.get(choice)
        if mode is None:
            raise _bad(f"tool_choice {choice!r} is not none, auto or required", "tool_choice")
        return {"functionCallingConfig": {"mode": mode}}
    name = (choice.get("function") or {}).get("name") if isinstance(choice, dict) else None
    if not name:
        raise _bad("tool_choice must name a function: {type: function, function: {name}}")
    return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}


def chat_request(body: dict[str, Any]) -> dict[str, Any]:
    """A ``generateContent`` request body from an OpenAI chat-completions body."""
    contents, system = _contents(body.get("messages") or [])
    if not contents:
        raise _bad("messages need at least one user or assistant message", "messages")
    request: dict[str, Any] = {"contents": contents}
    if system:
        request["systemInstruction"] = system
    if config := _generation_config(body):
        request["generationConfig"] = config
    if tools := _tools(body):
        request["tools"] = tools
    if tool_config := _tool_config(body.get("tool_choice")):
        request["toolConfig"] = tool_config
    return request


def embed_request(body: dict[str, Any], model: str) -> dict[str, Any]:
    """A ``batchEmbedContents`` request from an OpenAI embeddings body."""
    inputs = body.get("input")
    texts = [inputs] if isinstance(inputs, str) else inputs
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise _bad("input must be a string or a list of strings for the google provider", "input")
    requests = []
    for text in texts:
        item: dict[str, Any] = {"model": f"models/{model}", "content": {"parts": [{"text": text}]}}
        if body.get("dimensions") is not None:
            item["outputDimensionality"] = body["dimensions"]
        requests.append(item)
    return {"requests": requests}


# ---- responses ------------------------------------------------------------------------


def usage(metadata: dict[str, Any] | None) -> dict[str, Any]:
    """OpenAI's ``usage`` from Gemini's ``usageMetadata`` (see the module docstring)."""
    metadata = metadata or {}
    prompt = metadata.get("promptTokenCount", 0) + metadata.get("toolUsePromptTokenCount", 0)
    thoughts = metadata.get("thoughtsTokenCount", 0)
    completion = metadata.get("candidatesTokenCount", 0) + thoughts
    result: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": metadata.get("totalTokenCount", prompt + completion),
    }
    if "cachedContentTokenCount" in metadata:
        result["prompt_tokens_details"] = {"cached_tokens": metadata["cachedContentTokenCount"]}
    if thoughts:
        result["completion_tokens_details"] = {"reasoning_tokens": thoughts}
    return result


def _tool_call(call: dict[str, Any], signature: str | None = None) -> dict[str, Any]:
    call_id = call.get("id") or f"call_{os.urandom(12).hex()}"
    if signature:
        # Thinking models want their signature back with the call on the next turn; the
        # client keeps only the id, so the signature rides in it.
        call_id = f"{call_id}{THOUGHT_SEPARATOR}{signature}"
    return {
        "id": call_id,
        "type": "function",
        "function": {
            "name": call.get("name", ""),
            "arguments": orjson.dumps(call.get("args") or {}).decode(),
        },
    }


def _finish(reason: str | None, has_tool_calls: bool) -> str | None:
    if reason is None:
        return None
    if has_tool_calls and reason == "STOP":
        return "tool_calls"
    return FINISH_REASONS.get(reason, "stop")


def blocked_prompt_error(data: dict[str, Any]) -> ProviderError | None:
    """The error for a prompt Gemini refused (``promptFeedback.blockReason``), else None."""
    feedback = data.get("promptFeedback") or {}
    reason = feedback.get("blockReason")
    if not reason or data.get("candidates"):
        return None
    flagged = [
        f"{r.get('category')} ({r.get('probability')})"
        for r in feedback.get("safetyRatings") or ()
        if r.get("blocked") or r.get("probability") in ("MEDIUM", "HIGH")
    ]
    message = f"the prompt was blocked by Gemini's safety filters (blockReason {reason}"
    message += f": {', '.join(flagged)})" if flagged else ")"
    if feedback.get("blockReasonMessage"):
        message += f": {feedback['blockReasonMessage']}"
    return ProviderError(
        message,
        provider=PROVIDER,
        status=400,
        code="content_filter",
        body={
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": "messages",
                "code": "content_filter",
            }
        },
    )


def _message(candidate: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    texts = []
    calls = []
    for part in (candidate.get("content") or {}).get("parts") or ():
        if part.get("thought"):
            continue  # thinking summaries are not part of the answer
        if "text" in part:
            texts.append(part["text"])
        elif "functionCall" in part:
            calls.append(_tool_call(part["functionCall"], part.get("thoughtSignature")))
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts or not calls else None,
        "refusal": None,
    }
    if calls:
        message["tool_calls"] = calls
    return message, bool(calls)


def chat_response(data: dict[str, Any], model: str) -> dict[str, Any]:
    """An OpenAI chat completion from a ``generateContent`` answer; raises for a blocked prompt."""
    if error := blocked_prompt_error(data):
        raise error
    choices = []
    for position, candidate in enumerate(data.get("candidates") or ()):
        message, has_calls = _message(candidate)
        choices.append(
            {
                "index": candidate.get("index", position),
                "message": message,
                "logprobs": None,
                "finish_reason": _finish(candidate.get("finishReason"), has_calls) or "stop",
            }
        )
    return {
        "id": f"chatcmpl-{data.get('responseId') or os.urandom(12).hex()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": data.get("modelVersion") or model,
        "choices": choices,
        "usage": usage(data.get("usageMetadata")),
    }


def embed_response(data: dict[str, Any], model: str) -> dict[str, Any]:
    """OpenAI's embeddings list from a ``batchEmbedContents`` answer."""
    embeddings = data.get("embeddings") or []
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": e.get("values", [])}
            for i, e in enumerate(embeddings)
        ],
        "model": model,
        # batchEmbedContents reports no token counts.
        "usage": {"prompt_tokens": 0, "total_tokens": 0},
    }


class StreamTranslator:
    """Turns ``streamGenerateContent`` events into OpenAI ``chat.completion.chunk`` objects.

    Each Gemini event is a whole ``GenerateContentResponse`` holding the next piece of each
    candidate, and the usage so far. OpenAI's sequence per choice: a first delta with the
    role, text deltas, tool-call deltas (each call whole, with its index), a last chunk with
    ``finish_reason``; then, when asked (``stream_options.include_usage``), one chunk with
    empty ``choices`` and the final usage.
    """

    def __init__(self, model: str, include_usage: bool) -> None:
        self.model = model
        self.include_usage = include_usage
        self.id = f"chatcmpl-{os.urandom(12).hex()}"
        self.created = int(time.time())
        self._started: set[int] = set()
        self._tool_calls: dict[int, int] = {}
        self._usage: dict[str, Any] | None = None
        self._first = True

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
            **extra,
        }

    def feed(self, data: dict[str, Any]) -> Iterable[dict[str, Any]]:
        """The OpenAI chunks for one Gemini event; raises for a blocked prompt or an error."""
        if isinstance(data.get("error"), dict):
            # An error inside a stream that had started fine (the status was 200).
            upstream = data["error"]
            status = upstream.get("code") if isinstance(upstream.get("code"), int) else 500
            raise openai_error(
                ProviderError(
                    str(upstream.get("message") or "the upstream failed mid-stream"),
                    provider=PROVIDER,
                    status=status,
                    body=data,
                )
            )
        if self._first:
            self._first = False
            if error := blocked_prompt_error(data):
                raise error
            if data.get("responseId"):
                self.id = f"chatcmpl-{data['responseId']}"
            self.model = data.get("modelVersion") or self.model
        elif error := blocked_prompt_error(data):
            raise error
        if data.get("usageMetadata"):
            self._usage = data["usageMetadata"]
        for position, candidate in enumerate(data.get("candidates") or ()):
            index = candidate.get("index", position)
            if index not in self._started:
                self._started.add(index)
                yield self._chunk([_choice(index, {"role": "assistant", "content": ""})])
            for part in (candidate.get("content") or {}).get("parts") or ():
                if part.get("thought"):
                    continue
                if part.get("text"):
                    yield self._chunk([_choice(index, {"content": part["text"]})])
                elif "functionCall" in part:
                    call = _tool_call(part["functionCall"], part.get("thoughtSignature"))
                    number = self._tool_calls.get(index, 0)
                    self._tool_calls[index] = number + 1
                    yield self._chunk([_choice(index, {"tool_calls": [{"index": number, **call}]})])
            reason = candidate.get("finishReason")
            if reason:
                finish = _finish(reason, index in self._tool_calls)
                yield self._chunk([_choice(index, {}, finish)])

    def close(self) -> Iterable[dict[str, Any]]:
        if self.include_usage:
            yield self._chunk([], usage=usage(self._usage))


def _choice(index: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}


# ---- errors ---------------------------------------------------------------------------

_ERROR_TYPES = {
    "INVALID_ARGUMENT": "invalid_request_error",
    "FAILED_PRECONDITION": "invalid_request_error",
    "OUT_OF_RANGE": "invalid_request_error",
    "NOT_FOUND": "invalid_request_error",
    "UNAUTHENTICATED": "authentication_error",
    "PERMISSION_DENIED": "permission_error",
    "RESOURCE_EXHAUSTED": "rate_limit_error",
    "DEADLINE_EXCEEDED": "timeout_error",
}


def _seconds(duration: Any) -> float | None:
    # google.protobuf.Duration in JSON: "30s", "1.5s".
    if isinstance(duration, str) and duration.endswith("s"):
        try:
            return max(0.0, float(duration[:-1]))
        except ValueError:
            return None
    return None


def openai_error(error: ProviderError) -> ProviderError:
    """A Gemini error answer rewritten in OpenAI's shape, keeping status and retry delay.

    Gemini: ``{"error": {"code": 429, "message", "status": "RESOURCE_EXHAUSTED", "details"}}``;
    a ``google.rpc.RetryInfo`` detail's ``retryDelay`` is the delay when no header gave one.
    """
    upstream = error.body.get("error") if isinstance(error.body, dict) else None
    if not isinstance(upstream, dict) or "type" in upstream:
        return error  # not Gemini's shape, or already OpenAI's (a blocked prompt)
    status = upstream.get("status")
    retry_after = error.retry_after
    for detail in upstream.get("details") or ():
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("RetryInfo"):
            retry_after = (
                retry_after if retry_after is not None else _seconds(detail.get("retryDelay"))
            )
    message = upstream.get("message") or error.message
    kind = _ERROR_TYPES.get(status or "", "api_error")
    return ProviderError(
        message,
        provider=PROVIDER,
        status=error.upstream_status,
        body={
            "error": {
                "message": message,
                "type": kind,
                "param": None,
                "code": status.lower() if isinstance(status, str) else None,
            }
        },
        headers=error.headers,
        retry_after=retry_after,
        code=status.lower() if isinstance(status, str) else None,
    )

"""OpenAI chat completions <-> Anthropic Messages, for JSON answers and errors.

Requests: system and developer messages become ``system``; user, assistant and tool turns
become alternating ``user``/``assistant`` messages of content blocks (consecutive turns of one
role merged, a ``tool`` message a ``tool_result`` block in a user turn); images, tools,
``tool_choice``, stop sequences, sampling parameters and a ``json_schema`` response format
(``output_config.format``) are renamed field by field. OpenAI-only parameters Anthropic would
reject (``frequency_penalty``, ``logprobs``, ``seed``, ...) are not sent.

Usage: Anthropic's ``input_tokens`` counts only the tokens after the last cache breakpoint;
OpenAI's ``prompt_tokens`` counts the whole prompt. So ``prompt_tokens`` is
``input_tokens + cache_creation_input_tokens + cache_read_input_tokens``,
``prompt_tokens_details.cached_tokens`` is ``cache_read_input_tokens``, and Anthropic's own two
cache counters ride along unchanged for cost accounting.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from hookgate import BadRequestError

__all__ = [
    "FINISH_REASONS",
    "STATUS_OF_ERROR_TYPE",
    "chat_completion",
    "error_type_for_status",
    "finish_reason",
    "openai_error_body",
    "openai_usage",
    "to_messages_request",
]

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# Anthropic's error types and the statuses its API answers them with.
STATUS_OF_ERROR_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
_TYPE_OF_STATUS = {status: kind for kind, status in STATUS_OF_ERROR_TYPE.items()}

# Fields Anthropic has under the same name and meaning (top_k and thinking are Anthropic's
# own, for a config's override_params).
_PASSED_AS_IS = ("temperature", "top_p", "top_k", "thinking")


def finish_reason(stop_reason: str | None) -> str | None:
    if stop_reason is None:
        return None
    return FINISH_REASONS.get(stop_reason, "stop")


def error_type_for_status(status: int) -> str:
    """Anthropic's error type for an HTTP status (``api_error`` for anything unknown)."""
    if status in _TYPE_OF_STATUS:
        return _TYPE_OF_STATUS[status]
    if status == 408:
        return "timeout_error"
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


def openai_error_body(body: Any, status: int) -> dict[str, Any]:
    """Anthropic's ``{"type": "error", "error": {...}}`` as OpenAI's ``{"error": {...}}``."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        kind = error.get("type") if isinstance(error.get("type"), str) else None
        message = error.get("message") if isinstance(error.get("message"), str) else None
    else:
        kind = None
        message = body if isinstance(body, str) and body else None
    kind = kind or error_type_for_status(status)
    return {
        "error": {
            "message": message or f"upstream answered {status}",
            "type": kind,
            "param": None,
            "code": kind,
        }
    }


# ---- requests ---------------------------------------------------------------------------


def _bad(message: str, param: str) -> BadRequestError:
    return BadRequestError(
        f"this request cannot be sent to Anthropic: {message}", param=param, code="invalid_request"
    )


def _text_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    """System/developer content (a string or text parts) as text blocks."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise _bad("message content must be a string or a list of parts", where)
    blocks = []
    for part in content:
        if not isinstance(part, dict) or part.get("type") != "text":
            raise _bad("system messages may only hold text parts", where)
        blocks.append(_text_block(part))
    return blocks


def _text_block(part: dict[str, Any]) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "text", "text": part.get("text") or ""}
    if part.get("cache_control") is not None:
        block["cache_control"] = part["cache_control"]
    return block


def _image_block(part: dict[str, Any], where: str) -> dict[str, Any]:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise _bad("an image_url part needs a url", where)
    if url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if not sep or encoding != "base64" or not media_type:
            raise _bad("an image data URL must look like data:image/png;base64,<data>", where)
        source: dict[str, Any] = {"type": "base64", "media_type": media_type, "data": data}
    elif url.startswith(("http://", "https://")):
        source = {"type": "url", "url": url}
    else:
        raise _bad("an image url must be an http(s) URL or a base64 data URL", where)
    block: dict[str, Any] = {"type": "image", "source": source}
    if part.get("cache_control") is not None:
        block["cache_control"] = part["cache_control"]
    return block


def _file_block(part: dict[str, Any], where: str) -> dict[str, Any]:
    file = part.get("file")
    if not isinstance(file, dict):
        file = {}
    data = file.get("file_data")
    if not isinstance(data, str) or not data.startswith("data:application/pdf;base64,"):
        raise _bad("a file part must carry a PDF as file_data (a base64 data URL)", where)
    return {
        "type": "document",
        "source": {
            "type": "base64",
            "media_type": "application/pdf",
            "data": data.split(",", 1)[1],
        },
    }


def _content_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    """User or assistant content as Anthropic content blocks (empty text dropped)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise _bad("message content must be a string or a list of parts", where)
    blocks: list[dict[str, Any]] = []
    for i, part in enumerate(content):
        at = f"{where}.content[{i}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if part.get("text"):
                blocks.append(_text_block(part))
        elif kind == "refusal":
            if part.get("refusal"):
                blocks.append({"type": "text", "text": part["refusal"]})
        elif kind == "image_url":
            blocks.append(_image_block(part, at))
        elif kind == "file":
            blocks.append(_file_block(part, at))
        else:
            raise _bad(f"content parts of type {kind!r} are not supported", at)
    return blocks


def _tool_use_blocks(tool_calls: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(tool_calls, list):
        raise _bad("tool_calls must be a list", where)
    blocks = []
    for i, call in enumerate(tool_calls):
        at = f"{where}.tool_calls[{i}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not function.get("name") or not call.get("id"):
            raise _bad("a tool call needs an id and a function name", at)
        arguments = function.get("arguments") or "{}"
        try:
            arguments_json = orjson.loads(arguments)
        except orjson.JSONDecodeError as exc:
            raise _bad("a tool call's arguments must be a JSON object", at) from exc
        if not isinstance(arguments_json, dict):
            raise _bad("a tool call's arguments must be a JSON object", at)
        blocks.append(
            {
                "type": "tool_use",
                "id": call["id"],
                "name": function["name"],
                "input": arguments_json,
            }
        )
    return blocks


def _tool_result_block(message: dict[str, Any], where: str) -> dict[str, Any]:
    tool_call_id = message.get("tool_call_id")
    if not isinstance(tool_call_id, str) or not tool_call_id:
        raise _bad("a tool message needs its tool_call_id", where)
    content = message.get("content")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_call_id}
    if isinstance(content, str):
        block["content"] = content
    elif content is not None:
        block["content"] = _content_blocks(content, where)
    return block


def _collapse(blocks: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """A lone plain text block is sent as a string, as people write it."""
    if len(blocks) == 1 and blocks[0]["type"] == "text" and len(blocks[0]) == 2:
        return blocks[0]["text"]
    return blocks


def _messages(body: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    turns: list[tuple[str, list[dict[str, Any]]]] = []
    for i, message in enumerate(body.get("messages") or []):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise _bad("each message must be an object", where)
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_text_blocks(message.get("content"), where))
            continue
        if role == "user":
            kind, blocks = "user", _content_blocks(message.get("content"), where)
        elif role == "assistant":
            kind, blocks = "assistant", _content_blocks(message.get("content"), where)
            if message.get("tool_calls"):
                blocks.extend(_tool_use_blocks(message["tool_calls"], where))
        elif role == "tool":
            kind, blocks = "user", [_tool_result_block(message, where)]
        else:
            raise _bad(f"messages with role {role!r} are not supported", where)
        if not blocks:
            continue
        if turns and turns[-1][0] == kind:
            turns[-1][1].extend(blocks)  # Anthropic wants user and assistant to alternate
        else:
            turns.append((kind, blocks))
    messages = [{"role": role, "content": _collapse(blocks)} for role, blocks in turns]
    return system, messages


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise _bad("tools must be a list", "tools")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise _bad("each tool must be an object", f"tools[{i}]")
        if tool.get("type", "function") != "function":
            out.append(tool)  # an Anthropic tool (web_search, ...) given in its own shape
            continue
        function = tool.get("function")
        if not isinstance(function, dict) or not function.get("name"):
            raise _bad("a function tool needs function.name", f"tools[{i}]")
        converted: dict[str, Any] = {
            "name": function["name"],
            "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
        }
        if function.get("description"):
            converted["description"] = function["description"]
        if tool.get("cache_control") is not None:
            converted["cache_control"] = tool["cache_control"]
        out.append(converted)
    return out


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    if choice is None:
        converted: dict[str, Any] | None = None
    elif choice == "auto":
        converted = {"type": "auto"}
    elif choice == "none":
        return {"type": "none"}
    elif choice == "required":
        converted = {"type": "any"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        name = choice["function"].get("name")
        if not name:
            raise _bad("tool_choice.function needs a name", "tool_choice")
        converted = {"type": "tool", "name": name}
    else:
        raise _bad(
            "tool_choice must be 'auto', 'none', 'required' or {'type': 'function', ...}",
            "tool_choice",
        )
    if parallel is False:
        converted = converted or {"type": "auto"}
        converted["disable_parallel_tool_use"] = True
    return converted


def _output_format(response_format: Any) -> dict[str, Any] | None:
    """OpenAI's ``json_schema`` response format as Anthropic's structured output format."""
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        return None  # "text" is the default; "json_object" has no Anthropic counterpart
    spec = response_format.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    if not isinstance(schema, dict):
        raise _bad("response_format.json_schema needs a schema", "response_format")
    return {"type": "json_schema", "schema": schema}


def to_messages_request(body: dict[str, Any], default_max_tokens: int) -> dict[str, Any]:
    """An OpenAI chat-completions request as an Anthropic Messages request."""
    n = body.get("n")
    if n is not None and n != 1:
        raise _bad("n must be 1: Anthropic answers with one choice", "n")
    system, messages = _messages(body)
    request: dict[str, Any] = {"model": body.get("model"), "messages": messages}
    if system:
        if all(len(block) == 2 for block in system):
            request["system"] = "\n\n".join(block["text"] for block in system)
        else:  # a cache_control marker needs the blocks
            request["system"] = system
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    request["max_tokens"] = max_tokens or default_max_tokens
    stop = body.get("stop")
    if isinstance(stop, str):
        request["stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop:
        request["stop_sequences"] = stop
    for name in _PASSED_AS_IS:
        if body.get(name) is not None:
            request[name] = body[name]
    if body.get("tools"):
        request["tools"] = _tools(body["tools"])
    choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
    if choice is not None and (request.get("tools") or choice["type"] == "none"):
        request["tool_choice"] = choice
    output_format = _output_format(body.get("response_format"))
    if output_format is not None:
        request["output_config"] = {"format": output_format}
    if isinstance(body.get("user"), str) and body["user"]:
        request["metadata"] = {"user_id": body["user"]}
    if body.get("stream"):
        request["stream"] = True
    return request


# ---- responses --------------------------------------------------------------------------


def openai_usage(usage: dict[str, Any]) -> dict[str, Any]:
    """Anthropic's usage as OpenAI's (see the module docstring for the cache counters)."""
    input_tokens = usage.get("input_tokens") or 0
    created = usage.get("cache_creation_input_tokens") or 0
    read = usage.get("cache_read_input_tokens") or 0
    output = usage.get("output_tokens") or 0
    prompt = input_tokens + created + read
    return {
        "prompt_tokens": prompt,
        "completion_tokens": output,
        "total_tokens": prompt + output,
        "prompt_tokens_details": {"cached_tokens": read},
        "cache_creation_input_tokens": created,
        "cache_read_input_tokens": read,
    }


def chat_completion(message: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic Message as an OpenAI chat completion."""
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for block in message.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "tool_use":
            tool_calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {
                        "name": block.get("name"),
                        "arguments": orjson.dumps(block.get("input") or {}).decode(),
                    },
                }
            )
    answer: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts or not tool_calls else None,
    }
    if tool_calls:
        answer["tool_calls"] = tool_calls
    return {
        "id": message.get("id"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": message.get("model"),
        "choices": [
            {
                "index": 0,
                "message": answer,
                "logprobs": None,
                "finish_reason": finish_reason(message.get("stop_reason")) or "stop",
            }
        ],
        "usage": openai_usage(message.get("usage") or {}),
    }

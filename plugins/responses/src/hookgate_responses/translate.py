"""The Responses API through a provider's chat API: requests one way, answers the other.

What maps (request → chat completions):

- ``instructions`` → a leading system message; ``input`` as text → one user message;
  ``input`` items: messages (``system``/``developer``/``user``/``assistant``, text and
  ``input_image`` parts, earlier ``output_text``/``refusal`` parts), ``function_call`` items
  → an assistant message's ``tool_calls``, ``function_call_output`` → ``tool`` messages;
  earlier ``reasoning`` items are dropped (a chat API cannot take them back);
- ``tools`` of type ``function`` → chat tools; ``tool_choice`` and ``parallel_tool_calls``;
- ``text.format`` ``json_schema``/``json_object`` → ``response_format``; ``text.verbosity``;
- ``reasoning.effort`` → ``reasoning_effort``; ``max_output_tokens`` → ``max_tokens``;
  ``temperature``, ``top_p``, ``top_logprobs``, ``user``, ``service_tier``, ``stream``.

What is refused with a 400 naming the field: state kept upstream (``previous_response_id``,
``conversation``, ``item_reference`` items, ``background``, stored ``prompt`` templates),
hosted tools (web search, file search, computer use, MCP, code interpreter, ...), file
inputs, image inputs by ``file_id``, ``reasoning.summary`` and any field this module does
not know. ``store``, ``include``, ``truncation`` and ``metadata`` are accepted: nothing is
stored, and the answer echoes what it can.

Answers (chat → Responses): the message as a ``message`` item with ``output_text`` (or
``refusal``), tool calls as ``function_call`` items, a ``reasoning_content`` (DeepSeek's
field) as a ``reasoning`` item, usage as ``input_tokens``/``output_tokens`` with cached and
reasoning details, ``finish_reason: length`` as ``status: incomplete``. Streams become the
typed events the openai SDK's ``responses.stream()`` assembles.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from hookgate import BadRequestError, SSEEvent

__all__ = ["StreamTranslator", "chat_request", "response_from_chat", "stream_from_chat"]

_ROLES = ("system", "developer", "user", "assistant")
_PASSED = ("temperature", "top_p", "user", "service_tier", "parallel_tool_calls")
_ACCEPTED = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "text",
        "reasoning",
        "max_output_tokens",
        "stream",
        "stream_options",
        "store",
        "include",
        "truncation",
        "metadata",
        "top_logprobs",
        "safety_identifier",
        "prompt_cache_key",
        *_PASSED,
    }
)
_STATEFUL = {
    "previous_response_id": "previous_response_id needs the upstream's stored responses",
    "conversation": "conversation needs the upstream's stored conversations",
    "background": "background responses need the upstream to keep them",
    "prompt": "prompt templates are stored by OpenAI",
}


def _refuse(param: str, why: str) -> BadRequestError:
    return BadRequestError(
        f"'{param}' cannot be translated to a chat completions request: {why}",
        param=param,
        code="unsupported_parameter",
    )


# ---- requests ---------------------------------------------------------------------------


def chat_request(body: dict[str, Any]) -> dict[str, Any]:
    """A Responses API request as a chat completions request; raise the 400 for a field that
    has no chat equivalent."""
    for name, why in _STATEFUL.items():
        value = body.get(name)
        if value is not None and value is not False:
            raise _refuse(name, why)
    for name in body:
        if name not in _ACCEPTED:
            raise _refuse(name, "the chat API has no such field")
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if instructions:
        if not isinstance(instructions, str):
            raise _refuse("instructions", "must be a string")
        messages.append({"role": "system", "content": instructions})
    messages.extend(_messages(body.get("input")))
    if not messages:
        raise BadRequestError("'input' is empty: send some text or items", param="input")
    chat: dict[str, Any] = {"model": body.get("model"), "messages": messages}
    for name in _PASSED:
        if body.get(name) is not None:
            chat[name] = body[name]
    if body.get("safety_identifier") and "user" not in chat:
        chat["user"] = body["safety_identifier"]
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    if body.get("top_logprobs") is not None:
        chat["logprobs"] = True
        chat["top_logprobs"] = body["top_logprobs"]
    tools = body.get("tools")
    if tools:
        chat["tools"] = _tools(tools)
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(body["tool_choice"])
    _text(body.get("text"), chat)
    _reasoning(body.get("reasoning"), chat)
    if body.get("stream"):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


def _messages(items: Any) -> list[dict[str, Any]]:
    if items is None:
        return []
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    if not isinstance(items, list):
        raise _refuse("input", "must be a string or a list of items")
    messages: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise _refuse(where, "each item must be an object")
        kind = item.get("type", "message")
        if kind == "message":
            messages.append(_message(item, where))
        elif kind == "function_call":
            call = {
                "id": item.get("call_id") or item.get("id"),
                "type": "function",
                "function": {"name": item.get("name"), "arguments": item.get("arguments") or ""},
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            if isinstance(output, list):
                output = "".join(
                    part.get("text", "")
                    for part in output
                    if isinstance(part, dict) and part.get("type") in ("input_text", "output_text")
                )
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": item.get("call_id"),
                    "content": output if isinstance(output, str) else orjson.dumps(output).decode(),
                }
            )
        elif kind == "reasoning":
            continue  # an earlier answer's reasoning: chat APIs take none back
        elif kind == "item_reference":
            raise _refuse(f"{where}.type", "item references need the upstream's stored items")
        else:
            raise _refuse(f"{where}.type", f"{kind!r} items have no chat equivalent")
    return messages


def _message(item: dict[str, Any], where: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in _ROLES:
        raise _refuse(f"{where}.role", f"must be one of {', '.join(_ROLES)}")
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise _refuse(f"{where}.content", "must be a string or a list of parts")
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        at = f"{where}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": part.get("text") or ""})
        elif kind == "refusal":
            parts.append({"type": "text", "text": part.get("refusal") or ""})
        elif kind == "input_image":
            url = part.get("image_url")
            if not url:
                raise _refuse(f"{at}.file_id", "images by file id are stored by OpenAI")
            image: dict[str, Any] = {"url": url}
            if part.get("detail"):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        else:
            raise _refuse(f"{at}.type", f"{kind!r} content has no chat equivalent")
    if role in ("assistant", "system", "developer") or all(p["type"] == "text" for p in parts):
        # Roles whose chat content is text only, and plain text for every provider.
        if any(p["type"] != "text" for p in parts):
            raise _refuse(f"{where}.content", f"{role} messages take text only")
        return {"role": role, "content": "".join(p["text"] for p in parts)}
    return {"role": role, "content": parts}


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise _refuse("tools", "must be a list")
    chat = []
    for i, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind != "function":
            raise _refuse(f"tools[{i}].type", f"{kind!r} tools are OpenAI's hosted tools")
        function: dict[str, Any] = {"name": tool.get("name")}
        for name in ("description", "parameters", "strict"):
            if tool.get(name) is not None:
                function[name] = tool[name]
        chat.append({"type": "function", "function": function})
    return chat


def _tool_choice(choice: Any) -> Any:
    if isinstance(choice, str):
        if choice in ("auto", "none", "required"):
            return choice
        raise _refuse("tool_choice", f"{choice!r} is not auto, none or required")
    if isinstance(choice, dict) and choice.get("type") == "function" and choice.get("name"):
        return {"type": "function", "function": {"name": choice["name"]}}
    kind = choice.get("type") if isinstance(choice, dict) else type(choice).__name__
    raise _refuse("tool_choice", f"{kind!r} choices name OpenAI's hosted tools")


def _text(text: Any, chat: dict[str, Any]) -> None:
    if text is None:
        return
    if not isinstance(text, dict):
        raise _refuse("text", "must be an object")
    fmt = text.get("format")
    if isinstance(fmt, dict):
        kind = fmt.get("type")
        if kind == "json_schema":
            schema: dict[str, Any] = {"name": fmt.get("name") or "response"}
            for name in ("schema", "strict", "description"):
                if fmt.get(name) is not None:
                    schema[name] = fmt[name]
            chat["response_format"] = {"type": "json_schema", "json_schema": schema}
        elif kind == "json_object":
            chat["response_format"] = {"type": "json_object"}
        elif kind != "text":
            raise _refuse("text.format.type", f"{kind!r} is not text, json_object or json_schema")
    elif fmt is not None:
        raise _refuse("text.format", "must be an object")
    if text.get("verbosity") is not None:
        chat["verbosity"] = text["verbosity"]


def _reasoning(reasoning: Any, chat: dict[str, Any]) -> None:
    if reasoning is None:
        return
    if not isinstance(reasoning, dict):
        raise _refuse("reasoning", "must be an object")
    if reasoning.get("effort") is not None:
        chat["reasoning_effort"] = reasoning["effort"]
    for name in ("summary", "generate_summary"):
        if reasoning.get(name) is not None:
            raise _refuse(f"reasoning.{name}", "chat APIs return no reasoning summaries")


# ---- answers ----------------------------------------------------------------------------


def _usage(usage: Any) -> dict[str, Any] | None:
    if not isinstance(usage, dict):
        return None
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": int(prompt_details.get("cached_tokens") or 0)},
        "output_tokens": completion,
        "output_tokens_details": {
            "reasoning_tokens": int(completion_details.get("reasoning_tokens") or 0)
        },
        "total_tokens": int(usage.get("total_tokens") or prompt + completion),
    }


def _envelope(body: dict[str, Any], response_id: str, model: Any, created: int) -> dict[str, Any]:
    """The fields of a Response object that echo the request."""
    text = body.get("text") or {}
    return {
        "id": response_id,
        "object": "response",
        "created_at": created,
        "status": "in_progress",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": model or body.get("model"),
        "output": [],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": None,
        "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
        "store": False,
        "temperature": body.get("temperature"),
        "text": {"format": text.get("format") or {"type": "text"}},
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p"),
        "truncation": body.get("truncation") or "disabled",
        "usage": None,
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


def _finish(response: dict[str, Any], finish_reason: Any) -> None:
    if finish_reason == "length":
        response["status"] = "incomplete"
        response["incomplete_details"] = {"reason": "max_output_tokens"}
    elif finish_reason == "content_filter":
        response["status"] = "incomplete"
        response["incomplete_details"] = {"reason": "content_filter"}
    else:
        response["status"] = "completed"


def _message_item(item_id: str, text: str | None, refusal: str | None) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if text:
        content.append({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
    if refusal:
        content.append({"type": "refusal", "refusal": refusal})
    return {
        "type": "message",
        "id": item_id,
        "status": "completed",
        "role": "assistant",
        "content": content,
    }


def _reasoning_item(item_id: str, text: str) -> dict[str, Any]:
    return {
        "type": "reasoning",
        "id": item_id,
        "summary": [{"type": "summary_text", "text": text}],
    }


def _call_item(item_id: str, call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": "completed",
    }


def response_from_chat(body: dict[str, Any], chat: Any) -> dict[str, Any]:
    """A chat completion as a Response object."""
    chat_id = str(chat.get("id") or f"{time.time_ns():x}")
    choices = chat.get("choices") or []
    choice = choices[0] if choices else {}
    message = choice.get("message") or {}
    response = _envelope(
        body, f"resp_{chat_id}", chat.get("model"), int(chat.get("created") or time.time())
    )
    output: list[dict[str, Any]] = []
    if message.get("reasoning_content"):
        output.append(_reasoning_item(f"rs_{chat_id}", message["reasoning_content"]))
    if message.get("content") or message.get("refusal"):
        output.append(
            _message_item(f"msg_{chat_id}", message.get("content"), message.get("refusal"))
        )
    for i, call in enumerate(message.get("tool_calls") or []):
        function = call.get("function") or {}
        output.append(
            _call_item(
                f"fc_{chat_id}_{i}",
                call.get("id") or f"call_{chat_id}_{i}",
                function.get("name") or "",
                function.get("arguments") or "",
            )
        )
    response["output"] = output
    response["usage"] = _usage(chat.get("usage"))
    _finish(response, choice.get("finish_reason"))
    return response


class StreamTranslator:
    """Chat completion chunks in, Responses API stream events out (see ``feed``/``close``)."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.sequence = 0
        self.response: dict[str, Any] | None = None
        self.chat_id = ""
        self.output: list[dict[str, Any]] = []
        self.open: dict[str, Any] | None = None
        """The item being streamed: reasoning, message or a tool call."""
        self.calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: Any = None
        self.usage: Any = None

    def _event(self, kind: str, **fields: Any) -> SSEEvent:
        data = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return SSEEvent(data, kind)

    def _start(self, chunk: dict[str, Any]) -> list[SSEEvent]:
        self.chat_id = str(chunk.get("id") or f"{time.time_ns():x}")
        self.response = _envelope(
            self.body,
            f"resp_{self.chat_id}",
            chunk.get("model"),
            int(chunk.get("created") or time.time()),
        )
        snapshot = dict(self.response)
        return [
            self._event("response.created", response=snapshot),
            self._event("response.in_progress", response=snapshot),
        ]

    def _open(self, item: dict[str, Any]) -> list[SSEEvent]:
        events = self._close_open()
        item["output_index"] = len(self.output)
        self.output.append(item)
        self.open = item
        added: dict[str, Any]
        if item["type"] == "message":
            added = _message_item(item["id"], None, None)
        elif item["type"] == "reasoning":
            added = {"type": "reasoning", "id": item["id"], "summary": []}
        else:
            added = _call_item(item["id"], item["call_id"], item["name"], "")
        added["status"] = "in_progress"
        events.append(
            self._event("response.output_item.added", output_index=item["output_index"], item=added)
        )
        if item["type"] == "message":
            events.append(
                self._event(
                    "response.content_part.added",
                    item_id=item["id"],
                    output_index=item["output_index"],
                    content_index=0,
                    part={"type": "output_text", "text": "", "annotations": [], "logprobs": []},
                )
            )
        elif item["type"] == "reasoning":
            events.append(
                self._event(
                    "response.reasoning_summary_part.added",
                    item_id=item["id"],
                    output_index=item["output_index"],
                    summary_index=0,
                    part={"type": "summary_text", "text": ""},
                )
            )
        return events

    def _close_open(self) -> list[SSEEvent]:
        item, self.open = self.open, None
        if item is None:
            return []
        index = item["output_index"]
        events = []
        if item["type"] == "message":
            text = item["text"]
            part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
            events.append(
                self._event(
                    "response.output_text.done",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    text=text,
                    logprobs=[],
                )
            )
            events.append(
                self._event(
                    "response.content_part.done",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    part=part,
                )
            )
            done = _message_item(item["id"], text, None)
            if not text:
                done["content"] = [part]
        elif item["type"] == "reasoning":
            text = item["text"]
            events.append(
                self._event(
                    "response.reasoning_summary_text.done",
                    item_id=item["id"],
                    output_index=index,
                    summary_index=0,
                    text=text,
                )
            )
            events.append(
                self._event(
                    "response.reasoning_summary_part.done",
                    item_id=item["id"],
                    output_index=index,
                    summary_index=0,
                    part={"type": "summary_text", "text": text},
                )
            )
            done = _reasoning_item(item["id"], text)
        else:
            events.append(
                self._event(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=index,
                    name=item["name"],
                    arguments=item["arguments"],
                )
            )
            done = _call_item(item["id"], item["call_id"], item["name"], item["arguments"])
        item["done"] = done
        events.append(self._event("response.output_item.done", output_index=index, item=done))
        return events

    def feed(self, chunk: Any) -> list[SSEEvent]:
        """The events one chat chunk makes."""
        if not isinstance(chunk, dict):
            return []
        events = self._start(chunk) if self.response is None else []
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content")
            if reasoning:
                if self.open is None or self.open["type"] != "reasoning":
                    events += self._open(
                        {"type": "reasoning", "id": f"rs_{self.chat_id}", "text": ""}
                    )
                assert self.open is not None
                self.open["text"] += reasoning
                events.append(
                    self._event(
                        "response.reasoning_summary_text.delta",
                        item_id=self.open["id"],
                        output_index=self.open["output_index"],
                        summary_index=0,
                        delta=reasoning,
                    )
                )
            text = delta.get("content")
            if text:
                if self.open is None or self.open["type"] != "message":
                    events += self._open(
                        {"type": "message", "id": f"msg_{self.chat_id}", "text": ""}
                    )
                assert self.open is not None
                self.open["text"] += text
                events.append(
                    self._event(
                        "response.output_text.delta",
                        item_id=self.open["id"],
                        output_index=self.open["output_index"],
                        content_index=0,
                        delta=text,
                        logprobs=[],
                    )
                )
            for call in delta.get("tool_calls") or []:
                events += self._tool_delta(call)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return events

    def _tool_delta(self, call: dict[str, Any]) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        index = call.get("index", 0)
        function = call.get("function") or {}
        item = self.calls.get(index)
        if item is None:
            n = len(self.calls)
            item = {
                "type": "function_call",
                "id": f"fc_{self.chat_id}_{n}",
                "call_id": call.get("id") or f"call_{self.chat_id}_{n}",
                "name": function.get("name") or "",
                "arguments": "",
            }
            self.calls[index] = item
            events += self._open(item)
        elif self.open is not item:
            return events  # interleaved deltas of an earlier call: keep what it had
        arguments = function.get("arguments")
        if arguments:
            item["arguments"] += arguments
            events.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=item["id"],
                    output_index=item["output_index"],
                    delta=arguments,
                )
            )
        return events

    def close(self) -> list[SSEEvent]:
        """The closing events, once the chat stream has ended."""
        events = self._start({}) if self.response is None else []
        events += self._close_open()
        assert self.response is not None
        response = dict(self.response)
        response["output"] = [item["done"] for item in self.output]
        response["usage"] = _usage(self.usage)
        _finish(response, self.finish_reason)
        kind = "response.completed" if response["status"] == "completed" else "response.incomplete"
        events.append(self._event(kind, response=response))
        return events


async def stream_from_chat(
    body: dict[str, Any], chunks: AsyncIterator[SSEEvent]
) -> AsyncIterator[SSEEvent]:
    """A chat completion stream as a Responses API stream."""
    translator = StreamTranslator(body)
    async for chunk in chunks:
        for event in translator.feed(chunk.data):
            yield event
    for event in translator.close():
        yield event

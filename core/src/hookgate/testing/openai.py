"""A fake OpenAI upstream that speaks the real wire protocol and can be told to misbehave.

It serves ``/v1/chat/completions`` (JSON and SSE), ``/v1/completions``, ``/v1/embeddings``,
``/v1/models`` and the Responses API (``POST /v1/responses`` as JSON or OpenAI's typed SSE
events, ``GET``/``DELETE /v1/responses/{id}`` of the responses it stored) with OpenAI's
bodies, headers and error shapes; and OpenAI's other endpoints: moderations,
images/generations, audio/speech (audio bytes sent in chunks), audio/transcriptions
(multipart), files (multipart upload, list, retrieve, delete, content) and batches. Each request takes the next
:class:`Reply` from the script (``fake.script(...)``), or answers normally when the script is
empty. Everything it received is in ``fake.requests``.

Built on aiohttp.web rather than an ASGI app because a fake must be able to do what ASGI
cannot: drop the connection before answering, or in the middle of a stream.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from .servers import FakeServer, ServerThread

__all__ = [
    "FakeOpenAI",
    "Received",
    "Reply",
    "chat_chunks",
    "chat_completion",
    "embeddings",
    "openai_error",
    "response_events",
    "response_object",
    "speech_bytes",
    "text_completion",
]


@dataclass
class Reply:
    """What the fake does with one request."""

    status: int = 200
    json: Any = None
    """Body to send; None means the normal answer (or OpenAI's error body for a 4xx/5xx)."""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    """Seconds to wait before answering (a timeout test sets it above the gateway's limit)."""
    drop: bool = False
    """Close the connection without answering."""
    raw: bytes | None = None
    """Send these bytes as a 200 JSON body instead (garbage tests)."""
    drop_after: int | None = None
    """For a stream: close the connection after this many events."""
    stream_delay: float = 0.0
    """For a stream: seconds between events."""
    chunks: list[dict[str, Any]] | None = None
    """For a chat stream: exactly these chunks instead of the derived ones."""


def openai_error(status: int, message: str | None = None) -> dict[str, Any]:
    """OpenAI's error body for ``status``."""
    kind = {
        400: ("invalid_request_error", None),
        401: ("invalid_request_error", "invalid_api_key"),
        404: ("invalid_request_error", "model_not_found"),
        429: ("requests", "rate_limit_exceeded"),
    }.get(status, ("server_error", None))
    return {
        "error": {
            "message": message or f"fake upstream error {status}",
            "type": kind[0],
            "param": None,
            "code": kind[1],
        }
    }


@dataclass
class Received:
    path: str
    method: str
    headers: dict[str, str]
    json: Any
    at: float
    outcome: str = "answered"
    """answered, failed, dropped, or disconnected (the client went away mid-stream)."""


class FakeOpenAI(FakeServer):
    """The fake; start it with :meth:`start` in a :class:`ServerThread`."""

    def __init__(self, thread: ServerThread) -> None:
        super().__init__(thread)
        self.requests: list[Received] = []
        self._script: deque[Reply] = deque()
        self._ids = itertools.count(1)
        self.default = Reply()
        self.stored: dict[str, dict[str, Any]] = {}
        """Responses kept by ``POST /v1/responses`` (unless ``store`` is false)."""
        self.files: dict[str, tuple[dict[str, Any], bytes]] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.forms: list[dict[str, Any]] = []
        """What each multipart request carried: fields, and files as (name, type, bytes)."""

    @property
    def url(self) -> str:
        """The base URL a provider or custom_host points at (with ``/v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *replies: Reply | int) -> None:
        """Queue replies; a bare int is that status with OpenAI's error body."""
        for reply in replies:
            self._script.append(Reply(status=reply) if isinstance(reply, int) else reply)

    def calls(self, path: str = "/v1/chat/completions") -> list[Received]:
        return [r for r in self.requests if r.path == path]

    def reset(self) -> None:
        self.requests.clear()
        self._script.clear()

    # ---- life cycle ---------------------------------------------------------------------

    def start(self) -> FakeOpenAI:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/responses", self._responses)
        app.router.add_get("/v1/responses/{response_id}", self._stored_response)
        app.router.add_delete("/v1/responses/{response_id}", self._stored_response)
        app.router.add_post("/v1/moderations", self._moderations)
        app.router.add_post("/v1/images/generations", self._images)
        app.router.add_post("/v1/audio/speech", self._speech)
        app.router.add_post("/v1/audio/transcriptions", self._transcription)
        app.router.add_post("/v1/files", self._file_upload)
        app.router.add_get("/v1/files", self._file_list)
        app.router.add_get("/v1/files/{file_id}", self._file)
        app.router.add_delete("/v1/files/{file_id}", self._file)
        app.router.add_get("/v1/files/{file_id}/content", self._file_content)
        app.router.add_post("/v1/batches", self._batch_create)
        app.router.add_get("/v1/batches", self._batch_list)
        app.router.add_get("/v1/batches/{batch_id}", self._batch)
        app.router.add_post("/v1/batches/{batch_id}/cancel", self._batch)
        self.add_routes(app)
        self.serve(app)
        return self

    def add_routes(self, app: web.Application) -> None:
        """More routes, for a subclass."""

    # ---- handlers -----------------------------------------------------------------------

    async def _begin(self, request: web.Request) -> tuple[Received, Reply]:
        try:
            body = await request.json() if request.can_read_body else None
        except ValueError:
            body = None
        received = Received(
            request.path,
            request.method,
            {k.lower(): v for k, v in request.headers.items()},
            body,
            time.monotonic(),
        )
        self.requests.append(received)
        reply = self._script.popleft() if self._script else self.default
        if reply.delay:
            await asyncio.sleep(reply.delay)
        return received, reply

    def _common_headers(self, reply: Reply) -> dict[str, str]:
        return {
            "x-request-id": f"req_fake_{next(self._ids)}",
            "openai-processing-ms": "1",
            **reply.headers,
        }

    async def _answer(self, request: web.Request, normal: Any) -> web.StreamResponse:
        received, reply = await self._begin(request)
        if reply.drop:
            received.outcome = "dropped"
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        headers = self._common_headers(reply)
        if reply.raw is not None:
            return web.Response(
                body=reply.raw,
                status=reply.status,
                headers=headers,
                content_type="application/json",
            )
        if reply.status >= 400:
            received.outcome = "failed"
            body = reply.json if reply.json is not None else openai_error(reply.status)
            return web.json_response(body, status=reply.status, headers=headers, dumps=_dumps)
        body = reply.json if reply.json is not None else normal(received.json or {})
        if isinstance(body, dict) and (received.json or {}).get("stream") and "choices" in body:
            return await self._stream(request, received, reply, headers)
        return web.json_response(body, status=reply.status, headers=headers, dumps=_dumps)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(request, chat_completion)

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        received, reply = await self._begin(request)
        headers = self._common_headers(reply)
        if reply.status >= 400:
            received.outcome = "failed"
            body = reply.json if reply.json is not None else openai_error(reply.status)
            return web.json_response(body, status=reply.status, headers=headers, dumps=_dumps)
        request_body = received.json or {}
        answer = reply.json if reply.json is not None else response_object(request_body)
        if request_body.get("store", True):
            self.stored[answer["id"]] = answer
        if not request_body.get("stream"):
            return web.json_response(answer, headers=headers, dumps=_dumps)
        stream = web.StreamResponse(
            status=200, headers={**headers, "content-type": "text/event-stream"}
        )
        await stream.prepare(request)
        for kind, data in response_events(answer):
            await stream.write(f"event: {kind}\ndata: ".encode() + orjson.dumps(data) + b"\n\n")
        await stream.write_eof()
        return stream

    async def _moderations(self, request: web.Request) -> web.StreamResponse:
        def answer(body: dict[str, Any]) -> dict[str, Any]:
            inputs = body.get("input")
            texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
            return {
                "id": "modr-fake",
                "model": body.get("model") or "omni-moderation-latest",
                "results": [
                    {
                        "flagged": "kill" in str(text),
                        "categories": {"violence": "kill" in str(text)},
                        "category_scores": {"violence": 0.9 if "kill" in str(text) else 0.01},
                    }
                    for text in texts
                ],
            }

        return await self._answer(request, answer)

    async def _images(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(
            request,
            lambda body: {
                "created": 1700000000,
                "data": [{"b64_json": "aW1hZ2U="} for _ in range(body.get("n") or 1)],
                "usage": {
                    "input_tokens": _words(str(body.get("prompt"))),
                    "output_tokens": 100,
                    "total_tokens": _words(str(body.get("prompt"))) + 100,
                    "input_tokens_details": {"text_tokens": 1, "image_tokens": 0},
                },
            },
        )

    async def _speech(self, request: web.Request) -> web.StreamResponse:
        received, reply = await self._begin(request)
        if reply.status >= 400:
            received.outcome = "failed"
            return web.json_response(openai_error(reply.status), status=reply.status)
        audio = speech_bytes((received.json or {}).get("input", ""))
        response = web.StreamResponse(
            status=200, headers={**self._common_headers(reply), "content-type": "audio/mpeg"}
        )
        await response.prepare(request)
        for start in range(0, len(audio), 1024):  # as OpenAI does: chunks as they are made
            await response.write(audio[start : start + 1024])
            if reply.stream_delay:
                await asyncio.sleep(reply.stream_delay)
        await response.write_eof()
        return response

    async def _form(self, request: web.Request) -> tuple[Received, dict[str, Any]]:
        fields: dict[str, Any] = {}
        form = await request.post()
        for name, value in form.items():
            if isinstance(value, web.FileField):
                fields[name] = (value.filename, value.content_type, value.file.read())
            else:
                fields[name] = value
        self.forms.append(fields)
        received = Received(
            request.path,
            request.method,
            {k.lower(): v for k, v in request.headers.items()},
            {k: v for k, v in fields.items() if isinstance(v, str)},
            time.monotonic(),
        )
        self.requests.append(received)
        return received, fields

    async def _transcription(self, request: web.Request) -> web.StreamResponse:
        _received, fields = await self._form(request)
        name, _kind, data = fields["file"]
        return web.json_response(
            {
                "text": f"fake transcript of {name} ({len(data)} bytes)",
                "usage": {
                    "type": "tokens",
                    "input_tokens": 12,
                    "output_tokens": 6,
                    "total_tokens": 18,
                },
            },
            headers={"x-request-id": f"req_fake_{next(self._ids)}"},
        )

    async def _file_upload(self, request: web.Request) -> web.StreamResponse:
        _received, fields = await self._form(request)
        name, _kind, data = fields["file"]
        file_id = f"file-fake{len(self.files) + 1}"
        meta = {
            "id": file_id,
            "object": "file",
            "bytes": len(data),
            "created_at": 1700000000,
            "filename": name,
            "purpose": fields.get("purpose"),
        }
        self.files[file_id] = (meta, data)
        return web.json_response(meta)

    async def _file_list(self, request: web.Request) -> web.StreamResponse:
        await self._begin(request)
        purpose = request.query.get("purpose")
        data = [m for m, _ in self.files.values() if purpose in (None, m["purpose"])]
        return web.json_response({"object": "list", "data": data, "has_more": False})

    async def _file(self, request: web.Request) -> web.StreamResponse:
        await self._begin(request)
        file_id = request.match_info["file_id"]
        if file_id not in self.files:
            return web.json_response(
                openai_error(404, f"No such File object: {file_id}"), status=404
            )
        if request.method == "DELETE":
            del self.files[file_id]
            return web.json_response({"id": file_id, "object": "file", "deleted": True})
        return web.json_response(self.files[file_id][0])

    async def _file_content(self, request: web.Request) -> web.StreamResponse:
        await self._begin(request)
        file_id = request.match_info["file_id"]
        if file_id not in self.files:
            return web.json_response(
                openai_error(404, f"No such File object: {file_id}"), status=404
            )
        return web.Response(body=self.files[file_id][1], content_type="application/octet-stream")

    async def _batch_create(self, request: web.Request) -> web.StreamResponse:
        received, _reply = await self._begin(request)
        body = received.json or {}
        batch_id = f"batch_fake{len(self.batches) + 1}"
        batch = {
            "id": batch_id,
            "object": "batch",
            "endpoint": body.get("endpoint"),
            "input_file_id": body.get("input_file_id"),
            "completion_window": body.get("completion_window"),
            "status": "validating",
            "created_at": 1700000000,
        }
        self.batches[batch_id] = batch
        return web.json_response(batch)

    async def _batch_list(self, request: web.Request) -> web.StreamResponse:
        await self._begin(request)
        limit = int(request.query.get("limit", "20"))
        data = list(self.batches.values())[:limit]
        return web.json_response({"object": "list", "data": data, "has_more": False})

    async def _batch(self, request: web.Request) -> web.StreamResponse:
        await self._begin(request)
        batch_id = request.match_info["batch_id"]
        if batch_id not in self.batches:
            return web.json_response(openai_error(404, f"No batch {batch_id}"), status=404)
        if request.path.endswith("/cancel"):
            self.batches[batch_id]["status"] = "cancelling"
        return web.json_response(self.batches[batch_id])

    async def _stored_response(self, request: web.Request) -> web.StreamResponse:
        await self._begin(request)
        response_id = request.match_info["response_id"]
        if response_id not in self.stored:
            error = openai_error(404, f"Response with id '{response_id}' not found.")
            return web.json_response(error, status=404, dumps=_dumps)
        if request.method == "DELETE":
            del self.stored[response_id]
            return web.json_response(
                {"id": response_id, "object": "response", "deleted": True}, dumps=_dumps
            )
        return web.json_response(self.stored[response_id], dumps=_dumps)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(request, text_completion)

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(request, embeddings)

    async def _models(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(
            request,
            lambda _: {
                "object": "list",
                "data": [
                    {"id": "gpt-4o-mini", "object": "model", "created": 0, "owned_by": "openai"}
                ],
            },
        )

    async def _stream(
        self, request: web.Request, received: Received, reply: Reply, headers: dict[str, str]
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            status=200, headers={**headers, "content-type": "text/event-stream"}
        )
        await response.prepare(request)
        chunks = reply.chunks if reply.chunks is not None else chat_chunks(received.json)
        events = [orjson.dumps(chunk) for chunk in chunks] + [b"[DONE]"]
        try:
            for count, data in enumerate(events):
                if reply.drop_after is not None and count >= reply.drop_after:
                    received.outcome = "dropped"
                    assert request.transport is not None
                    request.transport.close()
                    return response
                if count and reply.stream_delay:
                    await asyncio.sleep(reply.stream_delay)
                await response.write(b"data: " + data + b"\n\n")
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            received.outcome = "disconnected"
            raise
        return response


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _last_user(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else str(content)
    return ""


def _words(text: str) -> int:
    return max(1, len(text.split()))


def chat_completion(body: dict[str, Any]) -> dict[str, Any]:
    content = f"fake: {_last_user(body)}"
    prompt = sum(_words(str(m.get("content", ""))) for m in body.get("messages") or [])
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1700000000,
        "model": body.get("model", "gpt-4o-mini"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": _words(content),
            "total_tokens": prompt + _words(content),
        },
        "system_fingerprint": "fp_fake",
    }


def chat_chunks(body: dict[str, Any]) -> Iterable[dict[str, Any]]:
    content = f"fake: {_last_user(body)}"
    base = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": body.get("model", "gpt-4o-mini"),
        "system_fingerprint": "fp_fake",
    }
    words = content.split(" ")
    yield {
        **base,
        "choices": [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": ""},
                "logprobs": None,
                "finish_reason": None,
            }
        ],
    }
    for i, word in enumerate(words):
        yield {
            **base,
            "choices": [
                {
                    "index": 0,
                    "delta": {"content": word if i == 0 else " " + word},
                    "logprobs": None,
                    "finish_reason": None,
                }
            ],
        }
    yield {
        **base,
        "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}],
    }
    if (body.get("stream_options") or {}).get("include_usage"):
        prompt = sum(_words(str(m.get("content", ""))) for m in body.get("messages") or [])
        yield {
            **base,
            "choices": [],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": len(words),
                "total_tokens": prompt + len(words),
            },
        }


def text_completion(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "cmpl-fake",
        "object": "text_completion",
        "created": 1700000000,
        "model": body.get("model", "gpt-3.5-turbo-instruct"),
        "choices": [
            {
                "index": 0,
                "text": f"fake: {body.get('prompt')}",
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
    }


def embeddings(body: dict[str, Any]) -> dict[str, Any]:
    inputs = body.get("input")
    texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": [0.1 * (i + 1), 0.2, 0.3]}
            for i, _ in enumerate(texts)
        ],
        "model": body.get("model", "text-embedding-3-small"),
        "usage": {"prompt_tokens": len(texts), "total_tokens": len(texts)},
    }


def _input_text(body: dict[str, Any]) -> str:
    items = body.get("input")
    if isinstance(items, str):
        return items
    for item in reversed(items or []):
        if isinstance(item, dict) and item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, str):
                return content
            return "".join(p.get("text", "") for p in content or [] if isinstance(p, dict))
    return ""


def response_object(body: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's Response for a request: the echo answer, as ``gpt-4o-mini`` gives it."""
    text = f"fake: {_input_text(body)}"
    number = next(_response_ids)
    return {
        "id": f"resp_fake_{number}",
        "object": "response",
        "created_at": 1700000000,
        "status": "completed",
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": body.get("model", "gpt-4o-mini"),
        "output": [
            {
                "type": "message",
                "id": f"msg_fake_{number}",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ],
        "parallel_tool_calls": True,
        "previous_response_id": body.get("previous_response_id"),
        "store": body.get("store", True),
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": body.get("tools") or [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": {
            "input_tokens": _words(_input_text(body)),
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": _words(text),
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": _words(_input_text(body)) + _words(text),
        },
        "metadata": {},
    }


_response_ids = itertools.count(1)


def response_events(response: dict[str, Any]) -> Iterable[tuple[str, dict[str, Any]]]:
    """The typed events OpenAI streams for ``response``, in its order."""
    sequence = itertools.count()

    def event(kind: str, **fields: Any) -> tuple[str, dict[str, Any]]:
        return kind, {"type": kind, "sequence_number": next(sequence), **fields}

    started = {**response, "status": "in_progress", "output": [], "usage": None}
    yield event("response.created", response=started)
    yield event("response.in_progress", response=started)
    for index, item in enumerate(response["output"]):
        if item["type"] == "message":
            yield event(
                "response.output_item.added",
                output_index=index,
                item={**item, "status": "in_progress", "content": []},
            )
            for part_index, part in enumerate(item["content"]):
                empty = {**part, "text": ""}
                yield event(
                    "response.content_part.added",
                    item_id=item["id"],
                    output_index=index,
                    content_index=part_index,
                    part=empty,
                )
                words = part["text"].split(" ")
                for i, word in enumerate(words):
                    yield event(
                        "response.output_text.delta",
                        item_id=item["id"],
                        output_index=index,
                        content_index=part_index,
                        delta=word if i == 0 else " " + word,
                    )
                yield event(
                    "response.output_text.done",
                    item_id=item["id"],
                    output_index=index,
                    content_index=part_index,
                    text=part["text"],
                )
                yield event(
                    "response.content_part.done",
                    item_id=item["id"],
                    output_index=index,
                    content_index=part_index,
                    part=part,
                )
        elif item["type"] == "function_call":
            yield event(
                "response.output_item.added",
                output_index=index,
                item={**item, "status": "in_progress", "arguments": ""},
            )
            yield event(
                "response.function_call_arguments.delta",
                item_id=item["id"],
                output_index=index,
                delta=item["arguments"],
            )
            yield event(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=index,
                arguments=item["arguments"],
            )
        yield event("response.output_item.done", output_index=index, item=item)
    yield event("response.completed", response=response)


def speech_bytes(text: str) -> bytes:
    """Stand-in audio for ``text``: an MP3 frame header, then bytes derived from the text."""
    return b"\xff\xfb\x90\x00" + (text.encode() * 400)[:8000]

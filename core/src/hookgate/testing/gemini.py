"""A fake Google AI Studio (Gemini API v1beta) upstream, checked against the google-genai SDK.

It serves ``POST /v1beta/models/{model}:generateContent``, ``:streamGenerateContent?alt=sse``
and ``:batchEmbedContents``, and ``GET /v1beta/models``, with Gemini's bodies and error shape
(``{"error": {"code", "message", "status"}}``). Every request body it receives is validated
with the SDK's own types (``google.genai.types.Content``, ``GenerationConfig``, ``Tool``, ...,
which forbid unknown fields), and every answer it sends is validated as a
``GenerateContentResponse`` first; a problem either way is a 400/500 and lands in
``fake.problems`` (the fixture asserts it stays empty).

Each request takes the next :class:`GeminiReply` from the script, or answers with an echo.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from google.genai import types
from pydantic import BaseModel, ValidationError

from .servers import FakeServer, ServerThread

__all__ = [
    "FakeGemini",
    "GeminiReceived",
    "GeminiReply",
    "echo_events",
    "echo_response",
    "echo_text",
    "echo_usage",
    "gemini_error",
]

# Top-level request fields of generateContent and the SDK type that validates each item.
_REQUEST_FIELDS: dict[str, tuple[type[BaseModel], bool]] = {
    "contents": (types.Content, True),
    "systemInstruction": (types.Content, False),
    "generationConfig": (types.GenerationConfig, False),
    "tools": (types.Tool, True),
    "toolConfig": (types.ToolConfig, False),
    "safetySettings": (types.SafetySetting, True),
}

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def gemini_error(status: int, message: str | None = None, **extra: Any) -> dict[str, Any]:
    """Gemini's error body for ``status``."""
    return {
        "error": {
            "code": status,
            "message": message or f"fake gemini error {status}",
            "status": _STATUS_NAMES.get(status, "UNKNOWN"),
            **extra,
        }
    }


@dataclass
class GeminiReply:
    """What the fake does with one request."""

    status: int = 200
    json: Any = None
    """A whole GenerateContentResponse (or error body); None: the echo answer / Gemini's error."""
    events: list[dict[str, Any]] | None = None
    """For a stream: these GenerateContentResponse events instead of the echo."""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop_after: int | None = None
    """For a stream: close the connection after this many events."""


@dataclass
class GeminiReceived:
    path: str
    model: str
    method: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    outcome: str = "answered"


def _text_of(contents: list[dict[str, Any]]) -> list[str]:
    return [p["text"] for c in contents for p in c.get("parts", []) if "text" in p]


def _words(texts: list[str]) -> int:
    return sum(max(1, len(t.split())) for t in texts)


def echo_text(body: dict[str, Any]) -> str:
    for content in reversed(body.get("contents") or []):
        if content.get("role", "user") == "user":
            texts = [p["text"] for p in content.get("parts", []) if "text" in p]
            if texts:
                return f"fake gemini: {' '.join(texts)}"
    return "fake gemini: (no text)"


def echo_usage(body: dict[str, Any], answer: str) -> dict[str, int]:
    prompt = _words(_text_of(body.get("contents") or []))
    system = body.get("systemInstruction")
    if system:
        prompt += _words(_text_of([system]))
    out = _words([answer])
    return {
        "promptTokenCount": prompt,
        "candidatesTokenCount": out,
        "totalTokenCount": prompt + out,
    }


def echo_response(body: dict[str, Any], model: str) -> dict[str, Any]:
    answer = echo_text(body)
    return {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": answer}]},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": echo_usage(body, answer),
        "modelVersion": model,
        "responseId": "fake-response-1",
    }


def echo_events(body: dict[str, Any], model: str) -> list[dict[str, Any]]:
    answer = echo_text(body)
    words = answer.split(" ")
    final = echo_usage(body, answer)
    events = []
    for i, word in enumerate(words):
        last = i == len(words) - 1
        candidate: dict[str, Any] = {
            "content": {"role": "model", "parts": [{"text": word if i == 0 else " " + word}]},
            "index": 0,
        }
        if last:
            candidate["finishReason"] = "STOP"
        # Gemini repeats the usage so far on every event; only the last one is final.
        usage = (
            final
            if last
            else {
                "promptTokenCount": final["promptTokenCount"],
                "totalTokenCount": final["promptTokenCount"],
            }
        )
        events.append(
            {
                "candidates": [candidate],
                "usageMetadata": usage,
                "modelVersion": model,
                "responseId": "fake-stream-1",
            }
        )
    return events


class FakeGemini(FakeServer):
    """The fake; start it with :meth:`start` in a :class:`ServerThread`."""

    def __init__(self, thread: ServerThread) -> None:
        super().__init__(thread)
        self.requests: list[GeminiReceived] = []
        self.problems: list[str] = []
        self._script: deque[GeminiReply] = deque()

    @property
    def url(self) -> str:
        """The base URL a provider or custom_host points at (with ``/v1beta``)."""
        return f"{self.host}/v1beta"

    def script(self, *replies: GeminiReply | int) -> None:
        for reply in replies:
            self._script.append(GeminiReply(status=reply) if isinstance(reply, int) else reply)

    def calls(self, action: str = "generateContent") -> list[GeminiReceived]:
        return [r for r in self.requests if r.path.endswith(":" + action)]

    # ---- life cycle ---------------------------------------------------------------------

    def start(self) -> FakeGemini:
        app = web.Application()
        app.router.add_get("/v1beta/models", self._models)
        # "{model}:{action}" in one path segment: matched by hand (aiohttp's {name} stops at ":").
        app.router.add_post(r"/v1beta/models/{spec:[^/]+}", self._post)
        self.serve(app)
        return self

    # ---- validation ---------------------------------------------------------------------

    def check_request(self, body: Any) -> str | None:
        if not isinstance(body, dict):
            return "the body is not a JSON object"
        for name, value in body.items():
            if name not in _REQUEST_FIELDS:
                return f'Invalid JSON payload received. Unknown name "{name}"'
            model, is_list = _REQUEST_FIELDS[name]
            try:
                if is_list:
                    if not isinstance(value, list):
                        return f"{name} must be a list"
                    for item in value:
                        model.model_validate(item)
                else:
                    model.model_validate(value)
            except ValidationError as exc:
                return f"{name}: {exc}"
        if not body.get("contents"):
            return "* GenerateContentRequest.contents: contents is not specified"
        return None

    def check_answer(self, answer: Any) -> None:
        try:
            types.GenerateContentResponse.model_validate(answer)
        except ValidationError as exc:
            self.problems.append(f"the fake would send an invalid answer: {exc}")
            raise

    # ---- handlers -----------------------------------------------------------------------

    async def _post(self, request: web.Request) -> web.StreamResponse:
        model, _, action = request.match_info["spec"].partition(":")
        try:
            body = await request.json()
        except ValueError:
            body = None
        received = GeminiReceived(
            request.path,
            model,
            request.method,
            dict(request.query),
            {k.lower(): v for k, v in request.headers.items()},
            body,
        )
        self.requests.append(received)
        reply = self._script.popleft() if self._script else GeminiReply()
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if "x-goog-api-key" not in received.headers and "key" not in request.query:
            received.outcome = "failed"
            return _json(gemini_error(403, "Method doesn't allow unregistered callers"), 403)
        if action == "batchEmbedContents":
            return self._embed(received, reply)
        if action not in ("generateContent", "streamGenerateContent"):
            return _json(gemini_error(404, f"unknown action {action}"), 404)
        problem = self.check_request(body)
        if problem is not None:
            self.problems.append(problem)
            received.outcome = "failed"
            return _json(gemini_error(400, problem), 400)
        if reply.status >= 400:
            received.outcome = "failed"
            error = reply.json if reply.json is not None else gemini_error(reply.status)
            return _json(error, reply.status, reply.headers)
        if action == "streamGenerateContent":
            return await self._stream(request, received, reply, body, model)
        answer = reply.json if reply.json is not None else echo_response(body, model)
        self.check_answer(answer)
        return _json(answer, 200, reply.headers)

    def _embed(self, received: GeminiReceived, reply: GeminiReply) -> web.Response:
        requests = (received.json or {}).get("requests") or []
        for item in requests:
            try:
                types.Content.model_validate(item.get("content"))
            except ValidationError as exc:
                self.problems.append(f"embed content: {exc}")
                return _json(gemini_error(400, str(exc)), 400)
        answer = {
            "embeddings": [
                {"values": [0.5 * (i + 1), float(len(item["content"]["parts"][0]["text"]))]}
                for i, item in enumerate(requests)
            ]
        }
        types.EmbedContentResponse.model_validate(answer)
        return _json(answer, 200, reply.headers)

    async def _stream(
        self,
        request: web.Request,
        received: GeminiReceived,
        reply: GeminiReply,
        body: dict[str, Any],
        model: str,
    ) -> web.StreamResponse:
        if request.query.get("alt") != "sse":
            self.problems.append("streamGenerateContent without alt=sse")
        events = reply.events if reply.events is not None else echo_events(body, model)
        for event in events:
            if "error" not in event:
                self.check_answer(event)
        response = web.StreamResponse(
            status=200, headers={**reply.headers, "content-type": "text/event-stream"}
        )
        await response.prepare(request)
        try:
            for count, event in enumerate(events):
                if reply.drop_after is not None and count >= reply.drop_after:
                    received.outcome = "dropped"
                    assert request.transport is not None
                    request.transport.close()
                    return response
                await response.write(b"data: " + orjson.dumps(event) + b"\r\n\r\n")
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            received.outcome = "disconnected"
            raise
        return response

    async def _models(self, request: web.Request) -> web.Response:
        return _json(
            {
                "models": [
                    {
                        "name": "models/gemini-2.0-flash",
                        "displayName": "Gemini 2.0 Flash",
                        "supportedGenerationMethods": ["generateContent"],
                    }
                ]
            },
            200,
        )


def _json(body: Any, status: int, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(body),
        status=status,
        headers={"x-fake": "gemini", **(headers or {})},
        content_type="application/json",
    )

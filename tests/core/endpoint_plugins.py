"""Plugins that declare endpoints, for the endpoint-mechanism tests (loaded with ``use``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from hookgate import BadRequestError, RequestContext, Response, SSEEvent, Target, hookimpl
from hookgate.endpoints import Bridge, EndpointSpec
from pydantic import BaseModel


class ShoutRequest(BaseModel):
    model: str
    text: str


def _to_chat(body: dict[str, Any]) -> dict[str, Any]:
    if "tone" in body:
        raise BadRequestError("'tone' cannot be translated to chat", param="tone")
    return {
        "model": body["model"],
        "messages": [{"role": "user", "content": body["text"]}],
        "stream": bool(body.get("stream")),
    }


def _from_chat(body: dict[str, Any], answer: Any) -> Any:
    return {"shout": answer["choices"][0]["message"]["content"].upper(), "model": answer["model"]}


async def _from_chunks(
    body: dict[str, Any], events: AsyncIterator[SSEEvent]
) -> AsyncIterator[SSEEvent]:
    async for event in events:
        for choice in event.data.get("choices") or []:
            text = (choice.get("delta") or {}).get("content")
            if text:
                yield SSEEvent({"delta": text.upper()}, "shout.delta")
    yield SSEEvent({"done": True}, "shout.done")


class Shouting:
    """Declares ``shout`` (bridged through chat) and ``things.get``; serves provider
    ``thingy`` natively for both."""

    providers = ("thingy",)
    serves = {"thingy": ("shout", "things.get")}
    endpoints = (
        EndpointSpec(
            name="shout",
            path="/v1/shout",
            request_model=ShoutRequest,
            streams=True,
            bridge=Bridge(
                via="chat.completions", request=_to_chat, response=_from_chat, stream=_from_chunks
            ),
            summary="Shout a text back",
        ),
        EndpointSpec(name="things.get", path="/v1/things/{thing_id}", method="GET", body="none"),
    )

    @hookimpl
    def call_provider(self, ctx: RequestContext, target: Target) -> Any:
        if target.provider != "thingy":
            return None
        return self._answer(ctx)

    async def _answer(self, ctx: RequestContext) -> Response:
        if ctx.endpoint == "things.get":
            return Response.from_json({"id": ctx.params["thing_id"], "query": ctx.query})
        return Response.from_json({"shout": ctx.body["text"] + "!", "native": True})

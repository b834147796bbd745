"""Checked by mypy (``[tool.mypy] files``), never run: ``create()`` is typed by ``stream``."""

from __future__ import annotations

from typing import assert_type

from hookgate import Gateway, SyncGateway
from hookgate.gateway import ChunkStream, _SyncChunks
from hookgate.models import ChatCompletion, ChatCompletionChunk, Completion, CreateEmbeddingResponse

HELLO = [{"role": "user", "content": "hi"}]


async def embedded(gw: Gateway, flag: bool) -> None:
    answer = await gw.chat.completions.create(model="m", messages=HELLO)
    assert_type(answer, ChatCompletion)
    assert_type(
        await gw.chat.completions.create(model="m", messages=HELLO, stream=False), ChatCompletion
    )
    chunks = await gw.chat.completions.create(model="m", messages=HELLO, stream=True)
    assert_type(chunks, ChunkStream[ChatCompletionChunk])
    async for chunk in chunks:
        assert_type(chunk, ChatCompletionChunk)
    either = await gw.chat.completions.create(model="m", messages=HELLO, stream=flag)
    assert_type(either, ChatCompletion | ChunkStream[ChatCompletionChunk])
    assert_type(await gw.completions.create(model="m", prompt="hi"), Completion)
    assert_type(await gw.embeddings.create(model="m", input="hi"), CreateEmbeddingResponse)


def synchronous(gw: SyncGateway) -> None:
    assert_type(gw.chat.completions.create(model="m", messages=HELLO), ChatCompletion)
    chunks = gw.chat.completions.create(model="m", messages=HELLO, stream=True)
    assert_type(chunks, _SyncChunks[ChatCompletionChunk])
    for chunk in chunks:
        assert_type(chunk, ChatCompletionChunk)

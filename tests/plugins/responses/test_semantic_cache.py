"""The semantic cache answers a paraphrased Responses API request (real Chroma, the real
local model), the way it answers chat: it reads the request through its chat translation."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hookgate import CallOptions, Gateway

SEMANTIC = {"cache": {"mode": "semantic", "max_age": 60}}


async def ask(gw: Gateway, text: str) -> tuple[str, str]:
    ctx = gw.context(
        "responses",
        {"model": "mock-1", "input": [{"role": "user", "content": text}]},
        config=SEMANTIC,
        options=CallOptions(provider="mock"),
    )
    answer = (await gw.handle(ctx)).json()
    return answer["output"][0]["content"][0]["text"], ctx.cache_status


async def test_a_paraphrased_responses_request_hits(tmp_path: Path) -> None:
    settings = {
        "gateway": {"plugins": ["mock", "responses", "semantic-cache"], "default_provider": "mock"},
        "plugins": {"semantic-cache": {"prune_interval": 0, "path": str(tmp_path / "store")}},
    }
    async with Gateway(settings) as gw:
        first = await ask(gw, "How do I reset my password?")
        assert first == ("[mock] you said: How do I reset my password?", "SEMANTIC MISS")
        # The store opens on first use, which on a loaded machine can outlast a request
        # (lookups meanwhile are misses): wait until the same question is an exact hit.
        for _ in range(200):
            if (await ask(gw, "How do I reset my password?"))[1] == "HIT":
                break
            await asyncio.sleep(0.05)
        assert await ask(gw, "How can I reset my password?") == (first[0], "SEMANTIC HIT")
        text, status = await ask(gw, "What is the weather like in Lisbon?")
        assert status == "SEMANTIC MISS" and "Lisbon" in text

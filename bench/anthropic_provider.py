"""Cost of the anthropic provider's translation, and of whole calls through the gateway.

    uv run python bench/anthropic_provider.py [--requests 2000]

Prints µs per OpenAI -> Anthropic request translation, per Anthropic -> OpenAI answer
translation and per streamed event, then the embedded gateway's requests/s against the fake
Anthropic upstream on loopback at concurrency 32: chat completions (translated) next to
``messages`` (Anthropic's own format, passed through), so the difference is what translating
costs end to end.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hookgate import Gateway, SSEEvent
from hookgate_anthropic.stream import to_chunks
from hookgate_anthropic.translate import chat_completion, to_messages_request

from tests.support.fake_anthropic import FakeAnthropic, message, stream_events
from tests.support.servers import ServerThread

TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
BODY = {
    "model": "claude-sonnet-5",
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18 C, sunny"},
        {"role": "user", "content": "And should I take an umbrella?"},
    ],
    "tools": [TOOL],
    "temperature": 0.2,
    "max_tokens": 256,
}
ANSWER = message(
    [
        {"type": "text", "text": "No umbrella needed: it is sunny and 18 degrees in Paris."},
        {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Rome"}},
    ],
    stop_reason="tool_use",
    usage={"input_tokens": 120, "cache_read_input_tokens": 800, "output_tokens": 40},
)


def per_call(fn, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


async def stream_cost(n: int) -> float:
    long = message([{"type": "text", "text": " ".join(["word"] * 200)}])
    events = [SSEEvent(data, name) for name, data in stream_events(long)]

    async def source():
        for event in events:
            yield event

    start = time.perf_counter()
    count = 0
    for _ in range(n):
        async for _chunk in to_chunks(source(), include_usage=True):
            count += 1
    return (time.perf_counter() - start) / (n * len(events)) * 1e6


async def throughput(gw: Gateway, endpoint: str, body: dict, requests: int) -> float:
    sem = asyncio.Semaphore(32)

    async def one() -> None:
        async with sem:
            await gw.handle(gw.context(endpoint, body))

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(requests)))
    return requests / (time.perf_counter() - start)


async def main(requests: int) -> None:
    print(
        f"request translation : {per_call(lambda: to_messages_request(BODY, 4096), 20000):7.1f} µs"
    )
    print(f"answer translation  : {per_call(lambda: chat_completion(ANSWER), 20000):7.1f} µs")
    print(f"stream, per event   : {await stream_cost(200):7.2f} µs")

    thread = ServerThread()
    fake = FakeAnthropic(thread).start()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "plugins.toml"
        path.write_text(
            f"""
[gateway]
plugins = ["anthropic"]
default_provider = "anthropic"
[plugins.anthropic]
base_url = "{fake.url}"
api_key = "sk-ant-bench"
"""
        )
        async with Gateway.from_toml(path) as gw:
            chat = {"model": "claude-sonnet-5", "messages": [{"role": "user", "content": "hi"}]}
            native = {**chat, "max_tokens": 64}
            await throughput(gw, "chat.completions", chat, 50)  # warm the pool
            for label, endpoint, body in (
                ("chat.completions -> anthropic", "chat.completions", chat),
                ("messages (pass-through)     ", "messages", native),
            ):
                fake.requests.clear()
                rps = await throughput(gw, endpoint, body, requests)
                print(f"{label}: {rps:7.0f} req/s at concurrency 32 ({requests} requests)")
    fake.stop()
    thread.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    asyncio.run(main(parser.parse_args().requests))

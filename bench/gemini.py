"""Cost of the google (Gemini) provider's translation, and of a whole call through the gateway.

    uv run python bench/gemini.py [--requests 3000]

Prints µs per OpenAI -> Gemini request translation, per Gemini -> OpenAI answer translation,
per streamed event, and the embedded gateway's requests/s against the fake Gemini upstream on
loopback (sequential and at concurrency 32), next to the same for the openai provider
against the fake OpenAI upstream: the difference is what translating costs end to end.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hookgate import Gateway
from hookgate_gemini import translate

from tests.support.fake_gemini import FakeGemini, echo_events, echo_response
from tests.support.fake_openai import FakeOpenAI
from tests.support.servers import ServerThread

BODY = {
    "model": "gemini-2.0-flash",
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the capital of France? Answer in one word."},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "And of Italy?"},
    ],
    "temperature": 0.2,
    "max_tokens": 64,
    "stop": ["\n\n"],
}


def per_call(fn, n: int) -> float:
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        rounds.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(rounds)


async def throughput(gw: Gateway, model: str, n: int, concurrency: int) -> float:
    create = gw.chat.completions.create
    messages = BODY["messages"]
    for _ in range(50):
        await create(model=model, messages=messages)
    queue = iter(range(n))

    async def worker() -> None:
        for _ in queue:
            await create(model=model, messages=messages)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return n / (time.perf_counter() - start)


async def main(n: int) -> None:
    thread = ServerThread()
    gemini = FakeGemini(thread).start()
    oai = FakeOpenAI(thread).start()
    folder = Path(tempfile.mkdtemp())
    try:
        gemini_request = translate.chat_request(BODY)
        answer = echo_response(gemini_request, "gemini-2.0-flash")
        events = echo_events(gemini_request, "gemini-2.0-flash")
        print(
            f"request translation:   {per_call(lambda: translate.chat_request(BODY), n * 10):6.1f} µs"
        )
        print(
            "answer translation:    "
            f"{per_call(lambda: translate.chat_response(answer, 'm'), n * 10):6.1f} µs"
        )

        def stream() -> None:
            t = translate.StreamTranslator("m", True)
            for event in events:
                list(t.feed(event))
            list(t.close())

        print(f"stream, per event:     {per_call(stream, n * 2) / len(events):6.1f} µs")
        for provider, url in (("google", gemini.url), ("openai", oai.url)):
            path = folder / f"{provider}.toml"
            plugin = "gemini" if provider == "google" else "openai"
            path.write_text(
                f'[gateway]\nplugins = ["{plugin}"]\ndefault_provider = "{provider}"\n'
                f'[plugins.{plugin}]\nbase_url = "{url}"\napi_key = "k"\n'
            )
            async with Gateway.from_toml(path) as gw:
                for concurrency in (1, 32):
                    rps = await throughput(gw, "gemini-2.0-flash", n, concurrency)
                    print(
                        f"{provider:7} via gateway, concurrency {concurrency:2}: {rps:7.0f} req/s"
                    )
            if provider == "google":
                gemini.requests.clear()
            else:
                oai.requests.clear()
    finally:
        gemini.stop()
        oai.stop()
        thread.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    asyncio.run(main(parser.parse_args().requests))

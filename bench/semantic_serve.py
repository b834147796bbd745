"""The semantic cache through a real ``hookgate serve``: start-up, memory, lookups, a replay.

    uv run python bench/semantic_serve.py [--workers 0] [--replay 300] [--lookups 160,480]

Starts ``hookgate serve`` with the reference plugins.toml (copied into a temporary folder,
default workers: one per core) and measures, in order:

1. **Start-up**: seconds until ``/health`` answers and until ``/ready`` says ready (the
   semantic-cache service has loaded the model and opened the store).
2. **Memory**: the PSS (proportional set size: shared pages divided among the processes that
   share them) of the whole deployment, the server's parent, its workers and the service,
   idle and after the load below. RSS is printed too; it counts shared pages once per process.
3. **Lookups** at concurrency 1 and 16, through the server, with the offline mock provider
   (no upstream latency): support-desk questions are stored first, then distinct paraphrases
   of them (hits) and distinct new questions (misses) are asked, each text once, so every
   lookup embeds. The same requests without a cache block give the server's own cost; the
   difference is what the semantic lookup (embed + query + guard, batched) adds.
4. **The seed's replay**: ``--replay`` support-desk requests at concurrency 10 against a fake
   OpenAI upstream that answers in 200 ms and fails 5% of calls transiently (429 with
   ``retry-after-ms``), first direct, then through the server with a retry block and
   ``cache: {mode: semantic}``. The stream mixes new questions, exact repeats and
   paraphrases; a repeat comes at least 20 requests after its original (its answer is in).
   Printed: availability, mean latency and upstream tokens, and the cuts against the
   workload's ideal (every request answered, each distinct question paid once at 200 ms,
   everything else free and instant).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.support.servers import free_port  # noqa: E402

HOOKGATE = str(Path(sys.executable).parent / "hookgate")

# Distinct meanings: no two actions (or things) are synonyms, so an answer for one
# (action, thing) never answers another.
ACTIONS = ["reset", "delete", "download", "cancel", "transfer", "verify", "print", "rename"]
THINGS = [
    "password", "billing address", "email address", "phone number", "subscription",
    "invoice", "account", "profile picture", "payment method", "order history",
    "shipping address", "username", "gift card", "refund request", "API key",
    "team workspace", "support ticket", "loyalty points", "delivery slot", "tax receipt",
]  # fmt: skip
NEW = "How do I {a} my {t}?"
PARAPHRASES = [
    "How can I {a} my {t}?",
    "how do i {a} my {t}",
    "How do I {a} my {t}, please?",
    "What is the way to {a} my {t}?",
    "Can you tell me how to {a} my {t}?",
]
MISSES = "Is there a fee to {a} the {t} of account number {n}?"  # a new number: a miss


# ---- processes and memory -----------------------------------------------------------------


def _descendants(pid: int) -> list[int]:
    found = [pid]
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                found += _descendants(int(child))
    except FileNotFoundError:
        pass
    return found


def _memory(pid: int) -> dict[str, float]:
    """PSS and RSS (MiB) of ``pid`` and its descendants, and the service's share."""
    total = {"pss": 0.0, "rss": 0.0, "service_pss": 0.0, "processes": 0}
    for each in _descendants(pid):
        try:
            rollup = Path(f"/proc/{each}/smaps_rollup").read_text()
            cmdline = Path(f"/proc/{each}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        fields = {line.split(":")[0]: line.split()[1] for line in rollup.splitlines()[1:]}
        pss = int(fields["Pss"]) / 1024
        total["pss"] += pss
        total["rss"] += int(fields["Rss"]) / 1024
        total["processes"] += 1
        if b"semantic_cache.service" in cmdline:
            total["service_pss"] += pss
    return total


def _show_memory(label: str, pid: int) -> None:
    m = _memory(pid)
    print(
        f"{label}: PSS {m['pss']:.0f} MiB over {m['processes']} processes "
        f"(the semantic-cache service {m['service_pss']:.0f} MiB); RSS summed {m['rss']:.0f} MiB"
    )


# ---- the fake upstream --------------------------------------------------------------------


class Upstream:
    """OpenAI's chat completions in 200 ms; a share of calls fail with a transient 429."""

    def __init__(self, latency: float, failure: float, retry_after_ms: int, seed: int) -> None:
        self.latency = latency
        self.failure = failure
        self.retry_after_ms = retry_after_ms
        self.random = random.Random(seed)
        self.port = free_port()
        self.calls = 0
        self.tokens = 0
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> Upstream:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self.loop).result(10)
        return self

    def reset(self) -> None:
        self.calls = 0
        self.tokens = 0

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.calls += 1
        await asyncio.sleep(self.latency)
        if self.random.random() < self.failure:
            error = {"error": {"message": "rate limited", "type": "requests", "code": None}}
            headers = {"retry-after-ms": str(self.retry_after_ms)}
            return web.json_response(error, status=429, headers=headers)
        question = body["messages"][-1]["content"]
        prompt = len(question.split()) * 2 + 20
        completion = 120
        self.tokens += prompt + completion
        answer = {
            "id": f"chatcmpl-{self.calls}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "gpt-4o-mini"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": f"Here is how: {question}"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }
        return web.json_response(answer)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)


# ---- the server ---------------------------------------------------------------------------


class Server:
    def __init__(self, folder: Path, workers: int) -> None:
        self.folder = folder
        self.port = free_port()
        shutil.copy(ROOT / "plugins.toml", folder / "plugins.toml")
        args = [] if workers == 0 else ["--workers", str(workers)]
        self.log = (folder / "server.log").open("w")
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            [HOOKGATE, "serve", "--config", "plugins.toml", "--port", str(self.port), *args],
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def wait(self, path: str, timeout: float = 120) -> float:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError((self.folder / "server.log").read_text())
                try:
                    async with session.get(self.url + path) as answer:
                        if answer.status == 200:
                            return time.perf_counter() - self.started
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.01)
        raise RuntimeError(f"{path} did not answer 200")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


# ---- clients ------------------------------------------------------------------------------


async def _run(
    session: aiohttp.ClientSession,
    url: str,
    jobs: list[tuple[str, dict[str, str]]],
    concurrency: int,
) -> list[tuple[int, float, str, str]]:
    """POST each (question, headers) with ``concurrency`` in flight: (status, seconds, cache
    status, the answer's text)."""
    results: list[tuple[int, float, str, str]] = [(0, 0.0, "", "")] * len(jobs)
    queue = iter(enumerate(jobs))

    async def worker() -> None:
        for index, (question, headers) in queue:
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": question}]}
            start = time.perf_counter()
            try:
                async with session.post(url, json=body, headers=headers) as answer:
                    data = await answer.read()
                    status = answer.status
                    cache = answer.headers.get("x-portkey-cache-status", "")
            except aiohttp.ClientError:
                status, cache, data = 599, "", b""
            elapsed = time.perf_counter() - start
            text = ""
            if status == 200:
                text = json.loads(data)["choices"][0]["message"]["content"] or ""
            results[index] = (status, elapsed, cache, text)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = ordered[len(ordered) // 2] * 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    return f"p50 {p50:6.2f} ms  p99 {p99:6.2f} ms"


async def lookups(server: Server, sizes: tuple[int, int]) -> None:
    url = f"{server.url}/v1/chat/completions"
    semantic = {"x-portkey-config": json.dumps({"provider": "mock", "cache": {"mode": "semantic"}})}
    plain = {"x-portkey-config": json.dumps({"provider": "mock"})}
    pairs = [(a, t) for t in THINGS for a in ACTIONS]
    rng = random.Random(3)
    rng.shuffle(pairs)
    stored = pairs[:120]
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as session:
        await _run(session, url, [(NEW.format(a=a, t=t), semantic) for a, t in stored], 4)
        await asyncio.sleep(0.5)
        forms = iter(
            (form.format(a=a, t=t), MISSES.format(a=a, t=t, n=1000 + n))
            for n, (form, (a, t)) in enumerate(
                (form, pair) for form in PARAPHRASES for pair in stored
            )
        )
        for concurrency, count in zip((1, 16), sizes, strict=True):
            questions: list[str] = []
            for _ in range(count // 2):
                hit, miss = next(forms)
                questions += [hit, miss]
            baseline = await _run(session, url, [(q, plain) for q in questions], concurrency)
            measured = await _run(session, url, [(q, semantic) for q in questions], concurrency)
            statuses: dict[str, int] = {}
            for _, _, cache, _ in measured:
                statuses[cache] = statuses.get(cache, 0) + 1
            base = [s for _, s, _, _ in baseline]
            times = [s for _, s, _, _ in measured]
            hits = [s for _, s, c, _ in measured if c == "SEMANTIC HIT"]
            base_p50 = sorted(base)[len(base) // 2]
            added = sorted(times)[len(times) // 2] - base_p50
            print(f"\nconcurrency {concurrency}, {len(questions)} distinct questions: {statuses}")
            print(f"  without the cache (the server's own cost): {_percentiles(base)}")
            print(f"  semantic lookups, all:                     {_percentiles(times)}")
            print(f"  semantic hits:                             {_percentiles(hits)}")
            print(f"  added by the lookup at p50: {added * 1000:.2f} ms")


def workload(count: int, seed: int) -> list[tuple[str, str]]:
    """(question, meaning) pairs: new questions, exact repeats and paraphrases of earlier ones."""
    rng = random.Random(seed)
    pairs = [(a, t) for t in THINGS for a in ACTIONS]
    rng.shuffle(pairs)
    fresh = iter(pairs)
    asked: list[tuple[int, tuple[str, str], str]] = []
    stream: list[tuple[str, str]] = []
    for index in range(count):
        earlier = [item for item in asked if index - item[0] >= 20]
        roll = rng.random()
        if earlier and roll < 0.25:  # an exact repeat
            _, meaning, text = rng.choice(earlier)
            stream.append((text, f"{meaning}"))
        elif earlier and roll < 0.55:  # a paraphrase
            _, (a, t), _ = rng.choice(earlier)
            stream.append((rng.choice(PARAPHRASES).format(a=a, t=t), f"{(a, t)}"))
        else:
            a, t = next(fresh)  # 160 meanings: enough for the default 300 requests
            text = NEW.format(a=a, t=t)
            asked.append((index, (a, t), text))
            stream.append((text, f"{(a, t)}"))
    return stream


async def visibility(server: Server, rounds: int = 20) -> None:
    """Milliseconds from an answer given by one worker to a semantic hit for a paraphrase on
    another one. Which worker accepts is decided by stopping the other (SIGSTOP)."""
    workers = [p for p in _descendants(server.process.pid)[1:] if b" serve " in _cmd(p)]
    if len(workers) < 2:
        print("\nvisibility across workers: needs two workers")
        return
    one, other = workers[:2]
    url = f"{server.url}/v1/chat/completions"
    semantic = {
        "x-portkey-config": json.dumps({"provider": "mock", "cache": {"mode": "semantic"}}),
        "x-portkey-cache-namespace": "visibility",  # apart from the lookups' entries
    }
    forms = ["How can I {a} my {t}?", "how do i {a} my {t}", "How do I {a} my {t}, please?"]
    delays: list[float] = []
    first_try = 0
    pairs = [(a, t) for a in ACTIONS[:5] for t in THINGS[:4]][:rounds]
    try:
        for a, t in pairs:
            os.kill(other, signal.SIGSTOP)
            async with aiohttp.ClientSession() as session:
                await _run(session, url, [(NEW.format(a=a, t=t), semantic)], 1)
                answered = time.perf_counter()
            os.kill(one, signal.SIGSTOP)
            os.kill(other, signal.SIGCONT)
            for attempt, form in enumerate(forms * 20):
                async with aiohttp.ClientSession() as session:
                    text = form.format(a=a, t=t) + (" " * (attempt // 3))
                    [(_, _, cache, _)] = await _run(session, url, [(text, semantic)], 1)
                if cache == "SEMANTIC HIT":
                    delays.append(time.perf_counter() - answered)
                    first_try += attempt == 0
                    break
            os.kill(one, signal.SIGCONT)
    finally:
        for pid in (one, other):
            os.kill(pid, signal.SIGCONT)
    print(
        f"\nvisibility on the other worker: {len(delays)}/{len(pairs)} paraphrases hit, "
        f"{first_try} on the first try; answer to hit {_percentiles(delays)}"
    )


def _cmd(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except FileNotFoundError:
        return b""


async def replay(server: Server, upstream: Upstream, count: int) -> None:
    stream = workload(count, seed=11)
    distinct = len({meaning for _, meaning in stream})
    connector = aiohttp.TCPConnector(limit=64)
    config = {
        "provider": "openai",
        "api_key": "sk-bench",
        "custom_host": upstream.url,
        "retry": {"attempts": 3, "on_status_codes": [429, 500, 502, 503, 504]},
        "cache": {"mode": "semantic", "max_age": 3600},
    }
    through = {"x-portkey-config": json.dumps(config)}
    direct_headers = {"authorization": "Bearer sk-bench"}
    async with aiohttp.ClientSession(connector=connector) as session:
        upstream.reset()
        direct = await _run(
            session,
            f"{upstream.url}/chat/completions",
            [(q, direct_headers) for q, _ in stream],
            10,
        )
        direct_tokens, direct_calls = upstream.tokens, upstream.calls
        # one answer's tokens, for the ideal: each distinct question paid once
        per_question = direct_tokens / max(1, sum(1 for s, _, _, _ in direct if s == 200))
        upstream.reset()
        served = await _run(
            session, f"{server.url}/v1/chat/completions", [(q, through) for q, _ in stream], 10
        )
        served_tokens, served_calls = upstream.tokens, upstream.calls

    def figures(results: list[tuple[int, float, str, str]]) -> tuple[float, float]:
        ok = sum(1 for s, _, _, _ in results if s == 200)
        return ok / len(results), sum(t for _, t, _, _ in results) / len(results)

    d_avail, d_mean = figures(direct)
    s_avail, s_mean = figures(served)
    statuses: dict[str, int] = {}
    for _, _, cache, _ in served:
        statuses[cache] = statuses.get(cache, 0) + 1
    # The fake answers "Here is how: <the question it was asked>": a cached answer is wrong
    # when that question meant something else.
    meaning_of = dict(stream)
    mixed_up = {
        (question, text.removeprefix("Here is how: "))
        for (question, meaning), (status, _, _, text) in zip(stream, served, strict=True)
        if status == 200 and meaning_of.get(text.removeprefix("Here is how: ")) != meaning
    }
    wrong = sum(
        1
        for (_, meaning), (status, _, _, text) in zip(stream, served, strict=True)
        if status == 200 and meaning_of.get(text.removeprefix("Here is how: ")) != meaning
    )
    ideal_mean = distinct * upstream.latency / len(stream)
    ideal_tokens = distinct * per_question
    ideal_latency_cut = 1 - ideal_mean / d_mean
    ideal_cost_cut = 1 - ideal_tokens / direct_tokens
    latency_cut = 1 - s_mean / d_mean
    cost_cut = 1 - served_tokens / direct_tokens
    print(
        f"\nreplay: {len(stream)} requests at c10, {distinct} distinct questions, "
        f"upstream {upstream.latency * 1000:.0f} ms with {upstream.failure:.0%} transient 429s"
    )
    print(
        f"  direct:  availability {d_avail:.1%}  mean {d_mean * 1000:.0f} ms  "
        f"upstream calls {direct_calls}  tokens {direct_tokens}"
    )
    print(
        f"  through: availability {s_avail:.1%}  mean {s_mean * 1000:.0f} ms  "
        f"upstream calls {served_calls}  tokens {served_tokens}  {statuses}"
    )
    print(f"  answers meant for another question: {wrong}")
    for asked, answered in sorted(mixed_up):
        print(f"    asked {asked!r}, got the answer to {answered!r}")
    print(
        f"  mean latency cut {latency_cut:.1%} (ideal {ideal_latency_cut:.1%}: "
        f"{latency_cut / ideal_latency_cut:.0%} of it)"
    )
    print(
        f"  upstream cost cut {cost_cut:.1%} (ideal {ideal_cost_cut:.1%}: "
        f"{cost_cut / ideal_cost_cut:.0%} of it)"
    )


async def main_async(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="hookgate-semantic-serve-"))
    upstream = Upstream(0.2, 0.05, args.retry_after_ms, seed=5).start()
    server = Server(folder, args.workers)
    try:
        health = await server.wait("/health")
        ready = await server.wait("/ready")
        workers = len(_descendants(server.process.pid)) - 2
        print(f"hookgate serve, reference plugins.toml, {workers} workers (+ parent, service)")
        print(f"start-up: /health after {health:.2f} s, /ready (store loaded) after {ready:.2f} s")
        await asyncio.sleep(1)
        _show_memory("idle", server.process.pid)
        sizes = tuple(int(n) for n in args.lookups.split(","))
        await lookups(server, (sizes[0], sizes[1]))
        await visibility(server)
        await replay(server, upstream, args.replay)
        _show_memory("\nafter the load", server.process.pid)
    finally:
        server.stop()
        upstream.stop()
        if os.environ.get("KEEP") is None:
            shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=0, help="0: the default, one per core")
    parser.add_argument("--replay", type=int, default=300)
    parser.add_argument("--lookups", default="160,480", help="requests at c1 and at c16")
    parser.add_argument("--retry-after-ms", type=int, default=100)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()

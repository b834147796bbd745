"""The semantic cache with real Chroma (embedded and ``chroma run``) and the real local model."""

# Chinese questions end with a full-width question mark:
# ruff: noqa: RUF001

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from hookgate import CallOptions, ConfigError, Gateway, SettingsError

from tests.plugins.semantic_cache.conftest import ChromaServer, settings
from tests.support.fake_openai import FakeOpenAI
from tests.support.servers import free_port

SEMANTIC = {"cache": {"mode": "semantic", "max_age": 60}}
ROOT = Path(__file__).parents[3]


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


async def ask(
    gw: Gateway,
    text: str,
    *,
    config: Any = SEMANTIC,
    messages: list[dict[str, str]] | None = None,
    model: str = "mock-1",
    options: CallOptions | None = None,
    **params: Any,
) -> tuple[str, str, float | None]:
    """Ask; return (answer, cache status, similarity)."""
    answer = await gw.chat.completions.create(
        model=model,
        messages=messages or user(text),
        config=config,
        options=options or CallOptions(provider="mock"),
        **params,
    )
    outcome = answer.hookgate
    return answer.choices[0].message.content, outcome.cache_status, outcome.cache_similarity


@pytest.fixture
async def gw(tmp_path: Path):
    async with Gateway(settings({"path": str(tmp_path / "store")})) as gateway:
        yield gateway


async def test_a_paraphrase_hits_and_an_unrelated_question_misses(gw: Gateway) -> None:
    first = await ask(gw, "How do I reset my password?")
    assert first == ("[mock] you said: How do I reset my password?", "SEMANTIC MISS", None)

    with structlog.testing.capture_logs() as logs:
        text, status, similarity = await ask(gw, "How can I reset my password?")
    assert status == "SEMANTIC HIT"
    assert text == "[mock] you said: How do I reset my password?"  # the stored answer
    assert similarity is not None and 0.85 <= similarity < 1.0
    hit = next(e for e in logs if e["event"] == "semantic_cache_hit")
    assert hit["log_level"] == "info" and hit["similarity"] == round(similarity, 4)

    assert await ask(gw, "How do I reset my password?") == (first[0], "HIT", None)
    text, status, _ = await ask(gw, "What is the weather like in Lisbon?")
    assert (text, status) == (
        "[mock] you said: What is the weather like in Lisbon?",
        "SEMANTIC MISS",
    )


async def test_concurrent_lookups_each_get_their_own_answer(gw: Gateway) -> None:
    """Lookups in flight together are answered in one batch: none gets another's answer."""
    topics = [
        "reset my password", "change my billing address", "cancel my subscription",
        "download my invoices", "delete my account", "update my phone number",
        "contact customer support", "change my email address",
    ]  # fmt: skip
    models = ["mock-a", "mock-b"]  # two partitions: the same question, two answers
    await asyncio.gather(*(ask(gw, f"How do I {t}?", model=m) for t in topics for m in models))
    answers = await asyncio.gather(
        *(ask(gw, f"How can I {t}?", model=m) for t in topics for m in models)
    )
    expected = [f"[mock] you said: How do I {t}?" for t in topics for _ in models]
    assert [a[0] for a in answers] == expected
    assert {a[1] for a in answers} == {"SEMANTIC HIT"}
    exact = await asyncio.gather(*(ask(gw, f"How do I {t}?", model="mock-b") for t in topics))
    assert {e[1] for e in exact} == {"HIT"}


async def test_requests_that_do_not_ask_are_not_cached(gw: Gateway) -> None:
    for _ in range(2):
        assert (await ask(gw, "Hi there", config=None))[1] == "DISABLED"
    # "simple" is the exact cache's mode: without that plugin, a 400 that names it.
    with pytest.raises(ConfigError, match="enable the 'cache' plugin"):
        await ask(gw, "Hi there", config={"cache": {"mode": "simple"}})


async def test_near_misses_never_hit(gw: Gateway) -> None:
    await ask(gw, "What is 2+2?")
    await ask(gw, "What is the capital of France?")
    await ask(gw, "如何重置我的密码？")
    for question in (
        "What is 2+3?",
        "What is the capital of Germany?",
        "What is not the capital of France?",
        "如何删除我的账户？",
        "北京的人口是多少？",
    ):
        text, status, _ = await ask(gw, question)
        assert (text, status) == (f"[mock] you said: {question}", "SEMANTIC MISS"), question


@pytest.mark.parametrize(
    ("change", "second"),
    [
        ("model", {"model": "mock-2"}),
        ("params", {"temperature": 0.9}),
        ("system prompt", {"messages": [{"role": "system", "content": "Be terse."}]}),
        ("earlier turn", {"messages": [{"role": "user", "content": "I use Linux."}]}),
        ("namespace", {"options": CallOptions(provider="mock", cache_namespace="other")}),
        ("tenant", {"options": CallOptions(provider="mock", api_key="sk-someone-else")}),
        ("target", {"config": {**SEMANTIC, "override_params": {"max_tokens": 5}}}),
    ],
)
async def test_a_hit_never_crosses_partitions(
    gw: Gateway, change: str, second: dict[str, Any]
) -> None:
    await ask(gw, "How do I reset my password?")
    kwargs = dict(second)
    if "messages" in kwargs:
        kwargs["messages"] = [*kwargs["messages"], *user("How can I reset my password?")]
    _, status, _ = await ask(gw, "How can I reset my password?", **kwargs)
    assert status == "SEMANTIC MISS", change
    # and the original partition still hits
    assert (await ask(gw, "How can I reset my password?"))[1] == "SEMANTIC HIT"


async def test_questions_longer_than_the_model_reads_are_only_cached_exactly(
    tmp_path: Path,
) -> None:
    async with Gateway(settings({"path": str(tmp_path / "store"), "max_chars": 10_000})) as gw:
        padding = "please " * 300  # past the 256 tokens the model reads
        await ask(gw, padding + "tell me about apples")
        assert (await ask(gw, padding + "tell me about pears"))[1] == "SEMANTIC MISS"
        assert (await ask(gw, padding + "tell me about apples"))[1] == "HIT"


async def test_closer_entries_of_other_partitions_do_not_hide_this_ones(gw: Gateway) -> None:
    await ask(gw, "How do I reset my password?")
    for number in range(20):  # the very question, in 20 other namespaces: nearer than ours
        options = CallOptions(provider="mock", cache_namespace=f"team-{number}")
        await ask(gw, "How can I reset my password?", options=options)
    await gw.plugin("semantic-cache").flush()
    text, status, _ = await ask(gw, "How can I reset my password?")
    assert (text, status) == ("[mock] you said: How do I reset my password?", "SEMANTIC HIT")


async def test_expired_entries_are_never_served_and_are_pruned(tmp_path: Path) -> None:
    plugin_settings = {"path": str(tmp_path / "store"), "prune_interval": 0.2}
    async with Gateway(settings(plugin_settings)) as gw:
        short = {"cache": {"mode": "semantic", "max_age": 0.5}}
        await ask(gw, "How do I reset my password?", config=short)
        assert (await ask(gw, "How can I reset my password?", config=short))[1] == "SEMANTIC HIT"
        store = gw.plugin("semantic-cache").store
        assert await asyncio.to_thread(store.count) == 1
        await asyncio.sleep(0.8)
        text, status, _ = await ask(gw, "How can I reset my password?", config=short)
        assert (text, status) == ("[mock] you said: How can I reset my password?", "SEMANTIC MISS")
        # the request's own max_age is a ceiling on an entry stored with a longer one
        await ask(gw, "What does a gateway do?")
        tight = {"cache": {"mode": "semantic", "max_age": 0.3}}
        await asyncio.sleep(0.5)
        assert (await ask(gw, "What is the job of a gateway?", config=tight))[1] == "SEMANTIC MISS"
        await asyncio.sleep(0.5)
        assert await asyncio.to_thread(store.count) == 1  # only the 60 s entry is left


async def test_force_refresh_skips_the_lookup_and_stores_the_new_answer(gw: Gateway) -> None:
    await ask(gw, "How do I reset my password?")
    refresh = CallOptions(provider="mock", cache_force_refresh=True)
    text, status, _ = await ask(gw, "How can I reset my password?", options=refresh)
    assert (text, status) == ("[mock] you said: How can I reset my password?", "REFRESH")
    assert (await ask(gw, "How can I reset my password?"))[:2] == (text, "HIT")


async def test_streams_are_replayed(gw: Gateway) -> None:
    async def stream(question: str) -> tuple[list[str], str]:
        chunks = await gw.chat.completions.create(
            model="mock-1", messages=user(question), stream=True, config=SEMANTIC,
            options=CallOptions(provider="mock"),
        )  # fmt: skip
        parts = [c.choices[0].delta.content or "" async for c in chunks if c.choices]
        return parts, chunks.hookgate.cache_status

    first, status = await stream("How do I reset my password?")
    assert status == "SEMANTIC MISS" and "".join(first).endswith("How do I reset my password?")
    assert await stream("How can I reset my password?") == (first, "SEMANTIC HIT")
    # a stored stream never answers a JSON request, nor the other way round
    assert (await ask(gw, "How can I reset my password?"))[1] == "SEMANTIC MISS"


async def test_with_the_exact_cache_exact_repeats_are_its_hits(tmp_path: Path) -> None:
    both = settings({"path": str(tmp_path / "store")})
    both["gateway"]["plugins"] = ["mock", "cache", "semantic-cache"]
    async with Gateway(both) as gw:
        assert (await ask(gw, "How do I reset my password?"))[1] == "SEMANTIC MISS"
        assert (await ask(gw, "How do I reset my password?"))[1] == "HIT"
        text, status, similarity = await ask(gw, "How can I reset my password?")
        assert (text, status) == ("[mock] you said: How do I reset my password?", "SEMANTIC HIT")
        assert similarity is not None
        simple = {"cache": {"mode": "simple", "max_age": 60}}
        assert (await ask(gw, "How can I reset it?", config=simple))[1] == "MISS"


async def test_a_broken_stream_is_not_stored(gw: Gateway) -> None:
    config = {**SEMANTIC, "provider": "mock", "mock": {"drop_stream_after": 3}}
    chunks = await gw.chat.completions.create(
        model="mock-1", messages=user("How do I reset my password?"), stream=True,
        config=config, options=CallOptions(provider="mock"),
    )  # fmt: skip
    with pytest.raises(Exception, match="closed the connection"):
        async for _ in chunks:
            pass
    plugin = gw.plugin("semantic-cache")
    await plugin.flush()
    assert await asyncio.to_thread(plugin.store.count) == 0


async def test_failed_answers_are_not_stored(gw: Gateway) -> None:
    failing = {**SEMANTIC, "provider": "mock", "mock": {"fail_status": 500}}
    with pytest.raises(Exception, match="mock failure 500"):
        await ask(gw, "How do I reset my password?", config=failing)
    plugin = gw.plugin("semantic-cache")
    await plugin.flush()
    assert await asyncio.to_thread(plugin.store.count) == 0


async def test_the_http_answer_carries_status_and_similarity(gw: Gateway, serve) -> None:
    headers = {"x-portkey-provider": "mock", "x-portkey-config": json.dumps(SEMANTIC)}
    with serve(gw) as server:
        async with httpx.AsyncClient(base_url=server.url, headers=headers) as client:
            for question in ("How do I reset my password?", "How can I reset my password?"):
                answer = await client.post(
                    "/v1/chat/completions", json={"model": "mock-1", "messages": user(question)}
                )
    assert answer.status_code == 200
    assert answer.headers["x-portkey-cache-status"] == "SEMANTIC HIT"
    assert 0.85 <= float(answer.headers["x-hookgate-cache-similarity"]) < 1


async def test_a_shared_chroma_server_serves_every_gateway(chroma_server: ChromaServer) -> None:
    table = {"chroma_url": chroma_server.url, "collection_prefix": f"shared-{free_port()}"}
    async with Gateway(settings(table)) as one, Gateway(settings(table)) as two:
        await ask(one, "How do I cancel my subscription?")
        await one.plugin("semantic-cache").flush()
        text, status, _ = await ask(two, "How can I cancel my subscription?")
        assert (text, status) == (
            "[mock] you said: How do I cancel my subscription?",
            "SEMANTIC HIT",
        )


async def test_an_unreachable_store_is_a_miss_and_a_warning() -> None:
    table = {"chroma_url": f"http://127.0.0.1:{free_port()}"}
    with structlog.testing.capture_logs() as logs:
        async with Gateway(settings(table)) as gw:
            for _ in range(2):
                text, status, _ = await ask(gw, "How do I reset my password?")
                assert (text, status) == (
                    "[mock] you said: How do I reset my password?",
                    "SEMANTIC MISS",
                )
    unavailable = [e["log_level"] for e in logs if e["event"] == "semantic_cache_store_unavailable"]
    # start-up, then each lookup and each store failed; one warning per interval, then info
    assert unavailable == ["warning", "info", "info", "info", "info"]


async def test_a_hanging_store_is_a_miss_after_the_lookup_timeout() -> None:
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        table = {"chroma_url": f"http://127.0.0.1:{port}", "lookup_timeout": 0.3}
        with structlog.testing.capture_logs() as logs:
            async with Gateway(settings({**table, "store_timeout": 0.3})) as gw:
                started = time.perf_counter()
                text, status, _ = await ask(gw, "How do I reset my password?")
                elapsed = time.perf_counter() - started
    assert (text, status) == ("[mock] you said: How do I reset my password?", "SEMANTIC MISS")
    assert elapsed < 3
    assert "TimeoutError" in next(
        e["error"] for e in logs if e["event"] == "semantic_cache_store_unavailable"
    )


async def test_a_failing_embedding_endpoint_is_a_miss_and_a_warning(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    table = {
        "path": str(tmp_path / "store"),
        "embedder": "openai",
        "embedding_base_url": fake_openai.url,
        "embedding_model": "text-embedding-3-small",
    }
    async with Gateway(settings(table)) as gw:
        fake_openai.script(503)
        with structlog.testing.capture_logs() as logs:
            assert (await ask(gw, "hello")) == ("[mock] you said: hello", "SEMANTIC MISS", None)
        assert [e["event"] for e in logs if e["log_level"] == "warning"] == [
            "semantic_cache_embedder_unavailable"
        ]
        # the endpoint's vectors are used: fake_openai embeds every text alike
        assert (await ask(gw, "bonjour"))[:2] == ("[mock] you said: hello", "SEMANTIC HIT")
    calls = fake_openai.calls("/v1/embeddings")
    assert [c.json["input"] for c in calls] == [["hello"], ["hello"], ["bonjour"]]


async def test_embeddings_through_the_gateways_own_provider(tmp_path: Path) -> None:
    table = {
        "path": str(tmp_path / "store"),
        "embedder": "gateway",
        "embedding_provider": "mock",
        "embedding_model": "mock-embed",
    }
    async with Gateway(settings(table)) as gw:
        await ask(gw, "How do I reset my password?")
        # the mock's vectors are hashes of the text: only the same text is similar
        assert (await ask(gw, "How can I reset my password?"))[1] == "SEMANTIC MISS"
        await ask(gw, "Hello", options=CallOptions(provider="mock", cache_namespace="a"))
        plugin = gw.plugin("semantic-cache")
        await plugin.flush()
        assert await asyncio.to_thread(plugin.store.count) == 3


_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from hookgate import CallOptions, Gateway
    from tests.plugins.semantic_cache.conftest import settings

    async def main():
        async with Gateway(settings({"path": sys.argv[1]})) as gw:
            if sys.argv[2] == "write":
                await gw.chat.completions.create(
                    model="mock-1",
                    messages=[{"role": "user", "content": "How do I reset my password?"}],
                    config={"cache": {"mode": "semantic", "max_age": 60}},
                    options=CallOptions(provider="mock"),
                )
            else:
                await asyncio.sleep(30)

    asyncio.run(main())
    """
)


def _python(*args: str, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _WRITER, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


async def test_entries_survive_a_restart(tmp_path: Path) -> None:
    folder = str(tmp_path / "store")
    writer = _python(folder, "write")
    _, err = await asyncio.to_thread(writer.communicate, timeout=60)
    assert writer.returncode == 0, err
    async with Gateway(settings({"path": folder})) as gw:
        text, status, _ = await ask(gw, "How can I reset my password?")
    assert (text, status) == ("[mock] you said: How do I reset my password?", "SEMANTIC HIT")


async def test_a_second_process_may_not_share_the_folder(tmp_path: Path) -> None:
    folder = str(tmp_path / "store")
    async with Gateway(settings({"path": folder})):
        second = _python(folder, "write")
        _, err = await asyncio.to_thread(second.communicate, timeout=60)
    assert second.returncode != 0
    assert "SettingsError" in err and "is in use by process" in err and "chroma_url" in err
    with pytest.raises(SettingsError, match="is in use by process"):
        async with Gateway(settings({"path": folder})), Gateway(settings({"path": folder})):
            pass


async def test_a_process_may_run_without_the_folder_when_told_to(tmp_path: Path) -> None:
    folder = str(tmp_path / "store")
    table = {"path": folder, "on_folder_in_use": "disable"}
    async with Gateway(settings(table)) as first:
        with structlog.testing.capture_logs() as logs:
            async with Gateway(settings(table)) as second:
                text, status, _ = await ask(second, "How do I reset my password?")
        assert (text, status) == ("[mock] you said: How do I reset my password?", "SEMANTIC MISS")
        assert any(e["event"] == "semantic_cache_disabled" for e in logs)
        await ask(first, "How do I reset my password?")
        assert (await ask(first, "How can I reset my password?"))[1] == "SEMANTIC HIT"


def test_settings_are_checked() -> None:
    with pytest.raises(SettingsError, match="embedding_model"):
        Gateway(settings({"embedder": "openai"}))
    with pytest.raises(SettingsError, match="treshold"):
        Gateway(settings({"treshold": 0.9}))


def test_importing_the_plugin_imports_no_heavy_library() -> None:
    code = (
        "import sys, hookgate_semantic_cache; "
        "print(sorted(m for m in ('chromadb', 'onnxruntime', 'tokenizers', 'numpy') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

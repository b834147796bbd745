"""Third-party strategy, cache and provider plugins work beside the built-in ones, through
the contracts the core states: strategies order a group's targets in pre_request, pruning is
a decision the core applies, the core alone reports cache statuses, retry exhaustion is on
the core's attempt records."""

from __future__ import annotations

import pytest
from hookgate import ConfigError, Gateway, ProviderError

MODULE = "tests.core.third_party_plugins"
HELLO = [{"role": "user", "content": "hi"}]


LOCAL = {
    "round-robin": "RoundRobin",
    "in-order": "InOrder",
    "memo": "MemoCache",
    "loose": "LooseCache",
    "echo": "Echo",
}


@pytest.fixture
def gateway(write_toml):
    def make(*names: str) -> Gateway:
        enabled = ", ".join(f'"{n}"' for n in names)
        tables = "".join(
            f'[plugins.{n}]\nuse = "{MODULE}:{LOCAL[n]}"\n' for n in names if n in LOCAL
        )
        text = f'[gateway]\nplugins = [{enabled}]\ndefault_provider = "echo"\n{tables}'
        return Gateway.from_toml(write_toml(text, f"{'-'.join(names)}.toml"))

    return make


def echo(say: str, **options) -> dict:
    return {"provider": "echo", "say": say, **options}


async def ask(gw: Gateway, config: dict, content: str = "hi"):
    return await gw.chat.completions.create(
        model="m", messages=[{"role": "user", "content": content}], config=config
    )


async def test_a_strategy_plugin_orders_its_groups_beside_the_fallback_plugin(gateway):
    gw = gateway("echo", "retry", "fallback", "round-robin")
    config = {"strategy": {"mode": "round_robin"}, "targets": [echo("one"), echo("two")]}
    async with gw:
        answers = [await ask(gw, config) for _ in range(4)]
        # the built-in mode still works in the same deployment
        fallback = {"strategy": {"mode": "fallback"}, "targets": [echo("x", fail=503), echo("y")]}
        rescued = await ask(gw, fallback)
    assert [a.choices[0].message.content for a in answers] == ["one", "two", "one", "two"]
    assert [a.hookgate.last_used_option for a in answers][:2] == [
        "config.targets[0]",
        "config.targets[1]",
    ]
    assert rescued.choices[0].message.content == "y"


async def test_a_strategy_that_moves_on_falls_back_in_turn(gateway):
    gw = gateway("echo", "round-robin")
    config = {
        "strategy": {"mode": "round_robin"},
        "targets": [echo("one", fail=503), echo("two"), echo("three")],
    }
    async with gw:
        first = await ask(gw, config)  # starts at one, which fails: two answers
        second = await ask(gw, config)  # starts at two
    assert first.choices[0].message.content == "two"
    assert [a.path for a in first.hookgate.attempts] == ["config.targets[0]", "config.targets[1]"]
    assert first.hookgate.attempts[0].decision.group == "config"
    assert second.choices[0].message.content == "two"
    assert len(second.hookgate.attempts) == 1


async def test_a_strategy_that_leaves_the_order_alone_gets_config_order(gateway):
    gw = gateway("echo", "in-order")
    config = {
        "strategy": {"mode": "in_order"},
        "targets": [echo("a", fail=500), echo("b", fail=502), echo("c")],
    }
    async with gw:
        answer = await ask(gw, config)
    assert answer.choices[0].message.content == "c"
    assert [a.path for a in answer.hookgate.attempts] == [
        "config.targets[0]",
        "config.targets[1]",
        "config.targets[2]",
    ]


async def test_a_mode_nobody_declares_is_a_400_naming_the_plugin_to_enable(gateway):
    gw = gateway("echo")
    async with gw:
        with pytest.raises(ConfigError) as fallback:
            await ask(gw, {"strategy": {"mode": "fallback"}, "targets": [echo("a")]})
        with pytest.raises(ConfigError) as unknown:
            await ask(gw, {"strategy": {"mode": "zigzag"}, "targets": [echo("a")]})
        with pytest.raises(ConfigError) as cache:
            await ask(gw, {"cache": {"mode": "semantic"}, **echo("a")})
    assert fallback.value.http_status == 400
    assert str(fallback.value) == (
        "config.strategy.mode is 'fallback', but no enabled plugin provides it: "
        "enable the 'fallback' plugin in [gateway] plugins"
    )
    assert "'zigzag', but no enabled plugin provides it: no installed plugin declares it" in str(
        unknown.value
    )
    assert str(cache.value) == (
        "config.cache.mode is 'semantic', but no enabled plugin provides it: "
        "enable the 'semantic-cache' plugin in [gateway] plugins"
    )
    assert cache.value.code == "cache_mode_not_enabled"


async def test_a_third_party_cache_does_not_change_what_the_built_in_one_reports(gateway):
    alone = gateway("echo", "cache")
    beside = gateway("echo", "memo", "cache")  # listed first, declaring its own mode
    simple = {"cache": {"mode": "simple"}, **echo("a")}
    memo = {"cache": {"mode": "memo"}, **echo("a")}
    async with alone:
        reported_alone = [(await ask(alone, simple)).hookgate.cache_status for _ in range(2)]
    async with beside:
        reported_beside = [(await ask(beside, simple)).hookgate.cache_status for _ in range(2)]
        reported_memo = [(await ask(beside, memo)).hookgate.cache_status for _ in range(2)]
        other = await ask(beside, {"cache": {"mode": "memo"}, **echo("a")}, content="else")
    assert reported_alone == reported_beside == ["MISS", "HIT"]
    assert reported_memo == ["MISS", "HIT"]  # the core reports the third party's the same way
    assert other.hookgate.cache_status == "MISS"


async def test_exact_caches_answer_before_similar_ones_whatever_the_listing(gateway):
    gw = gateway("echo", "loose", "cache")  # the similarity cache listed first
    semantic = {"cache": {"mode": "semantic"}, **echo("a")}
    async with gw:
        first = await ask(gw, semantic, "what is hookgate?")
        exact = await ask(gw, semantic, "what is hookgate?")
        similar = await ask(gw, semantic, "tell me about hookgate")
    assert first.hookgate.cache_status == "SEMANTIC MISS"
    assert exact.hookgate.cache_status == "HIT"  # the exact cache answered before loose
    assert exact.hookgate.cache_similarity is None
    assert similar.hookgate.cache_status == "SEMANTIC HIT"
    assert similar.hookgate.cache_similarity == 0.9


async def test_retry_exhaustion_on_a_third_party_provider_is_on_the_attempt_records(gateway):
    gw = gateway("echo", "retry", "fallback")
    async with gw:
        ctx = gw.context(
            "chat.completions",
            {"model": "m", "messages": HELLO},
            config={"retry": {"attempts": 2}, **echo("a", fail=503)},
        )
        with pytest.raises(ProviderError):
            await gw.handle(ctx)
    assert [a.retry for a in ctx.attempts] == [0, 1, 2]
    assert [a.last_retry for a in ctx.attempts] == [False, False, True]
    assert [a.decision.action if a.decision else None for a in ctx.attempts] == [
        "retry",
        "retry",
        None,
    ]
    assert ctx.retry_attempt_count == -1


async def test_a_third_party_http_provider_on_the_base_class(write_toml, fake_openai):
    from hookgate import ProviderError as Failed

    gw = Gateway.from_toml(
        write_toml(
            f"""
            [gateway]
            plugins = ["acme", "retry", "fallback", "mock"]
            default_provider = "acme"

            [plugins.acme]
            use = "{MODULE}:Acme"
            base_url = "{fake_openai.url}"
            api_key = "acme-deployment-key"
            headers = {{ x-team = "blue" }}
            """
        )
    )
    fallback = {
        "strategy": {"mode": "fallback"},
        "targets": [{"provider": "acme", "api_key": "acme-caller-key"}, {"provider": "mock"}],
    }
    async with gw:
        answer = await gw.chat.completions.create(model="m", messages=HELLO)
        chunks = await gw.chat.completions.create(model="m", messages=HELLO, stream=True)
        streamed = [chunk async for chunk in chunks]
        fake_openai.script(503)
        rescued = await gw.chat.completions.create(model="m", messages=HELLO, config=fallback)
        with pytest.raises(Failed) as unserved:
            await gw.embeddings.create(model="m", input="hi")
    assert answer.choices[0].message.content
    assert streamed and streamed[-1].choices[0].finish_reason == "stop"
    assert rescued.hookgate.provider == "mock"
    first, _, failed = fake_openai.calls()
    assert first.headers["x-acme-key"] == "acme-deployment-key"
    assert first.headers["x-team"] == "blue"
    assert "authorization" not in {k.lower() for k in first.headers}
    assert failed.headers["x-acme-key"] == "acme-caller-key"
    assert unserved.value.http_status == 404
    assert "the acme provider does not serve embeddings" in str(unserved.value)
    assert gw.plugin("acme").client.provider == "acme"

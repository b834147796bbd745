"""The exact cache through the embedded API, against the fake OpenAI upstream over real HTTP,
on both backends (the in-process LRU and a real redis-server)."""

from __future__ import annotations

import asyncio

import pytest
from hookgate import CallOptions, Gateway, GatewayError, Group, SettingsError, hookimpl

from tests.support.fake_openai import Reply, chat_completion

HELLO = [{"role": "user", "content": "hello"}]
SIMPLE = {"cache": {"mode": "simple", "max_age": 60}}
BACKENDS = ["memory", "redis"]


async def ask(gw: Gateway, config=SIMPLE, options=None, **params):
    body = {"model": "gpt-4o-mini", "messages": HELLO, **params}
    return await gw.chat.completions.create(config=config, options=options, **body)


async def stream_chunks(gw: Gateway, config=SIMPLE, **params):
    stream = await ask(gw, config, stream=True, **params)
    chunks = [chunk.model_dump() async for chunk in stream]
    return chunks, stream.hookgate


@pytest.mark.parametrize("backend", BACKENDS)
async def test_second_identical_request_is_a_hit_without_calling_upstream(
    cache_gateway, fake_openai, backend
):
    async with cache_gateway(backend) as gw:
        first = await ask(gw)
        second = await ask(gw)
    assert first.hookgate.cache_status == "MISS"
    assert second.hookgate.cache_status == "HIT"
    assert second.model_dump() == first.model_dump()
    assert second.hookgate.provider is None  # nobody upstream answered
    assert second.hookgate.attempts == ()
    assert len(fake_openai.calls()) == 1


async def test_requests_that_do_not_ask_are_not_cached(cache_gateway, fake_openai):
    async with cache_gateway() as gw:
        first = await ask(gw, config=None)
        second = await ask(gw, config=None)
        asked = await ask(gw)
    assert [first.hookgate.cache_status, second.hookgate.cache_status] == ["DISABLED"] * 2
    assert asked.hookgate.cache_status == "MISS"  # nothing was stored for the others
    assert len(fake_openai.calls()) == 3


async def test_default_mode_caches_every_request(cache_gateway, fake_openai):
    async with cache_gateway(default_mode="simple") as gw:
        statuses = [(await ask(gw, config=None)).hookgate.cache_status for _ in range(2)]
    assert statuses == ["MISS", "HIT"]
    assert len(fake_openai.calls()) == 1


@pytest.mark.parametrize("backend", BACKENDS)
async def test_entries_expire_after_max_age_seconds(cache_gateway, fake_openai, backend):
    short = {"cache": {"mode": "simple", "max_age": 0.3}}
    async with cache_gateway(backend) as gw:
        assert (await ask(gw, short)).hookgate.cache_status == "MISS"
        assert (await ask(gw, short)).hookgate.cache_status == "HIT"
        await asyncio.sleep(0.45)
        assert (await ask(gw, short)).hookgate.cache_status == "MISS"
    assert len(fake_openai.calls()) == 2


async def test_a_request_never_accepts_an_entry_older_than_its_max_age(cache_gateway):
    async with cache_gateway() as gw:
        await ask(gw, {"cache": {"mode": "simple", "max_age": 60}})
        await asyncio.sleep(0.25)
        picky = await ask(gw, {"cache": {"mode": "simple", "max_age": 0.2}})
        relaxed = await ask(gw, {"cache": {"mode": "simple", "max_age": 60}})
    assert picky.hookgate.cache_status == "MISS"
    assert relaxed.hookgate.cache_status == "HIT"


CHANGES = {
    "temperature": {"temperature": 0.3},
    "top_p": {"top_p": 0.5},
    "max_tokens": {"max_tokens": 7},
    "tools": {
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    },
    "tool_choice": {"tool_choice": "none"},
    "response_format": {"response_format": {"type": "json_object"}},
    "seed": {"seed": 42},
    "stop": {"stop": ["\n"]},
    "n": {"n": 2},
    "logit_bias": {"logit_bias": {"50256": -100}},
    "unknown_param": {"brand_new_param": {"x": 1}},
    "model": {"model": "gpt-4o"},
    "messages": {"messages": [{"role": "user", "content": "hello!"}]},
    "stream_options": {"stream_options": {"include_usage": True}},
}


@pytest.mark.parametrize("change", list(CHANGES.values()), ids=list(CHANGES))
async def test_every_parameter_that_shapes_the_answer_changes_the_key(cache_gateway, change):
    base = {"temperature": 0.0, "top_p": 1.0, "max_tokens": 20, "seed": 1, "stop": None}
    async with cache_gateway() as gw:
        assert (await ask(gw, **base)).hookgate.cache_status == "MISS"
        changed = {**base, **change}
        assert (await ask(gw, **changed)).hookgate.cache_status == "MISS"
        assert (await ask(gw, **changed)).hookgate.cache_status == "HIT"
        assert (await ask(gw, **base)).hookgate.cache_status == "HIT"


PLANS = {
    "provider": {"provider": "mock"},
    "custom_host": {"provider": "openai", "custom_host": "CUSTOM"},
    "override_params": {"provider": "openai", "override_params": {"temperature": 0.9}},
    "fallback_targets": {
        "strategy": {"mode": "fallback"},
        "targets": [{"provider": "openai"}, {"provider": "mock"}],
    },
}


class FallbackStrategy:
    """Lets plans use ``strategy: fallback`` (the core then tries targets in order)."""

    strategies = ("fallback",)


@pytest.mark.parametrize("plan", list(PLANS.values()), ids=list(PLANS))
async def test_the_routing_plan_is_part_of_the_key(cache_gateway, fake_openai, plan):
    base = {**SIMPLE, "provider": "openai"}
    if plan.get("custom_host") == "CUSTOM":  # the same fake, named differently
        plan = {**plan, "custom_host": f"http://localhost:{fake_openai.port}/v1"}
        # A host the request chooses needs the caller's own key: both requests carry the
        # same one, so only the host differs.
        plan["api_key"] = base["api_key"] = "sk-caller"
    other = {**SIMPLE, **plan}
    gw = cache_gateway()
    gw.register(FallbackStrategy(), "fallback")
    async with gw:
        assert (await ask(gw, base)).hookgate.cache_status == "MISS"
        assert (await ask(gw, other)).hookgate.cache_status == "MISS"
        assert (await ask(gw, other)).hookgate.cache_status == "HIT"


async def test_what_does_not_shape_the_answer_stays_out_of_the_key(cache_gateway, fake_openai):
    async with cache_gateway() as gw:
        await ask(gw, options=CallOptions(trace_id="t-1", metadata={"team": "a"}), user="u1")
        again = await ask(
            gw,
            options=CallOptions(trace_id="t-2", metadata={"team": "b"}),
            user="u2",
            stream=False,
        )
    assert again.hookgate.cache_status == "HIT"
    assert again.hookgate.trace_id == "t-2"
    assert len(fake_openai.calls()) == 1


class PickTarget:
    """A load-balance strategy that picks the target it is told to."""

    strategies = ("loadbalance",)

    def __init__(self) -> None:
        self.index = 0

    @hookimpl
    def pre_request(self, ctx) -> None:
        if isinstance(ctx.plan.root, Group):
            ctx.route_order[ctx.plan.root.path] = [self.index]


async def test_the_load_balance_pick_and_weights_stay_out_of_the_key(cache_gateway, fake_openai):
    picker = PickTarget()
    balanced = {
        **SIMPLE,
        "strategy": {"mode": "loadbalance"},
        "targets": [{"provider": "openai", "weight": 1}, {"provider": "openai", "weight": 3}],
    }
    reweighted = {**balanced, "targets": [{"provider": "openai", "weight": 5}] * 2}
    async with cache_gateway() as gw:
        gw.register(picker, "picker")
        first = await ask(gw, balanced)
        picker.index = 1
        second = await ask(gw, balanced)
        third = await ask(gw, reweighted)
    assert first.hookgate.last_used_option == "config.targets[0]"
    assert second.hookgate.cache_status == third.hookgate.cache_status == "HIT"
    assert len(fake_openai.calls()) == 1


async def test_namespaces_are_separate_caches(cache_gateway):
    async with cache_gateway() as gw:
        plain = await ask(gw)
        spaced = await ask(gw, options=CallOptions(cache_namespace="team-a"))
        again = await ask(gw, options=CallOptions(cache_namespace="team-a"))
        other = await ask(gw, options=CallOptions(cache_namespace="team-b"))
    statuses = [r.hookgate.cache_status for r in (plain, spaced, again, other)]
    assert statuses == ["MISS", "MISS", "HIT", "MISS"]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_callers_with_different_keys_never_share_entries(cache_gateway, fake_openai, backend):
    async with cache_gateway(backend) as gw:
        a1 = await ask(gw, options=CallOptions(api_key="sk-tenant-a-123456"))
        b1 = await ask(gw, options=CallOptions(api_key="sk-tenant-b-123456"))
        a2 = await ask(gw, options=CallOptions(api_key="sk-tenant-a-123456"))
    assert [a1.hookgate.cache_status, b1.hookgate.cache_status] == ["MISS", "MISS"]
    assert a2.hookgate.cache_status == "HIT"
    assert [c.headers["authorization"] for c in fake_openai.calls()] == [
        "Bearer sk-tenant-a-123456",
        "Bearer sk-tenant-b-123456",
    ]


async def test_sharing_across_keys_when_the_deployment_says_so(cache_gateway, fake_openai):
    async with cache_gateway(share_across_api_keys=True) as gw:
        await ask(gw, options=CallOptions(api_key="sk-tenant-a-123456"))
        shared = await ask(gw, options=CallOptions(api_key="sk-tenant-b-123456"))
    assert shared.hookgate.cache_status == "HIT"
    assert len(fake_openai.calls()) == 1


@pytest.mark.parametrize("backend", BACKENDS)
async def test_force_refresh_skips_the_lookup_and_stores_the_fresh_answer(
    cache_gateway, fake_openai, backend
):
    fresh = chat_completion({"messages": [{"role": "user", "content": "a newer answer"}]})
    async with cache_gateway(backend) as gw:
        first = await ask(gw)
        fake_openai.script(Reply(json=fresh))
        refreshed = await ask(gw, options=CallOptions(cache_force_refresh=True))
        after = await ask(gw)
    assert first.choices[0].message.content == "fake: hello"
    assert refreshed.hookgate.cache_status == "REFRESH"
    assert refreshed.choices[0].message.content == "fake: a newer answer"
    assert after.hookgate.cache_status == "HIT"
    assert after.choices[0].message.content == "fake: a newer answer"
    assert len(fake_openai.calls()) == 2


async def test_force_refresh_without_a_cache_block_stays_disabled(cache_gateway):
    async with cache_gateway() as gw:
        answer = await ask(gw, config=None, options=CallOptions(cache_force_refresh=True))
    assert answer.hookgate.cache_status == "DISABLED"


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_stream_is_replayed_chunk_for_chunk(cache_gateway, fake_openai, backend):
    async with cache_gateway(backend) as gw:
        original, first = await stream_chunks(gw, stream_options={"include_usage": True})
        replayed, second = await stream_chunks(gw, stream_options={"include_usage": True})
        plain = await ask(gw)  # a non-streamed request is an entry of its own
    assert (first.cache_status, second.cache_status) == ("MISS", "HIT")
    assert replayed == original
    assert "".join(c["choices"][0]["delta"]["content"] or "" for c in replayed if c["choices"]) == (
        "fake: hello"
    )
    assert replayed[-1]["usage"]["total_tokens"] > 0
    assert plain.hookgate.cache_status == "MISS"
    assert len(fake_openai.calls()) == 2


async def test_a_stream_that_failed_midway_is_not_cached(cache_gateway, fake_openai):
    fake_openai.script(Reply(drop_after=2))
    async with cache_gateway() as gw:
        with pytest.raises(GatewayError):
            await stream_chunks(gw)
        chunks, outcome = await stream_chunks(gw)
        _, replay = await stream_chunks(gw)
    assert outcome.cache_status == "MISS"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert replay.cache_status == "HIT"
    assert len(fake_openai.calls()) == 2


async def test_errors_are_never_cached(cache_gateway, fake_openai):
    fake_openai.script(500)
    async with cache_gateway() as gw:
        with pytest.raises(GatewayError) as err:
            await ask(gw)
        answer = await ask(gw)
    assert err.value.http_status == 500
    assert answer.hookgate.cache_status == "MISS"
    assert answer.choices[0].message.content == "fake: hello"
    assert len(fake_openai.calls()) == 2


async def test_embeddings_and_completions_are_cached(cache_gateway, fake_openai):
    async with cache_gateway() as gw:
        for _ in range(2):
            embedded = await gw.embeddings.create(
                model="text-embedding-3-small", input=["a", "b"], config=SIMPLE
            )
            completed = await gw.completions.create(model="i", prompt="say", config=SIMPLE)
    assert embedded.hookgate.cache_status == completed.hookgate.cache_status == "HIT"
    assert len(embedded.data) == 2
    assert completed.choices[0].text == "fake: say"
    assert len(fake_openai.calls("/v1/embeddings")) == len(fake_openai.calls("/v1/completions"))
    assert len(fake_openai.calls("/v1/embeddings")) == 1


async def test_multiple_choices_and_sampling_are_cached_only_as_configured(cache_gateway):
    async with cache_gateway(cache_multiple_choices=False, cache_sampled=False) as gw:
        many = [await ask(gw, n=2, temperature=0) for _ in range(2)]
        sampled = [await ask(gw, temperature=0.7) for _ in range(2)]
        default_temperature = await ask(gw)
        greedy = [await ask(gw, temperature=0) for _ in range(2)]
        seeded = [await ask(gw, temperature=0.7, seed=3) for _ in range(2)]
    assert [r.hookgate.cache_status for r in many + sampled] == ["DISABLED"] * 4
    assert default_temperature.hookgate.cache_status == "DISABLED"  # OpenAI samples at 1
    assert [r.hookgate.cache_status for r in greedy + seeded] == ["MISS", "HIT"] * 2


async def test_by_default_sampled_and_multi_choice_requests_are_cached(cache_gateway):
    async with cache_gateway() as gw:
        answers = [await ask(gw, n=2, temperature=0.9) for _ in range(2)]
    assert [r.hookgate.cache_status for r in answers] == ["MISS", "HIT"]


async def test_the_memory_cache_evicts_the_least_recently_used(cache_gateway, fake_openai):
    async with cache_gateway(max_entries=2) as gw:
        await ask(gw, seed=1)
        await ask(gw, seed=2)
        assert (await ask(gw, seed=1)).hookgate.cache_status == "HIT"  # 1 is now the newest
        await ask(gw, seed=3)  # evicts 2
        statuses = [(await ask(gw, seed=s)).hookgate.cache_status for s in (1, 3, 2)]
    assert statuses == ["HIT", "HIT", "MISS"]


async def test_answers_over_the_size_limit_are_not_stored(cache_gateway):
    async with cache_gateway(max_entry_bytes=200) as gw:
        statuses = [(await ask(gw)).hookgate.cache_status for _ in range(2)]
    assert statuses == ["MISS", "MISS"]


class SemanticStandIn:
    """A similarity cache that never hits. No trylast: the core asks exact caches first."""

    cache_modes = ("semantic",)
    cache_match = "similar"

    def __init__(self) -> None:
        self.lookups = 0

    @hookimpl
    async def cache_lookup(self, ctx):
        self.lookups += 1
        if ctx.plan.root.cache is not None and ctx.plan.root.cache.mode == "semantic":
            ctx.cache_consulted()


async def test_semantic_mode_exact_hits_first_and_leaves_misses_to_the_semantic_cache(
    cache_gateway,
):
    semantic = {"cache": {"mode": "semantic", "max_age": 60}}
    stand_in = SemanticStandIn()
    gw = cache_gateway()
    gw.register(stand_in, "semantic")
    async with gw:
        first = await ask(gw, semantic)
        second = await ask(gw, semantic)
    assert first.hookgate.cache_status == "SEMANTIC MISS"
    assert second.hookgate.cache_status == "HIT"
    assert stand_in.lookups == 1  # the exact hit answered first


async def test_semantic_mode_without_a_semantic_cache_names_the_plugin_to_enable(
    cache_gateway,
):
    semantic = {"cache": {"mode": "semantic", "max_age": 60}}
    async with cache_gateway() as gw:
        with pytest.raises(GatewayError) as err:
            await ask(gw, semantic)
    assert err.value.http_status == 400
    assert err.value.to_dict()["error"]["message"] == (
        "config.cache.mode is 'semantic', but no enabled plugin provides it: "
        "enable the 'semantic-cache' plugin in [gateway] plugins"
    )


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('backend = "disk"', "backend"),
        ('url = "http://127.0.0.1:1"', "url: Value error, must start with redis://"),
        ('url = "redis://127.0.0.1:port/0"', "url: Value error, not a valid URL"),
        ("max_entries = 0", "max_entries"),
        ("ttl = 3", "ttl"),
    ],
)
def test_bad_settings_name_the_key(make_gateway, table, message):
    with pytest.raises(SettingsError) as err:
        make_gateway(f'[gateway]\nplugins = ["mock", "cache"]\n[plugins.cache]\n{table}\n')
    assert "[plugins.cache]" in str(err.value)
    assert message in str(err.value)


async def test_headers_the_plan_forwards_upstream_are_part_of_the_key(cache_gateway, fake_openai):
    forwarding = {**SIMPLE, "provider": "openai", "forward_headers": ["openai-beta"]}
    async with cache_gateway() as gw:
        statuses = [
            (await ask(gw, forwarding, CallOptions(headers=headers))).hookgate.cache_status
            for headers in (
                {"openai-beta": "assistants=v2"},
                {"openai-beta": "assistants=v1"},
                {"openai-beta": "assistants=v2", "x-unrelated": "1"},
            )
        ]
    assert statuses == ["MISS", "MISS", "HIT"]
    assert [c.headers["openai-beta"] for c in fake_openai.calls()] == [
        "assistants=v2",
        "assistants=v1",
    ]

"""One record per request, with what happened: success, failure, retry, fallback, cache, stream."""

from __future__ import annotations

import pytest
import structlog
from hookgate import CallOptions, ProviderError

from tests.plugins.logging.plugins_for_tests import CacheWith, NextTarget, RetryOnce, completion

HELLO = [{"role": "user", "content": "hello there"}]
# gpt-4o-mini list price, USD per token: input, cached input, output
MINI_IN, MINI_CACHED, MINI_OUT = 0.15e-6, 0.075e-6, 0.60e-6


async def test_success_record(logged):
    log = logged()
    async with log.gateway as gw:
        answer = await gw.chat.completions.create(
            model="gpt-4o-mini",
            messages=HELLO,
            options=CallOptions(trace_id="trace-ok", metadata={"team": "search"}),
        )
        record = await log.one()
    usage = answer.usage
    assert record["trace_id"] == "trace-ok"
    assert record["metadata"] == {"team": "search"}
    assert record["endpoint"] == "chat.completions"
    assert record["provider"] == "mock"
    assert record["model"] == record["model_answered"] == "gpt-4o-mini"
    assert record["target"] == "config"
    assert record["status"] == 200
    assert record["stream"] is False
    assert record["cache_status"] == "DISABLED"
    assert record["timestamp"].endswith("+00:00")
    assert record["latency_ms"] >= record["upstream_ms"] >= 0
    assert record["ttft_ms"] is None
    assert [(a["path"], a["status"], a["retry"]) for a in record["attempts"]] == [
        ("config", 200, 0)
    ]
    assert record["retries"] == record["fallbacks"] == 0
    assert (record["prompt_tokens"], record["completion_tokens"], record["total_tokens"]) == (
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.total_tokens,
    )
    assert record["usage_source"] == "response"
    assert record["cost_usd"] == pytest.approx(
        usage.prompt_tokens * MINI_IN + usage.completion_tokens * MINI_OUT
    )
    assert record["error_type"] is None
    assert "request_body" not in record  # bodies only when enabled


async def test_failure_record(logged):
    log = logged()
    config = {"provider": "mock", "mock": {"fail_status": 503}}
    async with log.gateway as gw:
        with pytest.raises(ProviderError):
            await gw.chat.completions.create(model="gpt-4o-mini", messages=HELLO, config=config)
        record = await log.one()
    assert record["status"] == 503
    assert record["error_type"] == "ProviderError"
    assert "mock failure 503" in record["error_message"]
    assert [(a["status"], a["error"]) for a in record["attempts"]] == [(503, "ProviderError")]
    assert record["prompt_tokens"] is None and record["cost_usd"] is None
    assert record["completed"] is False


async def test_retry_record(logged):
    log = logged()
    log.gateway.register(RetryOnce(), "retry_once")
    config = {"provider": "mock", "mock": {"fail_status": 503, "fail_times": 1}}
    async with log.gateway as gw:
        answer = await gw.chat.completions.create(model="m", messages=HELLO, config=config)
        record = await log.one()
    assert answer.hookgate.retry_attempt_count == 1
    assert record["status"] == 200
    assert [(a["status"], a["retry"]) for a in record["attempts"]] == [(503, 0), (200, 1)]
    assert record["retries"] == 1 and record["retry_attempt_count"] == 1
    assert record["fallbacks"] == 0
    assert record["upstream_ms"] == pytest.approx(
        sum(a["latency_ms"] for a in record["attempts"]), abs=0.01
    )


async def test_fallback_record(logged):
    log = logged()
    log.gateway.register(NextTarget(), "next_target")
    config = {
        "strategy": {"mode": "fallback"},
        "targets": [
            {"provider": "mock", "mock": {"fail_status": 429}},
            {"provider": "mock", "override_params": {"model": "gpt-4o-mini"}},
        ],
    }
    async with log.gateway as gw:
        await gw.chat.completions.create(model="m-primary", messages=HELLO, config=config)
        record = await log.one()
    assert record["target"] == "config.targets[1]"
    assert [(a["path"], a["status"]) for a in record["attempts"]] == [
        ("config.targets[0]", 429),
        ("config.targets[1]", 200),
    ]
    assert record["fallbacks"] == 1 and record["retries"] == 0
    assert record["model"] == "m-primary"
    assert record["model_sent"] == record["model_answered"] == "gpt-4o-mini"
    assert record["cost_usd"] == pytest.approx(
        record["prompt_tokens"] * MINI_IN + record["completion_tokens"] * MINI_OUT
    )


async def test_cache_hit_records_the_cost_saved(logged):
    log = logged()
    log.gateway.register(
        CacheWith(completion("gpt-4o-mini", 1000, 200, cached=400), 0.97),
        "cache_with",
    )
    async with log.gateway as gw:
        await gw.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
        record = await log.one()
    assert record["cache_status"] == "SEMANTIC HIT"
    assert record["cache_similarity"] == 0.97
    assert record["provider"] is None and record["attempts"] == []
    assert record["upstream_ms"] is None
    assert record["cost_usd"] == 0.0
    assert record["cost_saved_usd"] == pytest.approx(
        600 * MINI_IN + 400 * MINI_CACHED + 200 * MINI_OUT
    )
    assert record["cached_tokens"] == 400


@pytest.mark.parametrize("include_usage", [True, False])
async def test_stream_record(logged, include_usage):
    log = logged()
    config = {"provider": "mock", "mock": {"chunk_delay_ms": 1}}
    async with log.gateway as gw:
        stream = await gw.chat.completions.create(
            model="gpt-4o-mini",
            messages=HELLO,
            stream=True,
            stream_options={"include_usage": include_usage},
            config=config,
        )
        chunks = [chunk async for chunk in stream]
        record = await log.one()
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert record["stream"] is True and record["completed"] is True
    assert 0 < record["ttft_ms"] < record["latency_ms"]
    assert record["model_answered"] == "gpt-4o-mini"
    if include_usage:
        usage = chunks[-1].usage
        assert record["usage_source"] == "stream"
        assert record["prompt_tokens"] == usage.prompt_tokens
        assert record["completion_tokens"] == usage.completion_tokens
    else:
        # no usage chunk: counted, about four characters per token
        assert record["usage_source"] == "estimated"
        assert record["completion_tokens"] == -(-len(text) // 4)
        assert record["prompt_tokens"] == -(-len("hello there") // 4)
    assert record["cost_usd"] == pytest.approx(
        record["prompt_tokens"] * MINI_IN + record["completion_tokens"] * MINI_OUT
    )


async def test_broken_stream_is_logged_with_its_error(logged):
    log = logged()
    config = {"provider": "mock", "mock": {"drop_stream_after": 3}}
    async with log.gateway as gw:
        stream = await gw.chat.completions.create(
            model="m", messages=HELLO, stream=True, config=config
        )
        with pytest.raises(ProviderError):
            async for _ in stream:
                pass
        record = await log.one()
    assert record["stream"] is True and record["completed"] is False
    assert record["error_code"] == "upstream_connection_error"
    assert record["status"] == 502


async def test_unknown_model_costs_null_and_overrides_apply(logged):
    log = logged("""
        [plugins.logging.prices."house-model"]
        input = 2.0
        output = 4.0
    """)
    async with log.gateway as gw:
        await gw.chat.completions.create(model="gpt-4o-mini-turbo-x", messages=HELLO)
        await gw.chat.completions.create(model="house-model", messages=HELLO)
        await log.flush()
    unknown, house = log.records()
    assert unknown["cost_usd"] is None  # never a guess from a similar name
    assert unknown["prompt_tokens"] is not None
    assert house["cost_usd"] == pytest.approx(
        house["prompt_tokens"] * 2e-6 + house["completion_tokens"] * 4e-6
    )


async def test_dated_snapshots_are_priced_as_their_model(logged):
    log = logged()
    async with log.gateway as gw:
        await gw.chat.completions.create(model="gpt-4o-mini-2024-07-18", messages=HELLO)
        record = await log.one()
    assert record["cost_usd"] == pytest.approx(
        record["prompt_tokens"] * MINI_IN + record["completion_tokens"] * MINI_OUT
    )


async def test_bodies_are_logged_only_when_enabled_and_capped(logged):
    log = logged("""
        log_bodies = true
        max_body_chars = 60
    """)
    long = [{"role": "user", "content": "word " * 100}]
    async with log.gateway as gw:
        await gw.chat.completions.create(model="m", messages=long)
        record = await log.one()
    assert record["request_body"].startswith('{"model":"m","messages":[{"role":"user"')
    assert len(record["request_body"]) < 120
    assert record["request_body"].endswith("more characters]")
    assert record["response_body"].startswith('{"id":"chatcmpl-mock')


async def test_console_format(logged):
    log = logged('    format = "console"\n')
    async with log.gateway as gw:
        await gw.chat.completions.create(
            model="m", messages=HELLO, options=CallOptions(trace_id="trace-console")
        )
        await log.flush()
    text = log.log_file.read_text()
    assert "gateway_request" in text and "trace_id=trace-console" in text
    assert not text.startswith("{")


async def test_the_request_log_ignores_the_apps_log_level(logged):
    from hookgate.log import configure_logging

    configure_logging("error", json=True)  # what `hookgate --log-level error serve` does
    try:
        log = logged()
        async with log.gateway as gw:
            await gw.chat.completions.create(
                model="m", messages=HELLO, options=CallOptions(trace_id="trace-quiet")
            )
            record = await log.one()
    finally:
        structlog.reset_defaults()
    assert record["trace_id"] == "trace-quiet"

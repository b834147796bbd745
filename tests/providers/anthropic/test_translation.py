"""OpenAI chat completions to an anthropic target: requests, answers, usage and errors."""

from __future__ import annotations

import base64

import pytest
from hookgate import Decision, ProviderError, hookimpl
from hookgate.errors import UpstreamConnectionError

from tests.support.fake_anthropic import Reply, message

HELLO = [{"role": "user", "content": "hello"}]
PNG = base64.b64encode(b"\x89PNG fake").decode()
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


async def test_simple_request_and_answer(gw, fake_anthropic):
    answer = await gw.chat.completions.create(model="claude-sonnet-5", messages=HELLO)
    [call] = fake_anthropic.calls()
    assert call.invalid is None
    assert call.json == {
        "model": "claude-sonnet-5",
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": 1024,  # default_max_tokens: OpenAI's request had none
    }
    assert call.headers["x-api-key"] == "sk-ant-deployment"
    assert call.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in call.headers
    assert answer.id == "msg_fake_01"
    assert answer.object == "chat.completion"
    assert answer.model == "claude-sonnet-5"
    assert answer.choices[0].message.role == "assistant"
    assert answer.choices[0].message.content == "fake: hello"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage.prompt_tokens == 1
    assert answer.usage.completion_tokens == 2
    assert answer.usage.total_tokens == 3
    assert answer.hookgate.provider == "anthropic"


async def test_every_field_is_translated(gw, fake_anthropic):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
        {"role": "user", "content": "Weather in Paris and Oslo?"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "And look at these:"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                },
                {
                    "id": "toolu_2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18 C"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": [{"type": "text", "text": "9 C"}]},
        {"role": "user", "content": "Thanks!"},
    ]
    await gw.chat.completions.create(
        model="claude-sonnet-5",
        messages=messages,
        tools=[WEATHER],
        tool_choice="required",
        parallel_tool_calls=False,
        stop="END",
        temperature=0.2,
        max_completion_tokens=300,
        max_tokens=50,  # max_completion_tokens wins, as in OpenAI's API
        user="user-42",
        seed=7,  # OpenAI-only: not sent (Anthropic rejects unknown fields)
        frequency_penalty=0.5,
    )
    [call] = fake_anthropic.calls()
    assert call.invalid is None  # the SDK's MessageCreateParams accepts it
    assert call.json == {
        "model": "claude-sonnet-5",
        "system": "Be brief.\n\nUse metric units.",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather in Paris and Oslo?"},
                    {"type": "text", "text": "And look at these:"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                    },
                    {
                        "type": "image",
                        "source": {"type": "url", "url": "https://example.com/cat.jpg"},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Checking."},
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    },
                    {
                        "type": "tool_use",
                        "id": "toolu_2",
                        "name": "get_weather",
                        "input": {"city": "Oslo"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18 C"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_2",
                        "content": [{"type": "text", "text": "9 C"}],
                    },
                    {"type": "text", "text": "Thanks!"},
                ],
            },
        ],
        "max_tokens": 300,
        "stop_sequences": ["END"],
        "temperature": 0.2,
        "tools": [
            {
                "name": "get_weather",
                "description": "Weather for a city",
                "input_schema": WEATHER["function"]["parameters"],
            }
        ],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "metadata": {"user_id": "user-42"},
    }


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"type": "tool", "name": "get_weather"},
        ),
    ],
)
async def test_tool_choice(gw, fake_anthropic, choice, expected):
    await gw.chat.completions.create(
        model="m",
        messages=HELLO,
        tools=[WEATHER],
        tool_choice=choice,
        stop=["a", "b"],
        top_p=0.9,
        max_tokens=20,
    )
    [call] = fake_anthropic.calls()
    assert call.json["tool_choice"] == expected
    assert call.json["stop_sequences"] == ["a", "b"]
    assert call.json["top_p"] == 0.9
    assert call.json["max_tokens"] == 20
    assert call.invalid is None


async def test_json_schema_response_format_is_structured_output(gw, fake_anthropic):
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    await gw.chat.completions.create(
        model="m",
        messages=HELLO,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "place", "schema": schema, "strict": True},
        },
    )
    [call] = fake_anthropic.calls()
    assert call.json["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    assert "response_format" not in call.json
    assert call.invalid is None


async def test_system_cache_control_keeps_blocks_and_override_params(gw, fake_anthropic):
    cached = {"type": "text", "text": "Long context", "cache_control": {"type": "ephemeral"}}
    config = {"provider": "anthropic", "override_params": {"model": "claude-opus-5", "top_k": 5}}
    await gw.chat.completions.create(
        model="x", messages=[{"role": "system", "content": [cached]}, *HELLO], config=config
    )
    [call] = fake_anthropic.calls()
    assert call.json["system"] == [cached]
    assert call.json["model"] == "claude-opus-5"
    assert call.json["top_k"] == 5
    assert call.invalid is None


async def test_tool_use_answer_and_cache_usage(gw, fake_anthropic):
    usage = {
        "input_tokens": 12,
        "cache_creation_input_tokens": 100,
        "cache_read_input_tokens": 2000,
        "output_tokens": 31,
    }
    fake_anthropic.script(
        Reply(
            message=message(
                [
                    {"type": "text", "text": "Let me check."},
                    {
                        "type": "tool_use",
                        "id": "toolu_9",
                        "name": "get_weather",
                        "input": {"city": "Paris", "days": [1, 2]},
                    },
                    {"type": "tool_use", "id": "toolu_10", "name": "now", "input": {}},
                ],
                stop_reason="tool_use",
                usage=usage,
            )
        )
    )
    answer = await gw.chat.completions.create(model="m", messages=HELLO, tools=[WEATHER])
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check."
    calls = [
        (c.id, c.type, c.function.name, c.function.arguments) for c in choice.message.tool_calls
    ]
    assert calls == [
        ("toolu_9", "function", "get_weather", '{"city":"Paris","days":[1,2]}'),
        ("toolu_10", "function", "now", "{}"),
    ]
    # prompt_tokens covers the whole prompt (cached parts too), as OpenAI counts it.
    assert answer.usage.prompt_tokens == 12 + 100 + 2000
    assert answer.usage.completion_tokens == 31
    assert answer.usage.total_tokens == 12 + 100 + 2000 + 31
    assert answer.usage.prompt_tokens_details == {"cached_tokens": 2000}
    assert answer.usage.cache_creation_input_tokens == 100
    assert answer.usage.cache_read_input_tokens == 2000


async def test_tool_calls_only_means_null_content(gw, fake_anthropic):
    fake_anthropic.script(
        Reply(
            message=message(
                [{"type": "tool_use", "id": "toolu_1", "name": "now", "input": {}}],
                stop_reason="tool_use",
            )
        )
    )
    answer = await gw.chat.completions.create(model="m", messages=HELLO, tools=[WEATHER])
    assert answer.choices[0].message.content is None


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ],
)
async def test_finish_reasons(gw, fake_anthropic, stop_reason, finish_reason):
    fake_anthropic.script(
        Reply(message=message([{"type": "text", "text": "x"}], stop_reason=stop_reason))
    )
    answer = await gw.chat.completions.create(model="m", messages=HELLO)
    assert answer.choices[0].finish_reason == finish_reason


async def test_overloaded_529_keeps_status_and_renders_openai_shape(gw, fake_anthropic):
    fake_anthropic.script(Reply(status=529, headers={"retry-after": "3"}))
    with pytest.raises(ProviderError) as err:
        await gw.chat.completions.create(model="m", messages=HELLO)
    error = err.value
    assert error.http_status == 529
    assert error.retry_after == 3.0
    assert error.headers["request-id"].startswith("req_fake_")
    assert error.to_dict() == {
        "error": {
            "message": "anthropic error: fake overloaded_error",
            "type": "overloaded_error",
            "param": None,
            "code": "overloaded_error",
        },
        "provider": "anthropic",
    }


async def test_rate_limit_429_with_retry_after(gw, fake_anthropic):
    fake_anthropic.script(Reply(status=429, headers={"retry-after": "7"}))
    with pytest.raises(ProviderError) as err:
        await gw.chat.completions.create(model="m", messages=HELLO)
    assert err.value.http_status == 429
    assert err.value.retry_after == 7.0
    assert err.value.to_dict()["error"]["type"] == "rate_limit_error"


async def test_invalid_request_400_from_upstream(gw, fake_anthropic):
    fake_anthropic.script(Reply(status=400))
    with pytest.raises(ProviderError) as err:
        await gw.chat.completions.create(model="m", messages=HELLO)
    assert err.value.http_status == 400
    assert err.value.to_dict()["error"] == {
        "message": "anthropic error: fake invalid_request_error",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_request_error",
    }


async def test_missing_key_is_anthropics_401(make_gateway, fake_anthropic):
    gateway = make_gateway(f"""
        [gateway]
        plugins = ["anthropic"]
        default_provider = "anthropic"
        [plugins.anthropic]
        base_url = "{fake_anthropic.url}"
    """)
    async with gateway:
        with pytest.raises(ProviderError) as err:
            await gateway.chat.completions.create(model="m", messages=HELLO)
    assert err.value.http_status == 401
    assert err.value.to_dict()["error"]["type"] == "authentication_error"


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"n": 2}, "n must be 1"),
        (
            {"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "'input_audio' are not supported",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}],
                    }
                ]
            },
            "http(s) URL or a base64 data URL",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "t",
                                "type": "function",
                                "function": {"name": "f", "arguments": "{oops"},
                            }
                        ],
                    }
                ]
            },
            "arguments must be a JSON object",
        ),
        ({"messages": [{"role": "tool", "content": "x"}]}, "needs its tool_call_id"),
    ],
)
async def test_untranslatable_requests_are_clear_400s(gw, fake_anthropic, params, says):
    body = {"model": "m", "messages": HELLO, **params}
    with pytest.raises(ProviderError) as err:
        await gw.chat.completions.create(**body)
    assert err.value.http_status == 400
    error = err.value.to_dict()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith("anthropic error: this request cannot be sent to Anthropic")
    assert says in error["message"]
    assert error["param"] is not None
    assert fake_anthropic.calls() == []


async def test_dropped_connection_is_502(gw, fake_anthropic):
    fake_anthropic.script(Reply(drop=True))
    with pytest.raises(UpstreamConnectionError) as err:
        await gw.chat.completions.create(model="m", messages=HELLO)
    assert err.value.http_status == 502


async def test_target_key_and_custom_host(make_gateway, fake_anthropic):
    gateway = make_gateway("""
        [gateway]
        plugins = ["anthropic"]
        [plugins.anthropic]
        base_url = "http://127.0.0.1:9/v1"
        beta = ["prompt-caching-2024-07-31"]
        headers = { "x-team" = "search" }
    """)
    config = {
        "provider": "anthropic",
        "api_key": "sk-ant-target",
        "custom_host": fake_anthropic.url,
    }
    async with gateway:
        await gateway.chat.completions.create(model="m", messages=HELLO, config=config)
    [call] = fake_anthropic.calls()
    assert call.headers["x-api-key"] == "sk-ant-target"
    assert call.headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert call.headers["x-team"] == "search"


async def test_model_list_in_openai_shape(gw, fake_anthropic):
    ctx = gw.context("models", {})
    answer = await gw.handle(ctx)
    assert answer.json() == {
        "object": "list",
        "data": [
            {
                "id": "claude-sonnet-5",
                "object": "model",
                "created": 1759104000,
                "owned_by": "anthropic",
            }
        ],
    }
    assert fake_anthropic.calls("/v1/models")[0].headers["x-api-key"] == "sk-ant-deployment"


class _Fallback:
    strategies = ("fallback",)

    @hookimpl
    def on_error(self, ctx, target, error):
        return Decision.fallback()


async def test_untranslatable_request_falls_back_to_a_target_that_serves_it(
    make_gateway, fake_anthropic, fake_openai
):
    gateway = make_gateway(f"""
        [gateway]
        plugins = ["anthropic", "openai"]
        [plugins.anthropic]
        base_url = "{fake_anthropic.url}"
        [plugins.openai]
        base_url = "{fake_openai.url}"
    """)
    gateway.register(_Fallback(), "fallback-test")
    config = {
        "strategy": {"mode": "fallback"},
        "targets": [
            {"provider": "anthropic", "api_key": "a"},
            {"provider": "openai", "api_key": "o"},
        ],
    }
    async with gateway:
        answer = await gateway.chat.completions.create(
            model="m", messages=HELLO, n=2, config=config
        )
    assert answer.hookgate.last_used_option == "config.targets[1]"
    assert [(a.provider, a.status) for a in answer.hookgate.attempts] == [
        ("anthropic", 400),
        ("openai", 200),
    ]
    assert fake_anthropic.calls() == []
    assert fake_openai.calls()[0].json["n"] == 2

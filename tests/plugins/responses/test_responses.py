"""POST /v1/responses through hookgate with the official openai SDK: passed through to
OpenAI and Azure, translated through chat for Anthropic, Gemini, the mock and the
OpenAI-compatible presets; stored responses; the 400s naming what cannot be translated."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from tests.support.fake_anthropic import Reply as AnthropicReply
from tests.support.fake_openai import Reply

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def records(log_file, count=1, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log_file.exists():
            lines = [json.loads(line) for line in log_file.read_text().splitlines() if line]
            if len(lines) >= count:
                return lines
        time.sleep(0.02)
    raise AssertionError(f"fewer than {count} log records")


# ---- passed through ----------------------------------------------------------------------


def test_openai_native_create_passes_the_request_through(client, fake_openai):
    raw = client("openai").responses.with_raw_response.create(
        model="gpt-4o-mini", input="hello", instructions="be brief", store=True
    )
    answer = raw.parse()
    assert answer.output_text == "fake: hello"
    assert raw.headers["x-portkey-provider"] == "openai"
    sent = fake_openai.calls("/v1/responses")[-1]
    assert sent.json == {
        "model": "gpt-4o-mini",
        "input": "hello",
        "instructions": "be brief",
        "store": True,
    }
    assert sent.headers["authorization"] == "Bearer sk-caller"


def test_openai_native_stream_assembles(client):
    with client("openai").responses.stream(model="gpt-4o-mini", input="hi there") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == "fake: hi there" == final.output_text
    assert final.usage.output_tokens == 3


def test_openai_native_retrieve_and_delete(client):
    api = client("openai")
    created = api.responses.create(model="gpt-4o-mini", input="keep me")
    assert api.responses.retrieve(created.id).output_text == "fake: keep me"
    api.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        api.responses.retrieve(created.id)


def test_openai_native_tool_call_round_trip(client, fake_openai):
    call = {
        "type": "function_call",
        "id": "fc_1",
        "call_id": "call_1",
        "name": "get_weather",
        "arguments": '{"city":"Paris"}',
        "status": "completed",
    }
    fake_openai.script(
        Reply(
            json={
                "id": "resp_t",
                "object": "response",
                "created_at": 1,
                "model": "gpt-4o",
                "status": "completed",
                "output": [call],
                "tools": [WEATHER],
                "parallel_tool_calls": True,
                "tool_choice": "auto",
            }
        )
    )
    answer = client("openai").responses.create(model="gpt-4o", input="weather?", tools=[WEATHER])
    assert answer.output[0].type == "function_call"
    assert json.loads(answer.output[0].arguments) == {"city": "Paris"}


def test_azure_native_create_and_retrieve(client, fake_azure):
    api = client("azure-openai")
    created = api.responses.create(model="my-deployment", input="from azure")
    assert created.output_text == "fake: from azure"
    assert fake_azure.api_versions[-1] == "2025-04-01-preview"
    sent = fake_azure.requests[-1]
    assert sent.path == "/openai/responses" and sent.headers["api-key"] == "sk-caller"
    assert api.responses.retrieve(created.id).id == created.id


# ---- translated through chat ---------------------------------------------------------------


def test_anthropic_translated_create(client, fake_anthropic, log_file):
    raw = client("anthropic").responses.with_raw_response.create(
        model="claude-3-5-haiku",
        instructions="answer in French",
        input=[
            {"role": "user", "content": [{"type": "input_text", "text": "bonjour"}]},
        ],
        max_output_tokens=64,
        temperature=0.2,
    )
    answer = raw.parse()
    assert answer.object == "response" and answer.status == "completed"
    assert answer.output_text.endswith("bonjour")
    assert answer.usage.input_tokens > 0 and answer.usage.output_tokens > 0
    sent = fake_anthropic.calls()[-1].json
    assert sent["system"] == "answer in French"
    assert sent["messages"] == [{"role": "user", "content": "bonjour"}]
    assert sent["max_tokens"] == 64 and sent["temperature"] == 0.2
    record = records(log_file)[-1]
    assert record["endpoint"] == "responses" and record["provider"] == "anthropic"
    assert record["prompt_tokens"] == answer.usage.input_tokens
    assert record["completion_tokens"] == answer.usage.output_tokens


def test_anthropic_translated_tool_call_and_tool_output(client, fake_anthropic):
    tool_use = {
        "id": "msg_tool",
        "type": "message",
        "role": "assistant",
        "model": "claude-3-5-haiku",
        "content": [
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 20, "output_tokens": 10},
    }
    fake_anthropic.script(AnthropicReply(message=tool_use))
    api = client("anthropic")
    first = api.responses.create(
        model="claude-3-5-haiku", input="weather in Oslo?", tools=[WEATHER]
    )
    call = first.output[0]
    assert call.type == "function_call" and call.call_id == "toolu_1"
    assert json.loads(call.arguments) == {"city": "Oslo"}
    sent_tools = fake_anthropic.calls()[-1].json["tools"]
    assert sent_tools[0]["name"] == "get_weather"
    assert sent_tools[0]["input_schema"] == WEATHER["parameters"]

    second = api.responses.create(
        model="claude-3-5-haiku",
        tools=[WEATHER],
        input=[
            {"role": "user", "content": "weather in Oslo?"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"},
        ],
    )
    assert second.output_text
    messages = fake_anthropic.calls()[-1].json["messages"]
    assert messages[1]["role"] == "assistant"
    assert messages[1]["content"][0]["type"] == "tool_use"
    result = messages[2]["content"][0]
    assert result["type"] == "tool_result" and result["tool_use_id"] == "toolu_1"


def test_anthropic_translated_stream_with_a_tool_call(client, fake_anthropic):
    message = {
        "id": "msg_s",
        "type": "message",
        "role": "assistant",
        "model": "claude-3-5-haiku",
        "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {"city": "Rome"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 9},
    }
    fake_anthropic.script(AnthropicReply(message=message))
    with client("anthropic").responses.stream(
        model="claude-3-5-haiku", input="weather in Rome?", tools=[WEATHER]
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert "response.function_call_arguments.delta" in kinds
    assert final.output_text == "Let me check."
    call = final.output[1]
    assert call.type == "function_call" and json.loads(call.arguments) == {"city": "Rome"}
    assert final.usage.input_tokens == 12 and final.usage.output_tokens == 9


def test_gemini_translated_with_a_json_schema(client, fake_gemini):
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    answer = client("google").responses.create(
        model="gemini-2.0-flash",
        input="hello gemini",
        text={"format": {"type": "json_schema", "name": "reply", "schema": schema, "strict": True}},
        reasoning={"effort": "low"},
    )
    assert answer.output_text
    sent = fake_gemini.requests[-1].json
    config = sent["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert "answer" in json.dumps(config.get("responseJsonSchema") or config.get("responseSchema"))


def test_gemini_translated_stream(client):
    with client("google").responses.stream(model="gemini-2.0-flash", input="stream me") as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text == final.output_text and "stream me" in text


def test_mock_default_provider_translated(client):
    answer = client().responses.create(model="m", input="hi mock")
    assert answer.output_text == "[mock] you said: hi mock"
    with client().responses.stream(model="m", input="stream mock") as stream:
        final = stream.get_final_response()
    assert final.output_text == "[mock] you said: stream mock"


def test_openai_compatible_preset_translated_with_streamed_tool_call(client, fake_openai):
    base = {"id": "chatcmpl-ds", "object": "chat.completion.chunk", "created": 1, "model": "ds"}
    fake_openai.script(
        Reply(
            chunks=[
                {
                    **base,
                    "choices": [
                        {"index": 0, "delta": {"role": "assistant", "reasoning_content": "think"}}
                    ],
                },
                {
                    **base,
                    "choices": [
                        {
                            "index": 0,
                            "delta": {
                                "tool_calls": [
                                    {
                                        "index": 0,
                                        "id": "call_ds",
                                        "type": "function",
                                        "function": {"name": "get_weather", "arguments": '{"ci'},
                                    }
                                ]
                            },
                        }
                    ],
                },
                {
                    **base,
                    "choices": [
                        {
                            "index": 0,
                            "delta": {
                                "tool_calls": [
                                    {"index": 0, "function": {"arguments": 'ty":"Lima"}'}}
                                ]
                            },
                        }
                    ],
                },
                {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
                {
                    **base,
                    "choices": [],
                    "usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12},
                },
            ]
        )
    )
    with client("deepseek").responses.stream(
        model="deepseek-chat", input="weather in Lima?", tools=[WEATHER], tool_choice="required"
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    sent = fake_openai.calls()[-1]
    assert sent.headers["authorization"] == "Bearer sk-caller"
    assert sent.json["tools"] == [
        {"type": "function", "function": {k: v for k, v in WEATHER.items() if k != "type"}}
    ]
    assert sent.json["tool_choice"] == "required"
    assert sent.json["stream_options"] == {"include_usage": True}
    assert final.output[0].type == "reasoning"
    assert final.output[0].summary[0].text == "think"
    assert json.loads(final.output[1].arguments) == {"city": "Lima"}
    assert final.usage.total_tokens == 12
    assert any(e.type == "response.reasoning_summary_text.delta" for e in events)


# ---- refused ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"tools": [{"type": "web_search_preview"}]}, "tools[0].type"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
        ({"reasoning": {"summary": "auto"}}, "reasoning.summary"),
        ({"frobnicate": 1}, "frobnicate"),
    ],
)
def test_what_cannot_be_translated_is_a_400_naming_it(client, extra, field):
    with pytest.raises(openai.BadRequestError) as caught:
        client("anthropic").responses.create(model="claude-3-5-haiku", input="hi", extra_body=extra)
    error = caught.value.body
    assert f"'{field}'" in error["message"]


def test_translated_provider_keeps_no_responses(client, server):
    with pytest.raises(openai.NotFoundError) as caught:
        client("anthropic").responses.retrieve("resp_123")
    message = caught.value.body["message"]
    assert "'anthropic'" in message and "responses.retrieve" in message


def test_missing_model_is_a_400(server):
    answer = httpx.post(f"{server.url}/v1/responses", json={"input": "hi"})
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "model"


# ---- the pipeline ------------------------------------------------------------------------------


def test_fallback_from_a_failing_translated_target_to_openai_native(
    client, fake_anthropic, fake_openai
):
    fake_anthropic.script(529)
    config = json.dumps(
        {
            "strategy": {"mode": "fallback"},
            "targets": [
                {"provider": "anthropic", "override_params": {"model": "claude-3-5-haiku"}},
                {"provider": "openai", "override_params": {"model": "gpt-4o-mini"}},
            ],
        }
    )
    raw = client(**{"x-portkey-config": config}).responses.with_raw_response.create(
        model="x", input="fall back"
    )
    assert raw.parse().output_text == "fake: fall back"
    assert raw.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
    assert fake_openai.calls("/v1/responses")[-1].json["model"] == "gpt-4o-mini"


def test_retry_then_cache_hit(client, fake_anthropic):
    fake_anthropic.script(529)
    config = json.dumps(
        {
            "retry": {"attempts": 2, "on_status_codes": [529]},
            "cache": {"mode": "simple"},
            "provider": "anthropic",
        }
    )
    api = client(**{"x-portkey-config": config})
    first = api.responses.with_raw_response.create(model="claude-3-5-haiku", input="cache me")
    assert first.headers["x-portkey-retry-attempt-count"] == "1"
    assert first.headers["x-portkey-cache-status"] == "MISS"
    second = api.responses.with_raw_response.create(model="claude-3-5-haiku", input="cache me")
    assert second.headers["x-portkey-cache-status"] == "HIT"
    assert second.parse().output_text == first.parse().output_text


def test_streamed_usage_reaches_the_log(client, log_file):
    with client("google").responses.stream(model="gemini-2.0-flash", input="count me") as stream:
        final = stream.get_final_response()
    record = records(log_file)[-1]
    assert record["endpoint"] == "responses" and record["usage_source"] == "stream"
    assert record["completion_tokens"] == final.usage.output_tokens


# ---- routing by model string, bare paths ----------------------------------------------------


def test_model_strings_route_responses(client, fake_anthropic):
    answer = client().responses.create(model="anthropic/claude-3-5-haiku", input="via model")
    assert answer.model == "claude-3-5-haiku"
    assert fake_anthropic.calls()[-1].headers["x-api-key"] == "sk-caller"
    client().responses.create(model="@anthropic-prod/claude-3-5-sonnet", input="via vk")
    sent = fake_anthropic.calls()[-1]
    assert sent.headers["x-api-key"] == "sk-ant-virtual"
    assert sent.json["model"] == "claude-3-5-sonnet"


def test_responses_without_v1(server):
    answer = httpx.post(f"{server.url}/responses", json={"model": "m", "input": "bare"})
    assert answer.status_code == 200
    assert answer.json()["output"][0]["content"][0]["text"] == "[mock] you said: bare"

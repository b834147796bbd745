"""Anthropic's event stream as OpenAI chunks: sequence, tool calls, usage, failures."""

from __future__ import annotations

import httpx
import openai
import orjson
import pytest
from hookgate import ProviderError
from hookgate.errors import UpstreamConnectionError

from tests.support.fake_anthropic import Reply, message, stream_events

HELLO = [{"role": "user", "content": "hello there"}]
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
USAGE = {
    "input_tokens": 21,
    "cache_creation_input_tokens": 5,
    "cache_read_input_tokens": 400,
    "output_tokens": 57,
}
TOOL_MESSAGE = message(
    [
        {"type": "text", "text": "Checking both cities."},
        {
            "type": "tool_use",
            "id": "toolu_A",
            "name": "get_weather",
            "input": {"city": "Paris", "unit": "celsius", "note": 'a "quoted" value'},
        },
        {"type": "tool_use", "id": "toolu_B", "name": "get_weather", "input": {"city": "Oslo"}},
        {"type": "tool_use", "id": "toolu_C", "name": "now", "input": {}},
    ],
    stop_reason="tool_use",
    usage=USAGE,
)


async def test_chunk_sequence(gw, fake_anthropic):
    stream = await gw.chat.completions.create(
        model="claude-sonnet-5",
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk.model_dump(exclude_none=True) async for chunk in stream]
    [call] = fake_anthropic.calls()
    assert call.json["stream"] is True
    assert "stream_options" not in call.json
    assert call.invalid is None
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas == [
        {"role": "assistant", "content": ""},
        {"content": "fake:"},
        {"content": " hello"},
        {"content": " there"},
        {},
    ]
    assert [c["choices"][0].get("finish_reason") for c in chunks if c["choices"]] == [
        None,
        None,
        None,
        None,
        "stop",
    ]
    assert all(c["id"] == "msg_fake_01" and c["object"] == "chat.completion.chunk" for c in chunks)
    last = chunks[-1]
    assert last["choices"] == []
    assert last["usage"]["prompt_tokens"] == 2
    assert last["usage"]["completion_tokens"] == 3
    assert stream.response.headers["request-id"].startswith("req_fake_")


async def test_no_usage_chunk_unless_asked(gw, fake_anthropic):
    stream = await gw.chat.completions.create(model="m", messages=HELLO, stream=True)
    chunks = [chunk async for chunk in stream]
    assert all(chunk.choices for chunk in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_tool_call_deltas(gw, fake_anthropic):
    fake_anthropic.script(Reply(message=TOOL_MESSAGE))
    stream = await gw.chat.completions.create(
        model="m",
        messages=HELLO,
        tools=[TOOL],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk.model_dump(exclude_none=True) async for chunk in stream]
    calls = [
        d["tool_calls"][0]
        for c in chunks
        if c["choices"]
        for d in [c["choices"][0]["delta"]]
        if "tool_calls" in d
    ]
    # The first delta of each call names it; the rest carry argument fragments only.
    firsts = [c for c in calls if "id" in c]
    assert [(c["index"], c["id"], c["type"], c["function"]["name"]) for c in firsts] == [
        (0, "toolu_A", "function", "get_weather"),
        (1, "toolu_B", "function", "get_weather"),
        (2, "toolu_C", "function", "now"),
    ]
    assert all(
        set(c) == {"index", "function"} and set(c["function"]) == {"arguments"}
        for c in calls
        if "id" not in c
    )
    arguments = {
        i: "".join(c["function"].get("arguments", "") for c in calls if c["index"] == i)
        for i in range(3)
    }
    assert {i: orjson.loads(a) for i, a in arguments.items()} == {
        0: TOOL_MESSAGE["content"][1]["input"],
        1: {"city": "Oslo"},
        2: {},
    }
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 21 + 5 + 400,
        "completion_tokens": 57,
        "total_tokens": 21 + 5 + 400 + 57,
        "prompt_tokens_details": {"cached_tokens": 400},
        "cache_creation_input_tokens": 5,
        "cache_read_input_tokens": 400,
    }


def test_openai_sdk_assembles_streamed_tool_calls(
    make_gateway, anthropic_toml, serve, fake_anthropic
):
    fake_anthropic.script(Reply(message=TOOL_MESSAGE))
    with serve(make_gateway(anthropic_toml)) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-ant-caller", max_retries=0)
        with client.chat.completions.stream(
            model="claude-sonnet-5",
            messages=HELLO,
            tools=[TOOL],
            stream_options={"include_usage": True},
        ) as stream:
            final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Checking both cities."
    assert [
        (t.id, t.function.name, orjson.loads(t.function.arguments))
        for t in choice.message.tool_calls
    ] == [
        ("toolu_A", "get_weather", TOOL_MESSAGE["content"][1]["input"]),
        ("toolu_B", "get_weather", {"city": "Oslo"}),
        ("toolu_C", "now", {}),
    ]
    assert final.usage.prompt_tokens == 426
    assert final.usage.completion_tokens == 57
    assert final.usage.total_tokens == 483
    assert final.usage.prompt_tokens_details.cached_tokens == 400
    # the caller's bearer key went upstream as Anthropic's x-api-key
    assert fake_anthropic.calls()[0].headers["x-api-key"] == "sk-ant-caller"


def _with_error_after(events: list, count: int) -> list:
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    return [*events[:count], ("error", error)]


async def test_error_event_before_any_chunk_is_a_provider_error(gw, fake_anthropic):
    fake_anthropic.script(Reply(events=_with_error_after([], 0)))
    with pytest.raises(ProviderError) as err:
        await gw.chat.completions.create(model="m", messages=HELLO, stream=True)
    assert err.value.http_status == 529  # retry and fallback see the overload
    assert err.value.to_dict()["error"]["type"] == "overloaded_error"


async def test_error_after_message_start_is_still_before_the_first_chunk(gw, fake_anthropic):
    # Anthropic may open the stream and then report an overload before any content: the
    # role chunk is held back, so the failure reaches retry and fallback, not the client.
    events = list(stream_events(message([{"type": "text", "text": "a"}])))
    fake_anthropic.script(Reply(events=_with_error_after(events, 3)))  # start, block, ping
    with pytest.raises(ProviderError) as err:
        await gw.chat.completions.create(model="m", messages=HELLO, stream=True)
    assert err.value.http_status == 529


async def test_thinking_blocks_are_left_out(gw, fake_anthropic):
    msg = message([{"type": "text", "text": "Answer."}])
    events = list(stream_events(msg))
    thinking = [
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "thinking", "thinking": "", "signature": ""},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "thinking_delta", "thinking": "Hmm."},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "signature_delta", "signature": "c2ln"},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ]
    renumbered = [
        (name, {**data, "index": data["index"] + 1} if "index" in data else data)
        for name, data in events[1:]
    ]
    fake_anthropic.script(Reply(events=[events[0], *thinking, *renumbered]))
    stream = await gw.chat.completions.create(model="m", messages=HELLO, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "Answer."


async def test_error_event_mid_stream_raises(gw, fake_anthropic):
    events = list(stream_events(message([{"type": "text", "text": "a b c"}])))
    fake_anthropic.script(Reply(events=_with_error_after(events, 4)))
    stream = await gw.chat.completions.create(model="m", messages=HELLO, stream=True)
    got = []
    with pytest.raises(ProviderError) as err:
        async for chunk in stream:
            got.append(chunk)
    assert got  # the role chunk and some content went out before the failure
    assert err.value.http_status == 529


async def test_cut_stream_is_an_error_not_a_short_answer(gw, fake_anthropic):
    fake_anthropic.script(Reply(drop_after=5))
    stream = await gw.chat.completions.create(model="m", messages=HELLO, stream=True)
    with pytest.raises(UpstreamConnectionError):
        async for _ in stream:
            pass


def test_mid_stream_error_reaches_the_http_client_as_an_sse_error(
    make_gateway, anthropic_toml, serve, fake_anthropic
):
    events = list(stream_events(message([{"type": "text", "text": "a b c"}])))
    fake_anthropic.script(Reply(events=_with_error_after(events, 4)))
    with serve(make_gateway(anthropic_toml)) as server:
        response = httpx.post(
            f"{server.url}/v1/chat/completions",
            json={"model": "m", "messages": HELLO, "stream": True},
            timeout=10,
        )
    lines = [line for line in response.text.splitlines() if line.startswith("data: ")]
    assert response.status_code == 200
    last = orjson.loads(lines[-1][6:])
    assert last["error"]["type"] == "overloaded_error"
    assert "[DONE]" not in response.text

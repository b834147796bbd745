"""The OpenAI Agents SDK (``openai-agents``) running agent turns through hookgate's
``/v1/responses``: a plain turn on the mock, and a tool-calling turn on Anthropic."""

from __future__ import annotations

import json

import agents
from openai import AsyncOpenAI

from tests.support.fake_anthropic import Reply as AnthropicReply


def _model(server, provider: str, name: str):
    client = AsyncOpenAI(
        base_url=f"{server.url}/v1",
        api_key="sk-caller",
        max_retries=0,
        default_headers={"x-portkey-provider": provider},
    )
    return client, agents.OpenAIResponsesModel(model=name, openai_client=client)


async def test_one_agent_turn_on_the_mock(server):
    client, model = _model(server, "mock", "mock-1")
    agent = agents.Agent(name="helper", instructions="be helpful", model=model)
    config = agents.RunConfig(tracing_disabled=True)
    result = await agents.Runner.run(agent, "hello agent", run_config=config)
    assert result.final_output == "[mock] you said: hello agent"
    streamed = agents.Runner.run_streamed(agent, "stream agent", run_config=config)
    kinds = [event.type async for event in streamed.stream_events()]
    assert "raw_response_event" in kinds
    assert streamed.final_output == "[mock] you said: stream agent"
    await client.close()


async def test_an_agent_calls_a_tool_through_anthropic(server, fake_anthropic):
    calls = []

    @agents.function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        calls.append(city)
        return f"sunny in {city}"

    tool_use = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-3-5-haiku",
        "content": [
            {"type": "tool_use", "id": "toolu_7", "name": "get_weather", "input": {"city": "Nice"}}
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 30, "output_tokens": 12},
    }
    done = {
        **tool_use,
        "id": "msg_2",
        "content": [{"type": "text", "text": "It is sunny in Nice."}],
        "stop_reason": "end_turn",
    }
    fake_anthropic.script(AnthropicReply(message=tool_use), AnthropicReply(message=done))
    client, model = _model(server, "anthropic", "claude-3-5-haiku")
    agent = agents.Agent(name="weather", instructions="use tools", model=model, tools=[get_weather])
    result = await agents.Runner.run(
        agent, "weather in Nice?", run_config=agents.RunConfig(tracing_disabled=True)
    )
    assert calls == ["Nice"]
    assert result.final_output == "It is sunny in Nice."
    second = fake_anthropic.calls()[-1].json
    assert second["system"] == "use tools"
    tool_result = second["messages"][-1]["content"][0]
    assert tool_result["type"] == "tool_result" and tool_result["tool_use_id"] == "toolu_7"
    assert "sunny in Nice" in json.dumps(tool_result)
    await client.close()

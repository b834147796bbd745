"""The fake Anthropic upstream, checked against the anthropic SDK: the SDK parses what the fake
sends, and the fake's request check is the SDK's own request type."""

from __future__ import annotations

import anthropic
import httpx
import pytest

from tests.support.fake_anthropic import Reply, check_request, message

HELLO = [{"role": "user", "content": "hi"}]


@pytest.fixture
def client(fake_anthropic):
    with anthropic.Anthropic(
        base_url=fake_anthropic.host, api_key="sk-ant-test", max_retries=0
    ) as sdk:
        yield sdk


def test_sdk_parses_the_fakes_json(fake_anthropic, client):
    fake_anthropic.script(
        Reply(
            message=message(
                [
                    {"type": "text", "text": "Sure."},
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "f",
                        "input": {"a": [1, {"b": None}]},
                    },
                ],
                stop_reason="tool_use",
                usage={"input_tokens": 3, "cache_read_input_tokens": 4, "output_tokens": 5},
            )
        )
    )
    answer = client.messages.create(
        model="claude-sonnet-5",
        max_tokens=10,
        messages=HELLO,
        tools=[{"name": "f", "input_schema": {"type": "object"}}],
    )
    assert isinstance(answer, anthropic.types.Message)
    assert answer.content[0].text == "Sure."
    assert isinstance(answer.content[1], anthropic.types.ToolUseBlock)
    assert answer.content[1].input == {"a": [1, {"b": None}]}
    assert answer.stop_reason == "tool_use"
    assert answer.usage.cache_read_input_tokens == 4
    [call] = fake_anthropic.calls()
    assert call.invalid is None  # what the SDK sends passes the fake's check


def test_sdk_parses_the_fakes_stream(fake_anthropic, client):
    fake_anthropic.script(
        Reply(
            message=message(
                [
                    {"type": "text", "text": "one two"},
                    {"type": "tool_use", "id": "toolu_2", "name": "g", "input": {"long": "x" * 40}},
                ],
                stop_reason="tool_use",
                usage={"input_tokens": 8, "output_tokens": 13},
            )
        )
    )
    with client.messages.stream(
        model="claude-sonnet-5",
        max_tokens=10,
        messages=HELLO,
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and "message_stop" in kinds
    assert final.content[0].text == "one two"
    assert final.content[1].input == {"long": "x" * 40}
    assert final.usage.input_tokens == 8
    assert final.usage.output_tokens == 13
    assert final.stop_reason == "tool_use"


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (529, anthropic.InternalServerError),
        (429, anthropic.RateLimitError),
        (400, anthropic.BadRequestError),
    ],
)
def test_sdk_reads_the_fakes_errors(fake_anthropic, client, status, error_class):
    fake_anthropic.script(status)
    with pytest.raises(error_class) as err:
        client.messages.create(model="claude-sonnet-5", max_tokens=10, messages=HELLO)
    assert err.value.status_code == status


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"model": "m", "messages": HELLO}, "max_tokens"),
        ({"model": "m", "max_tokens": 5, "messages": HELLO, "stop": ["x"]}, "stop"),
        (
            {"model": "m", "max_tokens": 5, "messages": [{"role": "tool", "content": "x"}]},
            "messages",
        ),
        (
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}
                ],
            },
            "Field required",
        ),
        (
            {"model": "m", "max_tokens": 5, "messages": HELLO, "tool_choice": {"type": "required"}},
            "tool_choice",
        ),
    ],
)
def test_fake_rejects_what_anthropic_would(body, says):
    problem = check_request(body)
    assert problem is not None and says in problem


def test_untranslated_openai_request_is_refused_by_the_fake(fake_anthropic):
    # Sent as OpenAI shapes it, the request fails: the fake does check what it gets.
    response = httpx.post(
        f"{fake_anthropic.url}/messages",
        json={"model": "m", "messages": HELLO, "max_tokens": 5, "n": 1},
        headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert fake_anthropic.calls()[0].invalid == "n: Extra inputs are not permitted"

"""``POST /v1/messages`` through ``hookgate serve`` with the anthropic SDK: unchanged in both
directions, and through retries, fallback, the cache and observers."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import orjson
import pytest
from hookgate import Decision, RequestContext, hookimpl

from tests.support.fake_anthropic import Reply, message, stream_events

HELLO = [{"role": "user", "content": "hello gateway"}]
TOOL_MESSAGE = message(
    [
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "toolu_X", "name": "lookup", "input": {"q": "hookgate"}},
    ],
    stop_reason="tool_use",
    usage={"input_tokens": 30, "cache_read_input_tokens": 12, "output_tokens": 9},
)


class RetryOverloads:
    """Retries 429 and 529 up to twice per target, the way the retry plugin decides."""

    @hookimpl(tryfirst=True)
    def on_error(self, ctx: RequestContext, target: Any, error: Any) -> Decision | None:
        retries = sum(1 for a in ctx.attempts if a.path == target.path) - 1
        if error.http_status in (429, 529) and retries < 2:
            return Decision.retry(0.01)
        return None


class Fallback:
    """A strategy plugin: every failure moves on to the next target."""

    strategies = ("fallback",)

    @hookimpl
    def on_error(self, ctx: RequestContext, target: Any, error: Any) -> Decision:
        return Decision.fallback()


class Observer:
    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    @hookimpl
    async def post_response(self, ctx: RequestContext, response: Any) -> None:
        self.seen.append(
            {
                "endpoint": ctx.endpoint,
                "status": ctx.status,
                "completed": ctx.completed,
                "events": [e.event for e in ctx.events],
                "provider": ctx.target.provider if ctx.target else None,
                "cache": ctx.cache_status,
                "attempts": [(a.path, a.status) for a in ctx.attempts],
            }
        )


@pytest.fixture
def toml(fake_anthropic) -> str:
    # The default provider is the mock: /v1/messages is routed by Portkey's headers.
    return f"""
        [gateway]
        plugins = ["cache", "anthropic", "mock"]
        default_provider = "mock"
        [plugins.anthropic]
        base_url = "{fake_anthropic.url}"
        read_timeout = 2.0
        beta = ["gateway-beta-1"]
    """


@pytest.fixture
def observer() -> Observer:
    return Observer()


@pytest.fixture
def server(make_gateway, toml, serve, observer):
    gateway = make_gateway(toml)
    gateway.register(RetryOverloads(), "retry-test")
    gateway.register(Fallback(), "fallback-test")
    gateway.register(observer, "observer")
    with serve(gateway) as running:
        yield running


@pytest.fixture
def sdk(server):
    """``sdk(config, **headers)``: an anthropic client pointed at hookgate (closed after)."""
    clients: list[anthropic.Anthropic] = []

    def make(config: dict[str, Any] | None = None, **headers: str) -> anthropic.Anthropic:
        default_headers = {"x-portkey-provider": "anthropic", **headers}
        if config is not None:
            default_headers["x-portkey-config"] = orjson.dumps(config).decode()
        client = anthropic.Anthropic(
            base_url=server.url,
            api_key="sk-ant-caller",
            max_retries=0,
            default_headers=default_headers,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def test_json_passes_through_unchanged(server, fake_anthropic, observer, sdk):
    raw = sdk(**{"anthropic-beta": "client-beta"}).messages.with_raw_response.create(
        model="claude-sonnet-5",
        max_tokens=64,
        messages=HELLO,
        system="Be kind.",
        metadata={"user_id": "u1"},
    )
    answer = raw.parse()
    [call] = fake_anthropic.calls()
    assert call.invalid is None
    assert call.json == {
        "model": "claude-sonnet-5",
        "max_tokens": 64,
        "messages": HELLO,
        "system": "Be kind.",
        "metadata": {"user_id": "u1"},
    }
    assert call.headers["x-api-key"] == "sk-ant-caller"
    # the client's anthropic-version wins over the deployment's default
    assert (
        call.headers["anthropic-version"] == raw.http_response.request.headers["anthropic-version"]
    )
    assert call.headers["anthropic-beta"] == "gateway-beta-1,client-beta"
    assert "x-portkey-provider" not in call.headers
    # the body reaches the SDK byte for byte as the upstream sent it
    assert orjson.loads(raw.http_response.content) == message(
        [{"type": "text", "text": "fake: hello gateway"}],
        usage={
            "input_tokens": 2,
            "output_tokens": 3,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    )
    assert answer.content[0].text == "fake: hello gateway"
    assert answer.usage.output_tokens == 3
    assert raw.headers["x-portkey-provider"] == "anthropic"
    assert raw.headers["request-id"].startswith("req_fake_")
    assert observer.seen[-1]["endpoint"] == "messages"
    assert observer.seen[-1]["completed"] is True


def test_stream_passes_through_event_by_event(server, fake_anthropic, observer, sdk):
    fake_anthropic.script(Reply(message=TOOL_MESSAGE))
    with sdk().messages.stream(
        model="claude-sonnet-5",
        max_tokens=64,
        messages=HELLO,
        tools=[{"name": "lookup", "input_schema": {"type": "object"}}],
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[0].text == "Let me look."
    assert final.content[1].input == {"q": "hookgate"}
    assert final.usage.output_tokens == 9
    assert final.usage.cache_read_input_tokens == 12
    [call] = fake_anthropic.calls()
    assert call.json["stream"] is True and call.invalid is None
    assert observer.seen[-1]["events"] == [name for name, _ in stream_events(TOOL_MESSAGE)]


def test_stream_bytes_are_anthropics(server, fake_anthropic):
    body = {"model": "m", "max_tokens": 10, "messages": HELLO, "stream": True}
    response = httpx.post(
        f"{server.url}/v1/messages",
        json=body,
        timeout=10,
        headers={"x-portkey-provider": "anthropic", "x-api-key": "k"},
    )
    expected = list(
        stream_events(
            message(
                [{"type": "text", "text": "fake: hello gateway"}],
                usage={
                    "input_tokens": 2,
                    "output_tokens": 3,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                },
                model="m",
            )
        )
    )
    got = []
    for block in response.text.strip().split("\n\n"):
        name, data = block.split("\n")
        got.append((name.removeprefix("event: "), orjson.loads(data.removeprefix("data: "))))
    assert got == expected
    assert "[DONE]" not in response.text
    assert response.headers["content-type"].startswith("text/event-stream")


def test_upstream_errors_keep_anthropics_shape(server, fake_anthropic, sdk):
    fake_anthropic.script(Reply(status=400, headers={"retry-after": "1"}))
    with pytest.raises(anthropic.BadRequestError) as err:
        sdk().messages.create(model="m", max_tokens=10, messages=HELLO)
    assert err.value.status_code == 400
    assert err.value.body == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "fake invalid_request_error"},
        "request_id": "req_fake_error",
    }
    assert err.value.response.headers["retry-after"] == "1"


def test_bad_request_is_anthropic_shaped_400(server, fake_anthropic):
    response = httpx.post(
        f"{server.url}/v1/messages",
        timeout=10,
        json={"model": "m", "messages": HELLO},  # no max_tokens
        headers={"x-portkey-provider": "anthropic"},
    )
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in body["error"]["message"]
    assert "x-portkey-trace-id" in response.headers
    assert fake_anthropic.calls() == []


def test_overloaded_is_retried_then_answers(server, fake_anthropic, observer, sdk):
    fake_anthropic.script(Reply(status=529), Reply(status=429, headers={"retry-after": "0"}))
    raw = sdk().messages.with_raw_response.create(model="m", max_tokens=10, messages=HELLO)
    assert raw.parse().content[0].text == "fake: hello gateway"
    assert len(fake_anthropic.calls()) == 3
    assert raw.headers["x-portkey-retry-attempt-count"] == "2"
    assert observer.seen[-1]["attempts"] == [("config", 529), ("config", 429), ("config", 200)]


def test_overloaded_after_retries_is_the_sdks_overloaded_error(server, fake_anthropic, sdk):
    fake_anthropic.script(529, 529, 529)
    with pytest.raises(anthropic.APIStatusError) as err:
        sdk().messages.create(model="m", max_tokens=10, messages=HELLO)
    assert err.value.status_code == 529
    assert err.value.body["error"]["type"] == "overloaded_error"
    assert len(fake_anthropic.calls()) == 3


def test_stream_overloaded_before_first_event_is_retried(server, fake_anthropic, sdk):
    overloaded = (
        "error",
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
    )
    fake_anthropic.script(Reply(events=[overloaded]))
    with sdk().messages.stream(model="m", max_tokens=10, messages=HELLO) as stream:
        assert stream.get_final_text() == "fake: hello gateway"
    assert len(fake_anthropic.calls()) == 2


def test_stream_overloaded_after_message_start_is_retried(server, fake_anthropic, sdk):
    events = list(stream_events(message([{"type": "text", "text": "x"}])))
    overloaded = (
        "error",
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
    )
    fake_anthropic.script(Reply(events=[events[0], ("ping", {"type": "ping"}), overloaded]))
    with sdk().messages.stream(model="m", max_tokens=10, messages=HELLO) as stream:
        assert stream.get_final_text() == "fake: hello gateway"
    assert len(fake_anthropic.calls()) == 2


def test_stream_error_mid_way_is_an_anthropic_error_event(server, fake_anthropic, observer, sdk):
    events = list(stream_events(message([{"type": "text", "text": "one two three"}])))
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    fake_anthropic.script(Reply(events=[*events[:4], ("error", error)]))
    with pytest.raises(anthropic.APIStatusError) as err:  # noqa: SIM117
        with sdk().messages.stream(model="m", max_tokens=10, messages=HELLO) as stream:
            stream.get_final_message()
    assert err.value.body == error
    assert observer.seen[-1]["completed"] is False


def test_fallback_to_the_next_target(server, fake_anthropic, observer, sdk):
    fake_anthropic.script(400)  # not retried: the fallback moves on
    config = {
        "strategy": {"mode": "fallback"},
        "targets": [
            {"provider": "anthropic", "override_params": {"model": "claude-primary"}},
            {"provider": "anthropic", "override_params": {"model": "claude-backup"}},
        ],
    }
    raw = sdk(config).messages.with_raw_response.create(model="m", max_tokens=10, messages=HELLO)
    assert raw.parse().model == "claude-backup"
    assert [c.json["model"] for c in fake_anthropic.calls()] == ["claude-primary", "claude-backup"]
    assert raw.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
    assert observer.seen[-1]["attempts"] == [("config.targets[0]", 400), ("config.targets[1]", 200)]


@pytest.mark.parametrize("stream", [False, True])
def test_cache_answers_the_second_call(server, fake_anthropic, observer, stream, sdk):
    client = sdk({"cache": {"mode": "simple"}})

    def ask() -> tuple[str, str]:
        if stream:
            with client.messages.stream(model="m", max_tokens=10, messages=HELLO) as s:
                text = s.get_final_text()
                return text, s.response.headers["x-portkey-cache-status"]
        raw = client.messages.with_raw_response.create(model="m", max_tokens=10, messages=HELLO)
        return raw.parse().content[0].text, raw.headers["x-portkey-cache-status"]

    assert ask() == ("fake: hello gateway", "MISS")
    assert ask() == ("fake: hello gateway", "HIT")
    assert len(fake_anthropic.calls()) == 1
    assert [s["cache"] for s in observer.seen] == ["MISS", "HIT"]
    assert observer.seen[-1]["provider"] is None


def test_chat_completions_and_messages_do_not_share_cache_entries(server, fake_anthropic, sdk):
    config = {"cache": {"mode": "simple"}}
    sdk(config).messages.create(model="m", max_tokens=10, messages=HELLO)
    response = httpx.post(
        f"{server.url}/v1/chat/completions",
        timeout=10,
        json={"model": "m", "max_tokens": 10, "messages": HELLO},
        headers={
            "x-portkey-provider": "anthropic",
            "x-api-key": "sk-ant-caller",
            "x-portkey-config": orjson.dumps(config).decode(),
        },
    )
    assert response.json()["object"] == "chat.completion"
    assert response.headers["x-portkey-cache-status"] == "MISS"
    assert len(fake_anthropic.calls()) == 2


def test_cut_stream_ends_with_an_anthropic_error_event(server, fake_anthropic, observer):
    fake_anthropic.script(Reply(drop_after=5))
    body = {"model": "m", "max_tokens": 10, "messages": HELLO, "stream": True}
    response = httpx.post(
        f"{server.url}/v1/messages",
        json=body,
        timeout=10,
        headers={"x-portkey-provider": "anthropic", "x-api-key": "k"},
    )
    last = response.text.strip().split("\n\n")[-1]
    name, data = last.split("\n")
    assert name == "event: error"
    error = orjson.loads(data.removeprefix("data: "))
    assert error["type"] == "error"
    assert error["error"]["type"] == "api_error"
    assert error["error"]["message"].startswith("the upstream closed the")
    assert observer.seen[-1]["completed"] is False

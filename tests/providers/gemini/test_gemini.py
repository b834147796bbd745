"""The google (Gemini) provider against a fake AI Studio upstream checked with google-genai."""

from __future__ import annotations

import base64
import time

import openai
import pytest
from google import genai
from hookgate import CallOptions, Decision, ProviderError, hookimpl

from tests.support.fake_gemini import GeminiReply, gemini_error

HELLO = [{"role": "user", "content": "hello"}]
PNG = base64.b64encode(b"\x89PNG fake image").decode()
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


def answer(*parts, finish="STOP", usage=None, index=0, **extra):
    candidate = {"content": {"role": "model", "parts": list(parts)}, "index": index}
    if finish is not None:
        candidate["finishReason"] = finish
    return {
        "candidates": [candidate],
        "usageMetadata": usage
        or {"promptTokenCount": 5, "candidatesTokenCount": 3, "totalTokenCount": 8},
        "modelVersion": "gemini-2.5-flash-001",
        "responseId": "resp-42",
        **extra,
    }


# ---- request translation ----------------------------------------------------------------


async def test_request_is_translated_field_by_field(gw, fake_gemini):
    await gw.chat.completions.create(
        model="gemini-2.5-flash",
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather here?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 3}'},
            {"role": "tool", "tool_call_id": "call_2", "content": "sunny, 21 C"},
            {"role": "assistant", "content": "Oslo 3 C, Rome 21 C."},
            {"role": "user", "content": "Thanks"},
        ],
        temperature=0.3,
        top_p=0.9,
        max_completion_tokens=256,
        stop="END",
        n=2,
        seed=7,
        presence_penalty=0.1,
        frequency_penalty=0.2,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "w", "schema": {"type": "object", "properties": {}}},
        },
        user="someone",  # OpenAI-only fields are dropped, not sent to Gemini
    )
    [call] = fake_gemini.calls()
    assert call.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert call.headers["x-goog-api-key"] == "gemini-deployment-key"
    assert "authorization" not in call.headers
    assert call.json == {
        "systemInstruction": {"parts": [{"text": "You are terse."}, {"text": "Use metric units."}]},
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "Weather here?"},
                    {"inlineData": {"mimeType": "image/png", "data": PNG}},
                ],
            },
            {
                "role": "model",
                "parts": [
                    {
                        "functionCall": {
                            "name": "get_weather",
                            "args": {"city": "Oslo"},
                            "id": "call_1",
                        }
                    },
                    {
                        "functionCall": {
                            "name": "get_weather",
                            "args": {"city": "Rome"},
                            "id": "call_2",
                        }
                    },
                ],
            },
            {
                "role": "user",
                "parts": [
                    {
                        "functionResponse": {
                            "name": "get_weather",
                            "response": {"temp_c": 3},
                            "id": "call_1",
                        }
                    },
                    {
                        "functionResponse": {
                            "name": "get_weather",
                            "response": {"result": "sunny, 21 C"},
                            "id": "call_2",
                        }
                    },
                ],
            },
            {"role": "model", "parts": [{"text": "Oslo 3 C, Rome 21 C."}]},
            {"role": "user", "parts": [{"text": "Thanks"}]},
        ],
        "generationConfig": {
            "temperature": 0.3,
            "topP": 0.9,
            "seed": 7,
            "presencePenalty": 0.1,
            "frequencyPenalty": 0.2,
            "candidateCount": 2,
            "maxOutputTokens": 256,
            "stopSequences": ["END"],
            "responseMimeType": "application/json",
            "responseJsonSchema": {"type": "object", "properties": {}},
        },
        "tools": [
            {
                "functionDeclarations": [
                    {
                        "name": "get_weather",
                        "description": "Weather in a city",
                        "parametersJsonSchema": WEATHER_TOOL["function"]["parameters"],
                    }
                ]
            }
        ],
        "toolConfig": {
            "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
        },
    }


@pytest.mark.parametrize(
    ("params", "config", "tool_config"),
    [
        (
            {"max_tokens": 9, "stop": ["a", "b"]},
            {"maxOutputTokens": 9, "stopSequences": ["a", "b"]},
            None,
        ),
        (
            {"response_format": {"type": "json_object"}},
            {"responseMimeType": "application/json"},
            None,
        ),
        ({"tools": [WEATHER_TOOL], "tool_choice": "none"}, None, {"mode": "NONE"}),
        ({"tools": [WEATHER_TOOL], "tool_choice": "auto"}, None, {"mode": "AUTO"}),
        ({"tools": [WEATHER_TOOL], "tool_choice": "required"}, None, {"mode": "ANY"}),
    ],
)
async def test_generation_config_and_tool_choice(gw, fake_gemini, params, config, tool_config):
    await gw.chat.completions.create(model="gemini-2.0-flash", messages=HELLO, **params)
    sent = fake_gemini.calls()[0].json
    assert sent.get("generationConfig") == config
    assert sent.get("toolConfig") == (
        {"functionCallingConfig": tool_config} if tool_config else None
    )


async def test_a_tool_result_for_an_unknown_call_is_a_clear_400(gw, fake_gemini):
    from hookgate import BadRequestError

    with pytest.raises(BadRequestError, match="tool_call_id 'nope' matches no earlier"):
        await gw.chat.completions.create(
            model="gemini-2.0-flash",
            messages=[*HELLO, {"role": "tool", "tool_call_id": "nope", "content": "x"}],
        )
    assert fake_gemini.requests == []


# ---- responses and usage ----------------------------------------------------------------


async def test_response_tool_calls_and_usage_are_mapped_exactly(gw, fake_gemini):
    fake_gemini.script(
        GeminiReply(
            json=answer(
                {"text": "thinking it over", "thought": True},
                {"text": "Checking."},
                {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
                usage={
                    "promptTokenCount": 31,
                    "candidatesTokenCount": 12,
                    "thoughtsTokenCount": 40,
                    "cachedContentTokenCount": 8,
                    "totalTokenCount": 83,
                },
            )
        )
    )
    result = await gw.chat.completions.create(
        model="gemini-2.5-flash", messages=HELLO, tools=[WEATHER_TOOL]
    )
    assert result.id == "chatcmpl-resp-42"
    assert result.model == "gemini-2.5-flash-001"
    [choice] = result.choices
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Checking."  # the thought summary is not the answer
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert call.function.arguments == '{"city":"Oslo"}'
    usage = result.usage.model_dump()
    assert usage["prompt_tokens"] == 31
    assert usage["completion_tokens"] == 52  # candidates + thoughts, as OpenAI counts reasoning
    assert usage["total_tokens"] == 83  # Gemini's own total, unchanged
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 40}
    assert usage["prompt_tokens_details"] == {"cached_tokens": 8}


@pytest.mark.parametrize(
    ("gemini", "openai_reason"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("OTHER", "stop"),
    ],
)
async def test_finish_reasons(gw, fake_gemini, gemini, openai_reason):
    fake_gemini.script(GeminiReply(json=answer({"text": "partial"}, finish=gemini)))
    result = await gw.chat.completions.create(model="gemini-2.0-flash", messages=HELLO)
    assert result.choices[0].finish_reason == openai_reason


async def test_several_candidates_become_choices(gw, fake_gemini):
    body = answer({"text": "one"})
    body["candidates"].append(
        {
            "content": {"role": "model", "parts": [{"text": "two"}]},
            "finishReason": "MAX_TOKENS",
            "index": 1,
        }
    )
    fake_gemini.script(GeminiReply(json=body))
    result = await gw.chat.completions.create(model="gemini-2.0-flash", messages=HELLO, n=2)
    assert [(c.index, c.message.content, c.finish_reason) for c in result.choices] == [
        (0, "one", "stop"),
        (1, "two", "length"),
    ]


BLOCKED = {
    "promptFeedback": {
        "blockReason": "SAFETY",
        "safetyRatings": [
            {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True},
            {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
        ],
    },
    "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7},
    "modelVersion": "gemini-2.0-flash",
}


async def test_a_blocked_prompt_is_a_400_content_filter_error(gw, fake_gemini):
    fake_gemini.script(GeminiReply(json=BLOCKED))
    with pytest.raises(ProviderError) as err:
        await gw.chat.completions.create(model="gemini-2.0-flash", messages=HELLO)
    assert err.value.http_status == 400
    assert err.value.to_dict() == {
        "error": {
            "message": "google error: the prompt was blocked by Gemini's safety filters "
            "(blockReason SAFETY: HARM_CATEGORY_DANGEROUS_CONTENT (HIGH))",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "content_filter",
        },
        "provider": "google",
    }


async def test_a_blocked_prompt_in_a_stream_fails_before_the_first_byte(gw, fake_gemini):
    fake_gemini.script(GeminiReply(events=[BLOCKED]))
    with pytest.raises(ProviderError, match="blockReason SAFETY") as err:
        await gw.chat.completions.create(model="gemini-2.0-flash", messages=HELLO, stream=True)
    assert err.value.http_status == 400


# ---- streaming ----------------------------------------------------------------------------


async def test_stream_chunk_sequence_and_final_usage(gw, fake_gemini):
    stream = await gw.chat.completions.create(
        model="gemini-2.0-flash",
        messages=[{"role": "user", "content": "hello there"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    call = fake_gemini.calls("streamGenerateContent")[0]
    assert call.query == {"alt": "sse"}
    assert {c.id for c in chunks} == {"chatcmpl-fake-stream-1"}
    assert chunks[0].choices[0].delta.role == "assistant"
    texts = [c.choices[0].delta.content for c in chunks[1:-2]]
    assert texts == ["fake", " gemini:", " hello", " there"]
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-2].choices[0].delta.content is None
    assert chunks[-1].choices == []
    # The last event's usageMetadata (the fake: prompt 2, candidates 4, total 6), exactly.
    assert chunks[-1].usage.model_dump(exclude_none=True) == {
        "prompt_tokens": 2,
        "completion_tokens": 4,
        "total_tokens": 6,
    }


async def test_stream_without_include_usage_has_no_usage_chunk(gw, fake_gemini):
    stream = await gw.chat.completions.create(model="gemini-2.0-flash", messages=HELLO, stream=True)
    chunks = [chunk async for chunk in stream]
    assert all(c.choices for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_stream_error_event_midway_reaches_the_client(gw, fake_gemini):
    fake_gemini.script(
        GeminiReply(
            events=[
                answer({"text": "Hel"}, finish=None),
                gemini_error(503, "The model is overloaded."),
            ]
        )
    )
    stream = await gw.chat.completions.create(model="gemini-2.0-flash", messages=HELLO, stream=True)
    got = []
    with pytest.raises(ProviderError) as err:
        async for chunk in stream:
            got.append(chunk)
    assert [c.choices[0].delta.content for c in got] == ["", "Hel"]
    assert err.value.http_status == 503
    assert err.value.to_dict()["error"]["code"] == "unavailable"


# ---- errors -------------------------------------------------------------------------------

RATE_LIMITED = gemini_error(
    429,
    "Resource has been exhausted (e.g. check quota).",
    details=[{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0.2s"}],
)


async def test_resource_exhausted_is_an_openai_shaped_429_with_retry_after(gw, fake_gemini):
    fake_gemini.script(GeminiReply(status=429, json=RATE_LIMITED))
    with pytest.raises(ProviderError) as err:
        await gw.chat.completions.create(model="gemini-2.0-flash", messages=HELLO)
    assert err.value.http_status == 429
    assert err.value.retry_after == pytest.approx(0.2)
    assert err.value.to_dict() == {
        "error": {
            "message": "google error: Resource has been exhausted (e.g. check quota).",
            "type": "rate_limit_error",
            "param": None,
            "code": "resource_exhausted",
        },
        "provider": "google",
    }


async def test_a_retry_after_header_wins_over_retry_info(gw, fake_gemini):
    fake_gemini.script(GeminiReply(status=429, json=RATE_LIMITED, headers={"retry-after": "3"}))
    with pytest.raises(ProviderError) as err:
        await gw.chat.completions.create(model="gemini-2.0-flash", messages=HELLO)
    assert err.value.retry_after == 3.0


class RetryOnceAfter:
    """A test plugin: retry once, after the delay the upstream asked for."""

    @hookimpl
    def on_error(self, ctx, target, error):
        if len(ctx.attempts) == 1 and error.retry_after is not None:
            return Decision.retry(error.retry_after)
        return None


async def test_a_429_is_retried_after_the_delay_gemini_asked_for(gw, fake_gemini):
    gw.register(RetryOnceAfter(), name="retry-once")
    fake_gemini.script(GeminiReply(status=429, json=RATE_LIMITED))
    started = time.monotonic()
    result = await gw.chat.completions.create(model="gemini-2.0-flash", messages=HELLO)
    assert result.choices[0].message.content == "fake gemini: hello"
    assert [a.status for a in result.hookgate.attempts] == [429, 200]
    assert result.hookgate.attempts[1].delay == pytest.approx(0.2)
    assert time.monotonic() - started >= 0.2
    assert len(fake_gemini.calls()) == 2


@pytest.mark.parametrize(
    ("status", "kind"),
    [(400, "invalid_request_error"), (403, "permission_error"), (500, "api_error")],
)
async def test_other_gemini_errors_keep_their_status(gw, fake_gemini, status, kind):
    fake_gemini.script(status)
    with pytest.raises(ProviderError) as err:
        await gw.chat.completions.create(model="gemini-2.0-flash", messages=HELLO)
    assert err.value.http_status == status
    assert err.value.to_dict()["error"]["type"] == kind


# ---- routing, aliases, other endpoints ---------------------------------------------------


async def test_alias_key_and_custom_host(make_gateway, fake_gemini):
    gateway = make_gateway("""
        [gateway]
        plugins = ["gemini"]
        [plugins.gemini]
        base_url = "http://127.0.0.1:9/never"
    """)
    async with gateway:
        result = await gateway.chat.completions.create(
            model="gemini-2.0-flash",
            messages=HELLO,
            config={"provider": "Gemini", "api_key": "target-key", "custom_host": fake_gemini.url},
        )
        assert result.hookgate.provider == "google"  # the alias resolves to Portkey's slug
        result = await gateway.chat.completions.create(
            model="gemini-2.0-flash",
            messages=HELLO,
            options=CallOptions(
                provider="google", api_key="caller-key", custom_host=fake_gemini.url
            ),
        )
    assert result.choices[0].message.content == "fake gemini: hello"
    assert [c.headers["x-goog-api-key"] for c in fake_gemini.calls()] == [
        "target-key",
        "caller-key",
    ]


async def test_embeddings_and_models(gw, fake_gemini):
    emb = await gw.embeddings.create(model="text-embedding-004", input=["a", "bbb"])
    assert [d.embedding for d in emb.data] == [[0.5, 1.0], [1.0, 3.0]]
    [call] = fake_gemini.calls("batchEmbedContents")
    assert call.json == {
        "requests": [
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "a"}]}},
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "bbb"}]}},
        ]
    }
    response = await gw.handle(gw.context("models", {}))
    assert response.json()["data"][0]["id"] == "gemini-2.0-flash"


# ---- the fake against the SDK, and end to end --------------------------------------------


def test_the_fake_speaks_what_google_genai_sends_and_parses(fake_gemini):
    client = genai.Client(
        api_key="k", http_options={"base_url": fake_gemini.host, "api_version": "v1beta"}
    )
    result = client.models.generate_content(
        model="gemini-2.0-flash",
        contents="hi there",
        config=genai.types.GenerateContentConfig(
            system_instruction="be brief", temperature=0.1, max_output_tokens=5
        ),
    )
    assert result.text == "fake gemini: hi there"
    assert result.usage_metadata.total_token_count == 8
    streamed = "".join(
        c.text
        for c in client.models.generate_content_stream(model="gemini-2.0-flash", contents="yo")
    )
    assert streamed == "fake gemini: yo"


def test_openai_sdk_through_hookgate_serve_to_gemini(make_gateway, fake_gemini, serve):
    gateway = make_gateway(f"""
        [gateway]
        plugins = ["gemini"]
        [plugins.gemini]
        base_url = "{fake_gemini.url}"
    """)
    fake_gemini.script(
        GeminiReply(
            events=[
                answer({"text": "Let me check."}, finish=None, usage={"promptTokenCount": 9}),
                answer(
                    {
                        "functionCall": {
                            "name": "get_weather",
                            "args": {"city": "Oslo"},
                            "id": "fc-1",
                        }
                    },
                    {
                        "functionCall": {
                            "name": "get_weather",
                            "args": {"city": "Rome"},
                            "id": "fc-2",
                        }
                    },
                    usage={
                        "promptTokenCount": 9,
                        "candidatesTokenCount": 14,
                        "totalTokenCount": 23,
                    },
                ),
            ]
        )
    )
    with serve(gateway) as server:
        client = openai.OpenAI(
            base_url=f"{server.url}/v1",
            api_key="user-gemini-key",
            default_headers={"x-portkey-provider": "google"},
            max_retries=0,
        )
        with client.chat.completions.stream(
            model="gemini-2.5-flash",
            messages=[{"role": "user", "content": "Weather in Oslo and Rome?"}],
            tools=[WEATHER_TOOL],
            stream_options={"include_usage": True},
        ) as stream:
            final = stream.get_final_completion()
        plain = client.chat.completions.with_raw_response.create(
            model="gemini-2.0-flash", messages=HELLO
        )
    [choice] = final.choices
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check."
    assert [(c.id, c.function.name, c.function.arguments) for c in choice.message.tool_calls] == [
        ("fc-1", "get_weather", '{"city":"Oslo"}'),
        ("fc-2", "get_weather", '{"city":"Rome"}'),
    ]
    assert (final.usage.prompt_tokens, final.usage.completion_tokens, final.usage.total_tokens) == (
        9,
        14,
        23,
    )
    assert plain.headers["x-portkey-provider"] == "google"
    assert plain.parse().choices[0].message.content == "fake gemini: hello"
    assert fake_gemini.calls()[0].headers["x-goog-api-key"] == "user-gemini-key"


async def test_a_thought_signature_survives_the_round_trip_through_the_tool_call_id(
    gw, fake_gemini
):
    fake_gemini.script(
        GeminiReply(
            json=answer(
                {
                    "functionCall": {"name": "get_weather", "args": {"city": "Oslo"}, "id": "fc-9"},
                    "thoughtSignature": "c2lnbmF0dXJlLTE=",
                }
            )
        )
    )
    first = await gw.chat.completions.create(
        model="gemini-3-pro", messages=HELLO, tools=[WEATHER_TOOL]
    )
    [call] = first.choices[0].message.tool_calls
    assert call.id == "fc-9__thought__c2lnbmF0dXJlLTE="
    await gw.chat.completions.create(
        model="gemini-3-pro",
        messages=[
            *HELLO,
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 3}'},
        ],
        tools=[WEATHER_TOOL],
    )
    contents = fake_gemini.calls()[1].json["contents"]
    assert contents[1] == {
        "role": "model",
        "parts": [
            {
                "functionCall": {"name": "get_weather", "args": {"city": "Oslo"}, "id": "fc-9"},
                "thoughtSignature": "c2lnbmF0dXJlLTE=",
            }
        ],
    }
    assert contents[2]["parts"][0]["functionResponse"]["id"] == "fc-9"


async def test_url_images_audio_and_files_become_parts(gw, fake_gemini):
    await gw.chat.completions.create(
        model="gemini-2.0-flash",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "https://example.test/cat.png?s=1"}},
                    {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                    {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERg=="}},
                ],
            }
        ],
    )
    assert fake_gemini.calls()[0].json["contents"][0]["parts"] == [
        {"fileData": {"mimeType": "image/png", "fileUri": "https://example.test/cat.png?s=1"}},
        {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERg=="}},
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ([{"type": "image_url", "image_url": {"url": "data:image/png,abc"}}], "data URL must look"),
        (
            [{"type": "image_url", "image_url": {"url": "data:image/png;base64,@@"}}],
            "not valid base64",
        ),
        ([{"type": "video", "video": {}}], "does not support part type 'video'"),
    ],
)
async def test_bad_parts_are_a_clear_400_before_any_upstream_call(
    gw, fake_gemini, content, message
):
    from hookgate import BadRequestError

    with pytest.raises(BadRequestError, match=message) as err:
        await gw.chat.completions.create(
            model="gemini-2.0-flash", messages=[{"role": "user", "content": content}]
        )
    assert err.value.http_status == 400
    assert fake_gemini.requests == []

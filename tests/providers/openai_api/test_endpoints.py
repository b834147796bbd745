"""OpenAI's other endpoints through hookgate with the openai SDK: moderations, images,
speech (streamed bytes), transcriptions (multipart), files and batches; passed through to
OpenAI and the presets that have them, refused by name elsewhere."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from tests.support.fake_openai import speech_bytes


@pytest.fixture
def log_file(tmp_path):
    return tmp_path / "requests.jsonl"


@pytest.fixture
def server(make_gateway, serve, fake_openai, log_file):
    gateway = make_gateway(f"""
        [gateway]
        plugins = ["mock", "openai", "anthropic", "retry", "fallback", "logging"]
        default_provider = "mock"
        [plugins.openai]
        base_url = "{fake_openai.url}"
        [plugins.openai.upstreams.groq]
        base_url = "{fake_openai.url}"
        [plugins.openai.upstreams.deepseek]
        base_url = "{fake_openai.url}"
        [plugins.logging]
        log_to = "{log_file}"
        store = {{ enabled = false }}
        metrics = false
    """)
    with serve(gateway) as running:
        yield running


@pytest.fixture
def client(server):
    made = []

    def make(provider: str | None = "openai", **headers: str) -> openai.OpenAI:
        if provider:
            headers["x-portkey-provider"] = provider
        made.append(
            openai.OpenAI(
                base_url=f"{server.url}/v1",
                api_key="sk-caller",
                max_retries=0,
                default_headers=headers,
            )
        )
        return made[-1]

    yield make
    for api in made:
        api.close()


def records(log_file, count):
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if log_file.exists():
            lines = [json.loads(line) for line in log_file.read_text().splitlines() if line]
            if len(lines) >= count:
                return lines
        time.sleep(0.02)
    raise AssertionError(f"fewer than {count} log records")


def test_moderations(client, fake_openai, log_file):
    raw = client().moderations.with_raw_response.create(input=["hello", "kill it"])
    answer = raw.parse()
    assert [r.flagged for r in answer.results] == [False, True]
    assert raw.headers["x-portkey-provider"] == "openai"
    assert raw.headers["x-request-id"].startswith("req_fake_")
    assert fake_openai.calls("/v1/moderations")[-1].headers["authorization"] == "Bearer sk-caller"
    assert records(log_file, 1)[-1]["endpoint"] == "moderations"


def test_image_generation_with_usage_in_the_log(client, log_file):
    answer = client().images.generate(model="gpt-image-1", prompt="a red fox", n=2)
    assert len(answer.data) == 2
    record = records(log_file, 1)[-1]
    assert record["endpoint"] == "images.generations"
    assert record["prompt_tokens"] == 3 and record["completion_tokens"] == 100


def test_speech_streams_audio_bytes(client, log_file):
    with client().audio.speech.with_streaming_response.create(
        model="gpt-4o-mini-tts", voice="alloy", input="read this aloud"
    ) as response:
        assert response.headers["content-type"] == "audio/mpeg"
        assert response.headers["x-portkey-provider"] == "openai"
        chunks = list(response.iter_bytes())
    assert b"".join(chunks) == speech_bytes("read this aloud")
    assert records(log_file, 1)[-1]["status"] == 200


def test_transcription_multipart_with_a_model_override(client, fake_openai):
    config = json.dumps({"provider": "openai", "override_params": {"model": "gpt-4o-transcribe"}})
    answer = client(None, **{"x-portkey-config": config}).audio.transcriptions.create(
        model="whisper-1", file=("talk.wav", b"RIFF" + b"\x00" * 500, "audio/wav"), language="en"
    )
    assert answer.text == "fake transcript of talk.wav (504 bytes)"
    form = fake_openai.forms[-1]
    assert form["model"] == "gpt-4o-transcribe" and form["language"] == "en"
    assert form["file"] == ("talk.wav", "audio/wav", b"RIFF" + b"\x00" * 500)


def test_transcription_through_a_preset_that_has_it(client, fake_openai):
    answer = client("groq").audio.transcriptions.create(
        model="whisper-large-v3", file=("a.mp3", b"ID3audio", "audio/mpeg")
    )
    assert answer.text.startswith("fake transcript of a.mp3")


def test_model_string_routes_a_multipart_request(client, fake_openai):
    answer = client(None).audio.transcriptions.create(
        model="openai/whisper-1", file=("b.wav", b"RIFFxx", "audio/wav")
    )
    assert answer.text.startswith("fake transcript of b.wav")
    assert fake_openai.forms[-1]["model"] == "whisper-1"


def test_files_and_batches(client, fake_openai):
    api = client()
    lines = b'{"custom_id": "1", "method": "POST", "url": "/v1/chat/completions", "body": {}}\n'
    uploaded = api.files.create(file=("batch.jsonl", lines), purpose="batch")
    assert uploaded.filename == "batch.jsonl" and uploaded.bytes == len(lines)
    assert [f.id for f in api.files.list(purpose="batch")] == [uploaded.id]
    assert fake_openai.requests[-1].path == "/v1/files"  # the query string went along
    assert api.files.retrieve(uploaded.id).purpose == "batch"
    assert api.files.content(uploaded.id).read() == lines

    batch = api.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert api.batches.retrieve(batch.id).input_file_id == uploaded.id
    assert [b.id for b in api.batches.list(limit=1)] == [batch.id]
    assert api.batches.cancel(batch.id).status == "cancelling"
    assert api.files.delete(uploaded.id).deleted is True
    with pytest.raises(openai.NotFoundError):
        api.files.retrieve(uploaded.id)


@pytest.mark.parametrize("provider", ["anthropic", "deepseek", "mock"])
def test_a_provider_without_the_endpoint_is_a_404_naming_both(client, provider):
    with pytest.raises(openai.NotFoundError) as caught:
        client(provider).moderations.create(input="hi")
    message = caught.value.body["message"]
    assert f"'{provider}'" in message and "moderations" in message


def test_a_transcription_needs_its_file(server):
    answer = httpx.post(
        f"{server.url}/v1/audio/transcriptions",
        files={"other": ("x.wav", b"...")},
        data={"model": "whisper-1"},
        headers={"x-portkey-provider": "openai"},
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "file"
    not_a_form = httpx.post(f"{server.url}/v1/audio/transcriptions", json={"model": "whisper-1"})
    assert not_a_form.status_code == 400
    assert "multipart/form-data" in not_a_form.json()["error"]["message"]


def test_without_v1(server):
    answer = httpx.post(
        f"{server.url}/audio/speech",
        json={"model": "tts-1", "voice": "alloy", "input": "bare"},
        headers={"x-portkey-provider": "openai"},
    )
    assert answer.status_code == 200 and answer.content == speech_bytes("bare")

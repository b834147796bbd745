"""The cache over HTTP, as Portkey clients use it: ``x-portkey-config`` asks, the
``x-portkey-cache-*`` headers steer and report."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

CONFIG = json.dumps({"cache": {"mode": "simple", "max_age": 60}})
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}


@pytest.fixture
def server(cache_gateway, serve):
    with serve(cache_gateway("redis")) as running:
        yield running


def post(server, body=BODY, **headers):
    return httpx.post(
        f"{server.url}/v1/chat/completions",
        json=body,
        headers={"x-portkey-config": CONFIG, **headers},
    )


def test_two_identical_requests_call_the_upstream_once(server, fake_openai):
    first, second = post(server), post(server)
    assert first.status_code == second.status_code == 200
    assert first.headers["x-portkey-cache-status"] == "MISS"
    assert second.headers["x-portkey-cache-status"] == "HIT"
    assert second.json() == first.json()
    assert second.headers["x-request-id"] == first.headers["x-request-id"]
    assert second.headers["x-portkey-provider"] == ""
    assert int(second.headers["age"]) >= 0
    assert len(fake_openai.calls()) == 1


def test_force_refresh_and_namespace_headers(server, fake_openai):
    post(server)
    refreshed = post(server, **{"x-portkey-cache-force-refresh": "true"})
    spaced = post(server, **{"x-portkey-cache-namespace": "team-a"})
    spaced_again = post(server, **{"x-portkey-cache-namespace": "team-a"})
    plain = httpx.post(f"{server.url}/v1/chat/completions", json=BODY)
    assert refreshed.headers["x-portkey-cache-status"] == "REFRESH"
    assert spaced.headers["x-portkey-cache-status"] == "MISS"
    assert spaced_again.headers["x-portkey-cache-status"] == "HIT"
    assert plain.headers["x-portkey-cache-status"] == "DISABLED"
    assert len(fake_openai.calls()) == 4


def test_a_cached_stream_is_well_formed_sse_for_the_openai_sdk(server, fake_openai):
    client = openai.OpenAI(
        base_url=f"{server.url}/v1",
        api_key="sk-caller-000001",
        max_retries=0,
        default_headers={"x-portkey-config": CONFIG},
    )
    texts, statuses = [], []
    for _ in range(2):
        with client.chat.completions.with_streaming_response.create(stream=True, **BODY) as raw:
            statuses.append(raw.headers["x-portkey-cache-status"])
            assert raw.headers["content-type"].startswith("text/event-stream")
            chunks = list(raw.parse())
        texts.append("".join(c.choices[0].delta.content or "" for c in chunks if c.choices))
    assert statuses == ["MISS", "HIT"]
    assert texts == ["fake: hello", "fake: hello"]
    assert len(fake_openai.calls()) == 1
    with httpx.stream(
        "POST",
        f"{server.url}/v1/chat/completions",
        json={**BODY, "stream": True},
        headers={"x-portkey-config": CONFIG, "authorization": "Bearer sk-caller-000001"},
    ) as replay:
        wire = b"".join(replay.iter_bytes())
    assert replay.headers["x-portkey-cache-status"] == "HIT"
    assert wire.endswith(b"data: [DONE]\n\n")
    assert all(part.startswith(b"data: ") for part in wire.split(b"\n\n") if part)

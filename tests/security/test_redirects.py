"""Finding 2: no provider follows an upstream redirect; a 3xx is a 502 saying the upstream
redirected, and the place it pointed at (a recording listener) receives nothing."""

from __future__ import annotations

import httpx
import pytest
from hookgate import Gateway

from tests.support.thief import Thief

HELLO = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}


@pytest.fixture(params=[302, 307, 308])
def redirector(request, thief):
    location = f"{thief.url}/v1/chat/completions".encode()
    reply = (
        f"HTTP/1.1 {request.param} Moved\r\n".encode()
        + b"location: "
        + location
        + b"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )
    upstream = Thief(reply=reply)
    yield upstream
    upstream.close()


@pytest.fixture
def server(write_toml, serve, redirector):
    base = redirector.url
    gateway = Gateway.from_toml(
        write_toml(f"""
            [gateway]
            plugins = ["openai", "anthropic", "gemini", "azure-openai"]
            [plugins.openai]
            base_url = "{base}/v1"
            api_key = "sk-plugin-openai"
            [plugins.anthropic]
            base_url = "{base}/v1"
            api_key = "sk-plugin-anthropic"
            [plugins.gemini]
            base_url = "{base}/v1beta"
            api_key = "g-plugin-gemini"
            [plugins.azure-openai]
            base_url = "{base}/openai"
            api_key = "az-plugin-azure"
        """)
    )
    with serve(gateway) as running:
        yield running


@pytest.mark.parametrize("provider", ["openai", "anthropic", "google", "azure-openai"])
@pytest.mark.parametrize("stream", [False, True])
def test_redirects_are_never_followed(server, redirector, thief, provider, stream):
    response = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={**HELLO, "stream": stream},
        headers={"x-portkey-provider": provider},
        timeout=10,
    )
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["code"] == "upstream_redirect" and "redirected" in error["message"]
    assert str(thief.port) not in response.text  # where it pointed is not echoed
    assert len(redirector.connections) == 1
    assert thief.connections == []


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/moderations", {"input": "hello"}),  # JSON in, JSON out
        ("GET", "/v1/files", None),  # no body
        ("POST", "/v1/audio/speech", {"model": "tts-1", "input": "hi", "voice": "alloy"}),  # bytes
    ],
)
def test_redirects_are_never_followed_on_the_other_endpoints(
    server, redirector, thief, method, path, body
):
    response = httpx.request(
        method,
        f"{server.url}{path}",
        json=body,
        headers={"x-portkey-provider": "openai"},
        timeout=10,
    )
    assert response.status_code == 502, response.text
    assert response.json()["error"]["code"] == "upstream_redirect"
    assert len(redirector.connections) == 1
    assert thief.connections == []

"""Finding 8: the reference deployment never answers real traffic with the mock. A request
that names no provider, virtual key or config is a 400 naming x-portkey-provider and
x-portkey-config (from the openai SDK, the anthropic SDK, or a model the gateway does not
understand); ``hookgate serve`` says on start what it serves; ``serve`` without the server
extra says what to install."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
from hookgate import Gateway

from tests.support.servers import free_port, serving

ROOT = Path(__file__).resolve().parents[2]
HOOKGATE = str(Path(sys.executable).parent / "hookgate")
HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def server(server_thread):
    from hookgate.server.app import create_app

    with serving(create_app(Gateway.from_toml(ROOT / "plugins.toml")), server_thread) as running:
        yield running


def test_no_routing_is_a_400_naming_the_headers(server):
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-real-key", max_retries=0)
    for model in ("gpt-4o-mini", "claude-3-5-haiku", "some-model-it-does-not-know"):
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model=model, messages=HELLO)
        message = caught.value.body["message"]
        assert "x-portkey-provider" in message and "x-portkey-config" in message
        assert "[mock]" not in str(caught.value.response.text)


def test_the_anthropic_sdk_without_a_provider_gets_a_400(server):
    client = anthropic.Anthropic(base_url=server.url, api_key="sk-ant-real", max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model="claude-3-5-haiku", max_tokens=10, messages=HELLO)
    assert "x-portkey-provider" in caught.value.message


def test_naming_the_mock_still_works(server):
    response = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": "m", "messages": HELLO},
        headers={"x-portkey-provider": "mock"},
    )
    assert response.status_code == 200 and "[mock]" in response.text


def test_serve_says_what_it_serves_in_one_line(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [
            HOOKGATE,
            "serve",
            "--config",
            str(ROOT / "plugins.toml"),
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
    finally:
        process.kill()  # the line is all this test needs
        process.communicate(timeout=60)
    assert f"http://127.0.0.1:{port}" in line and "2 workers" in line
    assert "mock, openai, anthropic" in line and "logging" in line


def test_serve_without_the_server_extra_says_what_to_install(tmp_path):
    # The environment without uvicorn: the import fails as it would where it is missing.
    script = (
        "import sys; sys.modules['uvicorn'] = None; sys.argv = ['hookgate', 'serve']; "
        "from hookgate.cli import main; main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "HOOKGATE_CONFIG": str(ROOT / "plugins.toml")},
        timeout=60,
    )
    assert done.returncode != 0
    assert "pip install 'hookgate[server]'" in done.stderr
    assert "Traceback" not in done.stderr

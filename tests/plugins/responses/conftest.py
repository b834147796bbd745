"""Fake upstreams for each provider's wire format, and a gateway whose providers use them."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.support.fake_anthropic import FakeAnthropic
from tests.support.fake_azure_openai import FakeAzureOpenAI
from tests.support.fake_gemini import FakeGemini
from tests.support.servers import ServerThread


@pytest.fixture
def fake_anthropic(server_thread: ServerThread) -> Iterator[FakeAnthropic]:
    fake = FakeAnthropic(server_thread).start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_gemini(server_thread: ServerThread) -> Iterator[FakeGemini]:
    fake = FakeGemini(server_thread).start()
    yield fake
    fake.stop()
    assert fake.problems == []  # every request passed the google-genai SDK's own types


@pytest.fixture
def fake_azure(server_thread: ServerThread) -> Iterator[FakeAzureOpenAI]:
    fake = FakeAzureOpenAI(server_thread).start()
    yield fake
    fake.stop()


@pytest.fixture
def log_file(tmp_path):
    return tmp_path / "requests.jsonl"


@pytest.fixture
def gateway(make_gateway, fake_openai, fake_anthropic, fake_gemini, fake_azure, log_file):
    return make_gateway(f"""
        [gateway]
        plugins = ["mock", "openai", "anthropic", "gemini", "azure-openai", "responses",
                   "retry", "fallback", "cache", "logging"]
        default_provider = "mock"
        [plugins.openai]
        base_url = "{fake_openai.url}"
        api_key = "sk-openai-operator"
        [plugins.openai.upstreams.deepseek]
        base_url = "{fake_openai.url}"
        api_key = "sk-deepseek-operator"
        [plugins.anthropic]
        base_url = "{fake_anthropic.url}"
        api_key = "sk-ant-operator"
        [plugins.gemini]
        base_url = "{fake_gemini.url}"
        api_key = "gemini-operator"
        [plugins.azure-openai]
        base_url = "{fake_azure.url}"
        api_key = "azure-operator"
        [plugins.logging]
        log_to = "{log_file}"
        store = {{ enabled = false }}
        metrics = false
        [virtual_keys.anthropic-prod]
        provider = "anthropic"
        api_key = "sk-ant-virtual"
    """)


@pytest.fixture
def server(gateway, serve):
    with serve(gateway) as running:
        yield running


@pytest.fixture
def client(server):
    made: list[openai.OpenAI] = []

    def make(provider: str | None = None, **headers: str) -> openai.OpenAI:
        if provider is not None:
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

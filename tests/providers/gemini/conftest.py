"""A fake Gemini upstream and a gateway whose ``google`` provider points at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fake_gemini import FakeGemini
from tests.support.servers import ServerThread


@pytest.fixture
def fake_gemini(server_thread: ServerThread) -> Iterator[FakeGemini]:
    fake = FakeGemini(server_thread).start()
    yield fake
    fake.stop()
    # Every request the gateway sent passed the google-genai SDK's own request types.
    assert fake.problems == []


@pytest.fixture
async def gw(make_gateway, fake_gemini):
    gateway = make_gateway(f"""
        [gateway]
        plugins = ["gemini"]
        default_provider = "google"
        [plugins.gemini]
        base_url = "{fake_gemini.url}"
        api_key = "gemini-deployment-key"
        read_timeout = 2.0
    """)
    async with gateway:
        yield gateway

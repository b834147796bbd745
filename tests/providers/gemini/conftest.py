"""A fake Gemini upstream and a gateway whose ``google`` provider points at it."""

from __future__ import annotations

import pytest

# fake_gemini comes from hookgate.testing's pytest plugin.


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

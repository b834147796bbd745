"""A fake Anthropic upstream, and a gateway whose ``anthropic`` provider points at it."""

from __future__ import annotations

import pytest

from tests.support.fake_anthropic import FakeAnthropic

# fake_anthropic comes from hookgate.testing's pytest plugin.


@pytest.fixture
def anthropic_toml(fake_anthropic: FakeAnthropic) -> str:
    return f"""
        [gateway]
        plugins = ["anthropic"]
        default_provider = "anthropic"
        [plugins.anthropic]
        base_url = "{fake_anthropic.url}"
        api_key = "sk-ant-deployment"
        read_timeout = 2.0
        default_max_tokens = 1024
    """


@pytest.fixture
async def gw(make_gateway, anthropic_toml):
    async with make_gateway(anthropic_toml) as gateway:
        yield gateway

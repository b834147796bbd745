"""The README's example plugin, enabled by module:object path in plugins.toml."""

from __future__ import annotations

import pytest
from hookgate import BadRequestError, SettingsError

TOML = """
    [gateway]
    plugins = ["mock", "guard"]
    default_provider = "mock"
    [plugins.guard]
    use = "examples.banned_words:BannedWords"
    words = ["password", "api key"]
"""


async def test_guard_rejects_banned_words_and_observer_counts(make_gateway):
    async with make_gateway(TOML) as gw:
        ok = await gw.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hello"}]
        )
        assert ok.choices[0].message.content == "[mock] you said: hello"
        with pytest.raises(BadRequestError, match="banned word 'password'") as err:
            await gw.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "what is the admin PASSWORD?"}]
            )
        assert err.value.http_status == 400
        guard = gw.plugin("guard")
        assert guard.answers == {"200": 1, "400": 1}


def test_guard_settings_are_validated(make_gateway):
    with pytest.raises(
        SettingsError, match=r"\[plugins\.guard\] words: List should have at least 1 item"
    ):
        make_gateway(TOML.replace('["password", "api key"]', "[]"))

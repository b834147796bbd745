"""plugins.toml: what loads, and the errors a deployment sees when it is wrong."""

from __future__ import annotations

import pytest
from hookgate import Gateway, SettingsError
from hookgate.settings import load_settings


def test_enabled_plugins_load_in_listed_order(make_gateway):
    gw = make_gateway("""
        [gateway]
        plugins = ["openai", "mock"]
    """)
    assert [p.name for p in gw.plugins] == ["openai", "mock"]
    assert gw.hooks.implementers("call_provider") == ["openai", "mock"]
    # openai serves its OpenAI-compatible presets too (lingyi, deepseek, ..., aliases yi, 01-ai).
    assert gw.providers == {"mock", *gw.plugin("openai").providers} >= {"openai", "lingyi"}


def test_installed_but_not_enabled_is_not_registered(make_gateway):
    gw = make_gateway("""
        [gateway]
        plugins = ["mock"]
    """)
    assert gw.plugin_manager.get_plugin("openai") is None


def test_plugin_not_installed_names_file_and_lists_installed(make_gateway):
    with pytest.raises(SettingsError) as err:
        make_gateway("""
            [gateway]
            plugins = ["mock", "retyr"]
        """)
    message = str(err.value)
    assert "plugins.toml" in message
    assert "'retyr'" in message
    assert "installed plugins:" in message and "mock" in message and "openai" in message


def test_unknown_key_in_gateway_table_is_named(make_gateway):
    with pytest.raises(SettingsError, match=r"plugins\.toml: gateway\.plugin: Extra inputs"):
        make_gateway("""
            [gateway]
            plugin = ["mock"]
        """)


def test_plugin_settings_are_validated_by_the_plugin(make_gateway):
    with pytest.raises(
        SettingsError, match=r"\[plugins\.mock\] latency_ms: Input should be a valid number"
    ):
        make_gateway("""
            [gateway]
            plugins = ["mock"]
            [plugins.mock]
            latency_ms = "slow"
        """)
    with pytest.raises(
        SettingsError, match=r"\[plugins\.openai\] base_ulr: Extra inputs are not permitted"
    ):
        make_gateway("""
            [gateway]
            plugins = ["openai"]
            [plugins.openai]
            base_ulr = "http://127.0.0.1:1/v1"
        """)


def test_table_for_a_plugin_that_does_not_exist(make_gateway):
    with pytest.raises(
        SettingsError, match=r"\[plugins\.cahce\] configures a plugin that is neither"
    ):
        make_gateway("""
            [gateway]
            plugins = ["mock"]
            [plugins.cahce]
            mode = "simple"
        """)


def test_table_for_an_installed_but_disabled_plugin_is_fine(make_gateway):
    gw = make_gateway("""
        [gateway]
        plugins = ["mock"]
        [plugins.openai]
        base_url = "http://127.0.0.1:1/v1"
    """)
    assert [p.name for p in gw.plugins] == ["mock"]


def test_listing_a_plugin_twice(make_gateway):
    with pytest.raises(SettingsError, match="lists 'mock' twice"):
        make_gateway("""
            [gateway]
            plugins = ["mock", "mock"]
        """)


def test_invalid_toml_names_the_file(write_toml):
    path = write_toml("[gateway\nplugins = 1")
    with pytest.raises(SettingsError, match="not valid TOML"):
        Gateway.from_toml(path)


def test_environment_interpolation(write_toml, monkeypatch):
    monkeypatch.setenv("HG_TEST_KEY", "sk-from-env")
    path = write_toml("""
        [gateway]
        plugins = ["openai"]
        [plugins.openai]
        api_key = "${HG_TEST_KEY}"
        base_url = "${HG_TEST_UNSET:-http://127.0.0.1:9/v1}"
    """)
    gw = Gateway.from_toml(path)
    settings = gw.plugin("openai").settings
    assert settings.api_key == "sk-from-env"
    assert settings.base_url == "http://127.0.0.1:9/v1"


def test_missing_environment_variable_is_named(write_toml, monkeypatch):
    monkeypatch.delenv("HG_TEST_MISSING", raising=False)
    path = write_toml("""
        [gateway]
        plugins = ["openai"]
        [plugins.openai]
        api_key = "${HG_TEST_MISSING}"
    """)
    with pytest.raises(
        SettingsError,
        match=r"plugins\.openai\.api_key needs the environment variable HG_TEST_MISSING",
    ):
        Gateway.from_toml(path)


def test_file_found_through_environment(write_toml, monkeypatch, tmp_path):
    path = write_toml(
        """
        [gateway]
        plugins = ["mock"]
        default_provider = "mock"
    """,
        name="elsewhere.toml",
    )
    monkeypatch.setenv("HOOKGATE_CONFIG", str(path))
    monkeypatch.chdir(tmp_path)
    assert load_settings().source == str(path)


def test_local_plugin_by_module_path(make_gateway):
    gw = make_gateway("""
        [gateway]
        plugins = ["mock", "guard"]
        [plugins.guard]
        use = "examples.banned_words:BannedWords"
        words = ["forbidden"]
    """)
    assert gw.plugins[-1].source == "examples.banned_words:BannedWords"
    assert "pre_request" in gw.plugins[-1].hooks


def test_local_plugin_that_cannot_be_imported(make_gateway):
    with pytest.raises(
        SettingsError, match=r"use = 'nowhere\.at_all:Plugin': cannot import 'nowhere\.at_all'"
    ):
        make_gateway("""
            [gateway]
            plugins = ["guard"]
            [plugins.guard]
            use = "nowhere.at_all:Plugin"
        """)


def test_async_call_provider_is_rejected(make_gateway):
    with pytest.raises(SettingsError, match="implements call_provider with 'async def'"):
        make_gateway("""
            [gateway]
            plugins = ["bad"]
            [plugins.bad]
            use = "tests.core.plugins_for_tests:AsyncCallProvider"
        """)


def test_misspelled_hook_fails_at_start_up(make_gateway):
    with pytest.raises(SettingsError, match="pre_reqest"):
        make_gateway("""
            [gateway]
            plugins = ["typo"]
            [plugins.typo]
            use = "tests.core.plugins_for_tests:MisspelledHook"
        """)


def test_reference_plugins_toml_is_valid():
    gw = Gateway.from_toml("plugins.toml")
    assert "mock" in gw.providers
    assert "pc-mock-fallback" in gw.settings.configs

"""The plugin as a deployment sees it: settings, `hookgate providers`, the route switch."""

from __future__ import annotations

import httpx
import pytest
from click.testing import CliRunner
from hookgate import Gateway, SettingsError
from hookgate.cli import cli


def test_providers_command_shows_the_configured_base_url(write_toml):
    path = write_toml("""
        [gateway]
        plugins = ["anthropic"]
        [plugins.anthropic]
        base_url = "http://127.0.0.1:9/v1/"
    """)
    result = CliRunner().invoke(cli, ["providers", "--config", str(path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    [row] = [line.split() for line in result.output.splitlines() if line.startswith("anthropic")]
    assert row == ["anthropic", "anthropic", "yes", "http://127.0.0.1:9/v1"]


def test_a_bad_setting_is_named(write_toml):
    path = write_toml("""
        [gateway]
        plugins = ["anthropic"]
        [plugins.anthropic]
        default_max_token = 10
    """)
    with pytest.raises(SettingsError) as err:
        Gateway.from_toml(path)
    assert "default_max_token" in str(err.value)


def test_messages_route_can_be_turned_off(make_gateway, serve):
    gateway = make_gateway("""
        [gateway]
        plugins = ["anthropic"]
        [plugins.anthropic]
        messages_route = false
    """)
    with serve(gateway) as server:
        response = httpx.post(f"{server.url}/v1/messages", json={}, timeout=10)
    assert response.status_code == 404

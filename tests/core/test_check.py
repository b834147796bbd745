"""`hookgate check` finds what would otherwise fail only once a request used it."""

from __future__ import annotations

from click.testing import CliRunner
from hookgate.cli import cli


def check(path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["check", "--config", str(path)], catch_exceptions=False)
    return result.exit_code, result.output


def test_check_lists_every_problem_a_request_would_hit(write_toml):
    path = write_toml("""
        [gateway]
        plugins = ["mock", "retry"]

        [virtual_keys.prod]
        provider = "anthropic"
        api_key = "sk-ant-not-shown"

        [virtual_keys.local]
        provider = "mock"

        [configs.fallback-pair]
        strategy = { mode = "fallback" }
        targets = [{ provider = "mock" }, { provider = "mock" }]

        [configs.semantic]
        provider = "mock"
        cache = { mode = "semantic" }

        [configs.fine]
        provider = "mock"
        retry = { attempts = 2 }

        [configs.no-provider-yet]
        retry = { attempts = 1 }

        [plugins.cache]
        max_entries = 10
    """)
    code, output = check(path)
    assert code == 1
    assert "4 problem(s)" in output
    assert (
        "[plugins.cache] configures a plugin that is not enabled: add 'cache' to "
        "[gateway] plugins, or remove the table"
    ) in output
    assert (
        "[virtual_keys.prod] provider 'anthropic' is not served by an enabled plugin "
        "(enabled providers: mock)"
    ) in output
    assert (
        "[configs.fallback-pair] config.strategy.mode is 'fallback', but no enabled plugin "
        "provides it: enable the 'fallback' plugin in [gateway] plugins"
    ) in output
    assert (
        "[configs.semantic] config.cache.mode is 'semantic', but no enabled plugin provides "
        "it: enable the 'semantic-cache' plugin in [gateway] plugins"
    ) in output
    assert "virtual_keys.local" not in output
    assert "fine" not in output and "no-provider-yet" not in output
    assert "sk-ant-not-shown" not in output


def test_check_passes_when_everything_is_served(write_toml):
    path = write_toml("""
        [gateway]
        plugins = ["mock", "fallback"]

        [virtual_keys.local]
        provider = "mock"

        [configs.pair]
        strategy = { mode = "fallback" }
        targets = [{ virtual_key = "local" }, { provider = "mock" }]
    """)
    code, output = check(path)
    assert code == 0, output
    assert "strategies: single, fallback, loadbalance" in output

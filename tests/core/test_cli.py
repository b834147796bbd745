"""The hookgate command, as a user runs it."""

from __future__ import annotations

from click.testing import CliRunner
from hookgate.cli import cli


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_demo_runs_on_the_reference_deployment():
    result = run("demo")
    assert result.exit_code == 0, result.output
    assert "1. a chat completion" in result.output
    assert "answer: [mock] you said: What does a gateway do?" in result.output
    assert "phases: pre_request" in result.output


def test_check_explains_a_bad_file(write_toml):
    path = write_toml("""
        [gateway]
        plugins = ["mock", "nosuch"]
    """)
    result = run("check", "--config", str(path))
    assert result.exit_code == 1
    assert "plugin 'nosuch' is enabled in [gateway] plugins but not installed" in result.output


def test_check_summarises_a_good_file():
    result = run("check", "--config", "plugins.toml")
    assert result.exit_code == 0, result.output
    assert "ok: plugins.toml" in result.output
    assert "providers: 01-ai, anthropic, azure-openai, deepseek, gemini, google," in result.output
    assert "strategies: single, fallback, loadbalance" in result.output


def test_plugins_lists_installed_and_enabled(write_toml):
    path = write_toml("""
        [gateway]
        plugins = ["mock"]
    """)
    result = run("plugins", "--config", str(path))
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()[1:]}
    assert "yes" in lines["mock"] and "call_provider" in lines["mock"]
    assert " no " in lines["openai"]


def test_chat_prints_the_answer(write_toml):
    path = write_toml("""
        [gateway]
        plugins = ["mock"]
        default_provider = "mock"
    """)
    result = run("chat", "--config", str(path), "hi there")
    assert result.exit_code == 0, result.output
    assert "[mock] you said: hi there" in result.output


def test_chat_reports_errors_without_a_traceback(write_toml):
    path = write_toml("""
        [gateway]
        plugins = ["mock"]
    """)
    result = run("chat", "--config", str(path), "--provider", "nope", "hi")
    assert result.exit_code == 1
    assert "400: config: unknown provider 'nope'" in result.output
    assert "Traceback" not in result.output


def test_plugin_commands_come_from_the_named_file(write_toml, tmp_path, monkeypatch):
    path = write_toml(
        """
        [gateway]
        plugins = ["mock", "logging"]
        [plugins.logging]
        log_to = "none"
        store = { path = "logs.db" }
    """,
        name="with-logging.toml",
    )
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    monkeypatch.chdir(empty)  # no ./plugins.toml here: only --config can enable logging
    monkeypatch.delenv("HOOKGATE_CONFIG", raising=False)
    monkeypatch.setattr("sys.argv", ["hookgate", "logs", "--config", str(path)])
    result = CliRunner().invoke(cli, ["logs", "--config", str(path)], catch_exceptions=False)
    assert "No such command" not in result.output
    assert "no log store at" in result.output and "logs.db" in result.output

"""``hookgate providers``: installed provider plugins, their names, presets and base URLs."""

from __future__ import annotations

from click.testing import CliRunner
from hookgate.cli import cli


def rows(output: str) -> dict[str, list[str]]:
    table = {}
    for line in output.splitlines():
        cells = line.split(maxsplit=3)
        if len(cells) == 4 and cells[2] in ("yes", "no"):
            table[cells[0]] = cells[1:]
    return table


def test_providers_lists_presets_aliases_and_what_is_enabled(write_toml):
    path = write_toml("""
        [gateway]
        plugins = ["openai", "gemini"]
        [plugins.openai.upstreams.gpu-box]
        base_url = "http://10.0.0.7:8000/v1"
        aliases = ["box"]
        [plugins.openai.upstreams.groq]
        base_url = "http://127.0.0.1:9999/openai/v1"
    """)
    result = CliRunner().invoke(cli, ["providers", "--config", str(path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].split() == ["provider", "plugin", "enabled", "base", "url"]
    table = rows(result.output)
    assert table["lingyi"] == ["openai", "yes", "https://api.lingyiwanwu.com/v1"]
    assert table["yi"] == ["openai", "yes", "alias of lingyi"]
    assert table["01-ai"] == ["openai", "yes", "alias of lingyi"]
    assert table["deepseek"] == ["openai", "yes", "https://api.deepseek.com"]
    assert table["groq"] == ["openai", "yes", "http://127.0.0.1:9999/openai/v1"]  # overridden
    assert table["gpu-box"] == ["openai", "yes", "http://10.0.0.7:8000/v1"]
    assert table["box"] == ["openai", "yes", "alias of gpu-box"]
    assert table["ollama"] == ["openai", "yes", "http://localhost:11434/v1"]
    assert table["google"] == ["gemini", "yes", "https://generativelanguage.googleapis.com/v1beta"]
    assert table["gemini"] == ["gemini", "yes", "alias of google"]
    # Installed but not enabled: listed with the class's own names.
    assert table["azure-openai"] == [
        "azure-openai",
        "no",
        "https://{resource_name}.openai.azure.com/openai",
    ]
    assert table["mock"] == ["mock", "no", "-"]


def test_providers_reports_a_broken_plugins_toml(write_toml):
    path = write_toml("""
        [gateway]
        plugins = ["openai"]
        [plugins.openai.upstreams.nowhere]
        api_key = "k"
    """)
    result = CliRunner().invoke(cli, ["providers", "--config", str(path)])
    assert result.exit_code == 1
    assert "upstreams.nowhere] is not a preset" in result.output
    assert rows(result.output)["lingyi"] == ["openai", "no", "https://api.lingyiwanwu.com/v1"]

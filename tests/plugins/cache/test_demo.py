"""``hookgate demo`` with the cache enabled: its cache scenario shows a miss, then a hit."""

from __future__ import annotations

import re

from click.testing import CliRunner
from hookgate.cli import cli


def test_demo_cache_scenario_misses_then_hits(write_toml):
    path = write_toml("""
        [gateway]
        plugins = ["mock", "cache"]
        default_provider = "mock"
    """)
    result = CliRunner().invoke(cli, ["demo", "--config", str(path)])
    assert result.exit_code == 0, result.output
    scenario = result.output.split("5. cache: the same question twice")[1].split("\n\n")[0]
    statuses = re.findall(r"; cache ([A-Z ]+);", scenario)
    assert statuses == ["MISS", "HIT"]
    assert "by cache at config; cache HIT" in scenario

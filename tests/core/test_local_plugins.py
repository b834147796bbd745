"""A local plugin (`use = "examples.banned_words:BannedWords"`) resolves relative to the
folder of the plugins.toml that names it, from whatever folder hookgate is started in."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOOKGATE = Path(sys.executable).parent / "hookgate"

TOML = """\
[gateway]
plugins = ["mock", "guard"]
default_provider = "mock"

[plugins.guard]
use = "{use}"
words = ["password"]
"""


def deployment(folder: Path, package: str = "examples") -> Path:
    (folder / package).mkdir(parents=True)
    (folder / package / "__init__.py").write_text("")
    shutil.copy(ROOT / "examples" / "banned_words.py", folder / package / "guard_words.py")
    path = folder / "plugins.toml"
    path.write_text(TOML.format(use=f"{package}.guard_words:BannedWords"))
    return path


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HOOKGATE_CONFIG")}
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env, timeout=120)


def test_check_and_demo_find_the_plugin_beside_plugins_toml_from_another_folder(tmp_path):
    config = deployment(tmp_path / "deploy")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    checked = run(str(HOOKGATE), "check", "--config", str(config), cwd=elsewhere)
    assert checked.returncode == 0, checked.stderr
    assert "plugins (hook order): mock, guard" in checked.stdout
    # and relative to the folder even when the path to plugins.toml is relative
    relative = run(str(HOOKGATE), "check", "--config", "deploy/plugins.toml", cwd=tmp_path)
    assert relative.returncode == 0, relative.stderr


async def test_an_embedded_gateway_loads_it_and_it_works(tmp_path):
    import pytest
    from hookgate import BadRequestError, Gateway

    config = deployment(tmp_path, package="localguards")
    async with Gateway.from_toml(config) as gw:
        with pytest.raises(BadRequestError, match="password"):
            await gw.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "my password is hunter2"}]
            )


def test_a_missing_local_module_still_says_what_could_not_be_imported(tmp_path):
    config = tmp_path / "plugins.toml"
    config.write_text(TOML.format(use="nothere.guard:BannedWords"))
    checked = run(str(HOOKGATE), "check", "--config", str(config), cwd=tmp_path)
    assert checked.returncode != 0
    assert "use = 'nothere.guard:BannedWords': cannot import 'nothere.guard'" in checked.stderr

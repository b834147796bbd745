"""`hookgate new-plugin NAME` writes a package that builds, loads, and passes its own test
with the hookgate.testing pytest plugin, exactly as a third-party author would run it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

HOOKGATE = Path(sys.executable).parent / "hookgate"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("VIRTUAL_ENV", None)
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env, timeout=240)


@pytest.mark.timeout(300)
def test_new_plugin_writes_a_package_whose_test_passes_and_whose_wheel_builds(tmp_path):
    made = run(str(HOOKGATE), "new-plugin", "token-cap", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    root = tmp_path / "hookgate-token-cap"
    assert "created hookgate-token-cap" in made.stdout
    pyproject = (root / "pyproject.toml").read_text()
    assert 'token-cap = "hookgate_token_cap:Plugin"' in pyproject
    assert '"hookgate>=0.1,<0.2"' in pyproject

    # Its own tests, in its own folder, with its own pytest configuration and our fixtures.
    tested = run(sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", cwd=root)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "2 passed" in tested.stdout
    assert "warning" not in tested.stdout.lower()

    uv = shutil.which("uv")
    assert uv is not None
    built = run(uv, "build", "--wheel", "--out-dir", str(tmp_path / "dist"), cwd=root)
    assert built.returncode == 0, built.stderr
    [wheel] = (tmp_path / "dist").glob("hookgate_token_cap-0.1.0-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        entry_points = archive.read("hookgate_token_cap-0.1.0.dist-info/entry_points.txt")
    assert b"[hookgate]\ntoken-cap = hookgate_token_cap:Plugin" in entry_points


def test_new_plugin_refuses_a_bad_name_or_an_existing_folder(tmp_path):
    bad = run(str(HOOKGATE), "new-plugin", "Token_Cap", cwd=tmp_path)
    assert bad.returncode != 0
    assert "'Token_Cap' is not a plugin name" in bad.stderr
    (tmp_path / "hookgate-x").mkdir()
    taken = run(str(HOOKGATE), "new-plugin", "x", cwd=tmp_path)
    assert taken.returncode != 0 and "already exists" in taken.stderr

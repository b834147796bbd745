"""Each distribution builds alone, and core + one plugin wheel is a working gateway."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
def test_core_and_mock_wheels_make_a_gateway_in_a_clean_venv(tmp_path):
    uv = shutil.which("uv")
    assert uv is not None, "uv is on PATH wherever the README's commands ran"
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("VIRTUAL_ENV", None)
    dist = tmp_path / "dist"
    for package in ("hookgate", "hookgate-mock"):
        subprocess.run(
            [uv, "build", "--package", package, "--wheel", "--out-dir", str(dist)],
            cwd=ROOT,
            check=True,
            capture_output=True,
            env=env,
        )
    venv = tmp_path / "venv"
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True, env=env)
    python = venv / "bin" / "python"
    subprocess.run(
        [uv, "pip", "install", "-q", "--python", str(python), *map(str, dist.glob("*.whl"))],
        check=True,
        capture_output=True,
        env=env,
    )
    (tmp_path / "plugins.toml").write_text(
        '[gateway]\nplugins = ["mock"]\ndefault_provider = "mock"\n'
    )
    result = subprocess.run(
        [venv / "bin" / "hookgate", "demo"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "answer: [mock] you said: What does a gateway do?" in result.stdout
    listed = subprocess.run(
        [
            python,
            "-c",
            "import importlib.util as u; print([m for m in "
            "('redis','chromadb','tenacity','starlette','hookgate_openai') if u.find_spec(m)])",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert listed == "[]"  # nothing heavy came along

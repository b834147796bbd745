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


def _members() -> list[Path]:
    return [ROOT / "core", *sorted(ROOT.glob("plugins/*")), *sorted(ROOT.glob("providers/*"))]


def test_every_wheel_ships_the_license_a_bounded_hookgate_and_a_real_description(tmp_path):
    import email.parser
    import tomllib
    import zipfile

    uv = shutil.which("uv")
    assert uv is not None
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("VIRTUAL_ENV", None)
    subprocess.run(
        [uv, "build", "--all-packages", "--wheel", "--out-dir", str(tmp_path)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        env=env,
    )
    license_text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in license_text and "Version 2.0" in license_text
    names = [tomllib.loads((m / "pyproject.toml").read_text())["project"]["name"] for m in _members()]
    for name in names:
        [wheel] = tmp_path.glob(f"{name.replace('-', '_')}-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            licenses = [n for n in archive.namelist() if n.endswith(".dist-info/licenses/LICENSE")]
            assert licenses, f"{wheel.name} ships no LICENSE: add license-files = [\"LICENSE\"]"
            assert archive.read(licenses[0]).decode() == license_text, wheel.name
            [metadata] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
            meta = email.parser.Parser().parsestr(archive.read(metadata).decode())
        assert meta["License-Expression"] == "Apache-2.0", wheel.name
        summary = meta["Summary"] or ""
        # a reader of the package index learns what it does, not just its name
        assert len(summary.split()) >= 6, f"{name}: description too thin: {summary!r}"
        assert len(meta.get_payload()) > 200, f"{name}: no README as long description"
        if name != "hookgate":
            requires = [r for r in meta.get_all("Requires-Dist") or [] if r.startswith("hookgate")]
            assert requires, f"{name} does not depend on hookgate"
            for requirement in requires:
                assert "<" in requirement and ">=" in requirement, (
                    f"{name}: {requirement!r} must name a bounded range, e.g. hookgate>=0.1,<0.2"
                )

"""docs/ builds with MkDocs in strict mode, has a page per hook, and its request-context
reference names every public field of the objects hooks receive and return."""

from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys
from pathlib import Path

import pytest
from hookgate import (
    Attempt,
    Decision,
    RequestContext,
    Response,
    SSEEvent,
    StreamResponse,
    hookspecs,
)
from hookgate.context import Outcome

ROOT = Path(__file__).resolve().parents[2]
HOOKS = [
    name
    for name, value in vars(hookspecs).items()
    if inspect.isfunction(value) and hasattr(value, "hookgate_spec")
]


@pytest.mark.timeout(180)
def test_the_docs_build_strictly_with_a_page_per_hook(tmp_path):
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert built.returncode == 0, built.stderr
    assert len(HOOKS) >= 12  # every hookspec has its page
    for hook in HOOKS:
        page = "startup_shutdown" if hook in ("startup", "shutdown") else hook
        html = (tmp_path / "hooks" / page / "index.html").read_text()
        assert f"def {hook}(" in html, hook  # its signature
        assert "Example" in html, hook
    for page in ("writing-a-provider", "writing-a-strategy", "testing-a-plugin"):
        assert (tmp_path / page / "index.html").is_file()


def public_names(cls: type) -> set[str]:
    names = {f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")}
    for name, value in vars(cls).items():
        if not name.startswith("_") and (
            isinstance(value, property | classmethod | staticmethod) or inspect.isfunction(value)
        ):
            names.add(name)
    return names


@pytest.mark.parametrize(
    "cls", [RequestContext, Attempt, Decision, Outcome, Response, StreamResponse, SSEEvent]
)
def test_the_reference_covers_every_public_name(cls):
    text = (ROOT / "docs" / "reference" / "request-context.md").read_text()
    section = text.split(f"## {cls.__name__}\n", 1)[1].split("\n## ", 1)[0]
    missing = sorted(name for name in public_names(cls) if f"`{name}" not in section)
    assert missing == [], f"docs/reference/request-context.md, {cls.__name__}: {missing}"

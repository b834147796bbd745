"""``hookgate new-plugin NAME``: a plugin package that installs, loads and passes its test.

The package is what this repository's own plugins look like: ``hookgate-NAME`` with module
``hookgate_NAME``, an entry point in group ``hookgate``, a bounded ``hookgate`` range, a
pydantic ``Settings`` model, one ``pre_request`` hook and a test that drives a real gateway
against ``hookgate.testing``'s fake OpenAI upstream.
"""

from __future__ import annotations

import re
from pathlib import Path

from . import __version__

__all__ = ["new_plugin"]

_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


def _bounds() -> str:
    major, minor = (int(part) for part in __version__.split(".")[:2])
    upper = f"{major + 1}" if major >= 1 else f"{major}.{minor + 1}"
    return f">={major}.{minor},<{upper}"


def new_plugin(name: str, parent: Path) -> Path:
    """Write ``parent/hookgate-<name>/`` and return its path; ValueError on a bad name."""
    if not _NAME.match(name):
        raise ValueError(
            f"{name!r} is not a plugin name: lower-case letters, digits and single dashes, "
            "starting with a letter (e.g. token-cap)"
        )
    module = "hookgate_" + name.replace("-", "_")
    root = parent / f"hookgate-{name}"
    if root.exists():
        raise ValueError(f"{root} already exists")
    files = {
        "pyproject.toml": _PYPROJECT,
        "README.md": _README,
        f"src/{module}/__init__.py": _PLUGIN,
        f"src/{module}/py.typed": "",
        f"tests/test_{module}.py": _TEST,
    }
    for relative, template in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        text = template.replace("{{name}}", name).replace("{{module}}", module)
        path.write_text(text.replace("{{hookgate}}", _bounds()), encoding="utf-8")
    return root


_PYPROJECT = """\
[project]
name = "hookgate-{{name}}"
version = "0.1.0"
description = "hookgate plugin {{name}}: caps max_tokens on every request (edit me)."
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["hookgate{{hookgate}}"]

[project.entry-points.hookgate]
{{name}} = "{{module}}:Plugin"

[dependency-groups]
dev = ["hookgate[testing]{{hookgate}}", "hookgate-openai{{hookgate}}", "pytest-asyncio>=1.0"]

[build-system]
requires = ["uv_build>=0.8,<1"]
build-backend = "uv_build"

[tool.pytest.ini_options]
asyncio_mode = "auto"
asyncio_default_fixture_loop_scope = "function"
pythonpath = ["src"]
filterwarnings = ["error"]
"""

_README = """\
# hookgate-{{name}}

A [hookgate](https://pypi.org/project/hookgate/) plugin. Install it beside hookgate and
enable it by name in `plugins.toml`:

```toml
[gateway]
plugins = ["openai", "{{name}}"]

[plugins.{{name}}]
max_tokens = 256
```

Test it with `uv run pytest` (the `hookgate.testing` pytest plugin gives the tests a fake
OpenAI upstream and a gateway built from a TOML string).
"""

_PLUGIN = '''\
"""hookgate plugin {{name}}: caps ``max_tokens`` on every chat request."""

from __future__ import annotations

from typing import Annotated

from hookgate import RequestContext, hookimpl
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Plugin", "Settings"]


class Settings(BaseModel):
    """``[plugins.{{name}}]`` in plugins.toml; a misspelt key is an error naming it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_tokens: Annotated[int, Field(ge=1)] = 256


class Plugin:
    """The ``{{name}}`` plugin. Hooks run in the order plugins.toml lists the plugins."""

    Settings = Settings

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()

    @hookimpl
    def pre_request(self, ctx: RequestContext) -> None:
        if ctx.endpoint != "chat.completions":
            return
        asked = ctx.body.get("max_tokens")
        cap = self.settings.max_tokens
        if not isinstance(asked, int) or asked > cap:
            ctx.body = {**ctx.body, "max_tokens": cap}
'''

_TEST = '''\
"""Drive a real gateway, with this plugin enabled, against a fake OpenAI upstream."""

from __future__ import annotations

HELLO = [{"role": "user", "content": "Hello"}]


def toml(upstream: str, cap: int) -> str:
    return f"""
        [gateway]
        plugins = ["openai", "{{name}}"]
        default_provider = "openai"

        [plugins.openai]
        base_url = "{upstream}"
        api_key = "sk-test"

        [plugins.{{name}}]
        use = "{{module}}:Plugin"   # from src/, so the test needs no install
        max_tokens = {cap}
    """


async def test_max_tokens_is_capped(hookgate_gateway, fake_openai):
    async with hookgate_gateway(toml(fake_openai.url, 16)) as gw:
        answer = await gw.chat.completions.create(
            model="gpt-4o-mini", messages=HELLO, max_tokens=4000
        )
        await gw.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=8)
    assert answer.choices[0].message.content
    assert [call.json["max_tokens"] for call in fake_openai.calls()] == [16, 8]


async def test_upstream_failures_reach_the_caller_unchanged(hookgate_gateway, fake_openai):
    import pytest
    from hookgate import ProviderError

    fake_openai.script(503)
    async with hookgate_gateway(toml(fake_openai.url, 16)) as gw:
        with pytest.raises(ProviderError) as failure:
            await gw.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert failure.value.http_status == 503
'''

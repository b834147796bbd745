"""Fixtures for the control plane: a plugins.toml with ``control`` enabled and a real store
(each test that uses ``config_file`` runs twice: a SQLite file in tmp_path, and a fresh
database on a real PostgreSQL), the CLI run in-process (click's runner, the real commands),
and the server app on a free port. A test about one backend only parametrizes
``store_kind`` itself."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hookgate import Gateway
from hookgate.cli import cli
from portkey_ai import Portkey

from tests.support.fake_openai import FakeOpenAI

HELLO = [{"role": "user", "content": "hello"}]


def plugins_toml(upstream_url: str, extra: str = "", store_url: str | None = None) -> str:
    store = f'store = {{ url = "{store_url}" }}' if store_url else ""
    return textwrap.dedent(f"""
        [gateway]
        plugins = ["mock", "openai", "retry", "fallback", "control"]
        default_provider = "mock"
        [plugins.openai]
        base_url = "{upstream_url}"
        [plugins.retry]
        initial_delay = 0.01
        jitter = false
        [plugins.control]
        poll_interval = 0.1
        {store}
        [configs.pc-from-toml]
        provider = "mock"
        override_params = {{ model = "from-toml" }}
        [virtual_keys.vk-toml]
        provider = "openai"
        api_key = "sk-toml-secret"
    """) + textwrap.dedent(extra)


@pytest.fixture(autouse=True)
def _no_key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOOKGATE_MASTER_KEY", raising=False)
    monkeypatch.delenv("HOOKGATE_ADMIN_KEY", raising=False)


@pytest.fixture(params=["sqlite", "postgres"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_url(store_kind: str, request: pytest.FixtureRequest) -> str | None:
    """None for the SQLite file beside plugins.toml, else a fresh PostgreSQL database."""
    if store_kind == "sqlite":
        return None
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def config_file(
    tmp_path: Path,
    fake_openai: FakeOpenAI,
    store_url: str | None,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    if store_url is not None:
        # A shared store takes the master key from the environment only.
        from hookgate_control.crypto import generate_key

        monkeypatch.setenv("HOOKGATE_MASTER_KEY", generate_key())
    path = tmp_path / "plugins.toml"
    path.write_text(plugins_toml(fake_openai.url, store_url=store_url), encoding="utf-8")
    return path


class Cli:
    """``hookgate ...`` against one plugins.toml."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.runner = CliRunner()

    def __call__(self, *args: str, ok: bool = True, input: str | None = None) -> Any:
        # `hookgate` adds plugin commands once per process, for the plugins.toml it first
        # sees; an earlier test in this process may have used one without `control`.
        if "keys" not in cli.commands:
            from hookgate_control.cli import register

            register(cli)
        result = self.runner.invoke(cli, [*args, "--config", str(self.config)], input=input)
        if ok:
            assert result.exit_code == 0, (result.output, result.exception)
        return result

    def json(self, *args: str) -> Any:
        result = self(*args, "--json")
        return json.loads(result.stdout)


@pytest.fixture
def hookgate(config_file: Path) -> Cli:
    return Cli(config_file)


@pytest.fixture
def admin_key(hookgate: Cli) -> str:
    return hookgate.json("keys", "create", "--name", "root", "--role", "admin")["key"]


@pytest.fixture
def server(config_file: Path, serve: Callable[[Gateway], Any]) -> Iterator[Any]:
    with serve(Gateway.from_toml(config_file)) as running:
        yield running


_OPEN: list[Portkey] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    """Each SDK client holds two connection pools (its own, and its inner openai client's)."""
    yield
    while _OPEN:
        client = _OPEN.pop()
        client.close()
        client.openai_client.close()


def portkey(server: Any, key: str | None, **kwargs: Any) -> Portkey:
    client = Portkey(base_url=f"{server.url}/v1", api_key=key, **kwargs)
    _OPEN.append(client)
    return client

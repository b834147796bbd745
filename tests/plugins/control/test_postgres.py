"""What is particular to the control plane on PostgreSQL: the schema made once by instances
starting together, the master key from the environment only, provider keys encrypted in the
database, and one store seen by two gateways."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import pytest
from hookgate import Gateway

from tests.plugins.control.conftest import HELLO, Cli

pytestmark = pytest.mark.parametrize("store_kind", ["postgres"])

HOOKGATE = str(Path(sys.executable).parent / "hookgate")
SECRET = "sk-in-postgres-SECRET-0123456789"


def test_instances_starting_together_create_the_schema_once(config_file: Path, store_url: str):
    """Eight `hookgate keys create` processes at once against an empty database: every one
    succeeds (the migrations wait for each other behind the advisory lock)."""

    def create(i: int) -> subprocess.CompletedProcess[str]:
        argv = [HOOKGATE, "keys", "create", "--config", str(config_file), "--json"]
        return subprocess.run(
            [*argv, "--name", f"k{i}", "--role", "admin"],
            capture_output=True,
            text=True,
            check=False,
        )

    with ThreadPoolExecutor(8) as pool:
        done = list(pool.map(create, range(8)))
    assert [d.returncode for d in done] == [0] * 8, [d.stderr for d in done]
    keys = {json.loads(d.stdout)["key"] for d in done}
    assert len(keys) == 8
    with psycopg.connect(store_url) as conn:
        schema = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        workspaces = conn.execute("SELECT slug FROM workspaces").fetchall()
        count = conn.execute("SELECT count(*) FROM api_keys").fetchone()
    assert schema is not None and schema[0] >= 1
    assert workspaces == [("default",)]
    assert count == (8,)


def test_without_the_master_key_provider_keys_are_refused(
    hookgate: Cli, config_file: Path, serve, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    monkeypatch.delenv("HOOKGATE_MASTER_KEY")
    monkeypatch.setenv("UPSTREAM_KEY", SECRET)
    refused = hookgate(
        "vkeys",
        "create",
        "--name",
        "up",
        "--provider",
        "openai",
        "--key-env",
        "UPSTREAM_KEY",
        ok=False,
    )
    assert refused.exit_code != 0
    assert "HOOKGATE_MASTER_KEY" in refused.output
    admin = hookgate.json("keys", "create", "--name", "root", "--role", "admin")["key"]
    with serve(Gateway.from_toml(config_file)) as server:
        headers = {"x-portkey-api-key": admin}
        answer = httpx.post(
            f"{server.url}/v1/virtual-keys",
            json={"name": "up", "provider": "openai", "key": SECRET},
            headers=headers,
        )
        assert answer.status_code == 503
        error = answer.json()["error"]
        assert error["code"] == "master_key_missing"
        assert "HOOKGATE_MASTER_KEY" in error["message"]
        assert SECRET not in answer.text
        listed = httpx.get(f"{server.url}/v1/virtual-keys", headers=headers).json()
        assert listed["data"] == []
        # Everything that stores no provider key still works, and the gateway is ready.
        made = httpx.post(
            f"{server.url}/v1/configs",
            json={"name": "c", "config": {"provider": "mock"}},
            headers=headers,
        )
        assert made.status_code == 200, made.text
        assert httpx.get(f"{server.url}/ready").status_code == 200
    assert not (tmp_path / ".hookgate" / "master.key").exists()


async def test_provider_keys_are_encrypted_in_the_database(
    hookgate: Cli, store_url: str, monkeypatch: pytest.MonkeyPatch, fake_openai, tmp_path: Path
):
    monkeypatch.setenv("UPSTREAM_KEY", SECRET)
    hookgate(
        "vkeys",
        "create",
        "--name",
        "up",
        "--provider",
        "openai",
        "--slug",
        "vk-pg",
        "--key-env",
        "UPSTREAM_KEY",
    )
    with psycopg.connect(store_url) as conn:
        for (table,) in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall():
            for row in conn.execute(f'SELECT * FROM "{table}"').fetchall():
                assert SECRET not in repr(row), table
    assert not (tmp_path / ".hookgate" / "master.key").exists()
    async with Gateway.from_toml(hookgate.config) as gateway:
        await gateway.chat.completions.create(
            model="gpt-4o-mini", messages=HELLO, config={"virtual_key": "vk-pg"}
        )
    assert fake_openai.calls()[-1].headers["authorization"] == f"Bearer {SECRET}"


async def test_two_gateways_on_one_database_share_configs(
    config_file: Path, tmp_path: Path, hookgate: Cli
):
    """A second plugins.toml elsewhere, same URL: what one changes, the other serves."""
    other = tmp_path / "elsewhere" / "plugins.toml"
    other.parent.mkdir()
    other.write_text(config_file.read_text(encoding="utf-8"), encoding="utf-8")
    made = Cli(config_file).json(
        "configs",
        "create",
        "--name",
        "shared",
        "--config-json",
        '{"provider": "mock", "override_params": {"model": "from-one"}}',
    )
    async with Gateway.from_toml(other) as gateway:
        answer = await gateway.chat.completions.create(
            model="m", messages=HELLO, config=made["slug"]
        )
    assert answer.model == "from-one"
    assert Cli(other).json("configs", "list")["data"][0]["slug"] == made["slug"]


async def test_the_partition_secret_is_kept_in_the_shared_database(
    tmp_path: Path,
    store_url: str,
    postgres_server,
    redis_server,
    fake_openai,
    monkeypatch: pytest.MonkeyPatch,
):
    """Two gateways in different folders, without HOOKGATE_SECRET: on one database they
    derive the same cache partitions (a HIT across them); on two databases they do not."""
    monkeypatch.delenv("HOOKGATE_SECRET", raising=False)
    prefix = f"hg-test-{uuid.uuid4().hex[:8]}:"

    def gateway(name: str, url: str) -> Gateway:
        path = tmp_path / name / "plugins.toml"
        path.parent.mkdir()
        path.write_text(
            textwrap.dedent(f"""
                [gateway]
                plugins = ["openai", "control", "cache"]
                default_provider = "openai"
                [plugins.openai]
                base_url = "{fake_openai.url}"
                api_key = "sk-tenant-key"
                [plugins.control]
                store = {{ url = "{url}" }}
                [plugins.cache]
                backend = "redis"
                url = "{redis_server.url}"
                key_prefix = "{prefix}"
            """),
            encoding="utf-8",
        )
        return Gateway.from_toml(path)

    async def status(gw: Gateway, content: str) -> str | None:
        answer = await gw.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": content}],
            config={"cache": {"mode": "simple", "max_age": 60}},
        )
        return answer.hookgate.cache_status

    async with gateway("one", store_url) as one, gateway("two", store_url) as two:
        assert await status(one, "shared") == "MISS"
        assert await status(two, "shared") == "HIT"
    async with gateway("three", postgres_server.database()) as three:
        assert await status(three, "shared") == "MISS"  # another database, another secret
    assert not list(tmp_path.rglob("hookgate.secret"))
    with psycopg.connect(store_url) as conn:
        kept = conn.execute("SELECT name, length(value) FROM kept").fetchall()
    assert kept == [("deployment_secret", 64)]

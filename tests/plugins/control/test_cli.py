"""``hookgate workspaces|keys|configs|vkeys|audit`` against a real store, and the master key:
encryption at rest, the key file, rotation."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from hookgate import Gateway
from hookgate_control.crypto import generate_key

from tests.plugins.control.conftest import HELLO, Cli

ONE = '{"provider": "mock", "override_params": {"model": "one"}}'
TWO = '{"provider": "mock", "override_params": {"model": "two"}}'
SECRET = "sk-at-rest-SECRET-0123456789"


def test_keys_create_json_prints_one_object_and_notices_on_stderr(hookgate: Cli):
    result = hookgate("keys", "create", "--name", "root", "--role", "admin", "--json")
    made = json.loads(result.stdout)
    assert made["key"].startswith("hg-") and made["id"]
    assert "not shown again" in result.stderr
    listed = hookgate.json("keys", "list")["data"]
    assert [k["id"] for k in listed] == [made["id"]]
    assert made["key"] not in json.dumps(listed)
    revoked = hookgate.json("keys", "revoke", made["id"])
    assert revoked["status"] == "revoked"
    text = hookgate("keys", "list").stdout
    assert "revoked" in text and made["key"] not in text


def test_workspaces_and_a_member_key(hookgate: Cli):
    hookgate("workspaces", "create", "team-a", "--description", "A")
    assert [w["slug"] for w in hookgate.json("workspaces", "list")["data"]] == ["default", "team-a"]
    made = hookgate.json(
        "keys", "create", "--name", "a", "--role", "member", "--workspace", "team-a"
    )
    assert made["workspace_id"] == "team-a" and made["role"] == "member"
    bad = hookgate(
        "keys", "create", "--name", "b", "--role", "member", "--workspace", "zz", ok=False
    )
    assert bad.exit_code == 1 and "no workspace 'zz'" in bad.output
    taken = hookgate("workspaces", "create", "team-a", ok=False)
    assert "exists already" in taken.output


def test_configs_from_the_cli(hookgate: Cli, tmp_path: Path):
    made = hookgate.json(
        "configs",
        "create",
        "--name",
        "cli",
        "--slug",
        "pc-cli",
        "--config-json",
        ONE,
        "--message",
        "first",
    )
    assert (made["slug"], made["version"]) == ("pc-cli", 1)
    file = tmp_path / "two.json"
    file.write_text(TWO)
    assert hookgate.json("configs", "update", "pc-cli", "--file", str(file))["version"] == 2
    stale = hookgate(
        "configs",
        "update",
        "pc-cli",
        "--config-json",
        ONE,
        "--base-version",
        made["version_id"],
        ok=False,
    )
    assert "409" in stale.output and "changed since version" in stale.output
    history = hookgate.json("configs", "history", "pc-cli")["data"]
    assert [v["version"] for v in history] == [2, 1]
    assert history[1]["message"] == "first" and history[1]["created_by"] == "cli"
    diff = hookgate("configs", "diff", "pc-cli").stdout
    assert '-    "model": "one"' in diff and '+    "model": "two"' in diff
    assert hookgate.json("configs", "rollback", "pc-cli", "1")["version"] == 3
    assert hookgate.json("configs", "show", "pc-cli")["config"]["override_params"]["model"] == "one"
    assert hookgate.json("configs", "show", "pc-cli", "--version", "2")["version"] == 2
    assert "pc-cli" in hookgate("configs", "list").stdout
    bad = hookgate(
        "configs", "create", "--name", "x", "--config-json", '{"provider": "nope"}', ok=False
    )
    assert "unknown provider 'nope'" in bad.output
    out = tmp_path / "export.json"
    hookgate("configs", "export", "-o", str(out))
    exported = json.loads(out.read_text())
    assert [c["slug"] for c in exported["configs"]] == ["pc-cli"]
    exported["configs"][0]["slug"] = "pc-copy"
    out.write_text(json.dumps(exported))
    assert hookgate.json("configs", "import", str(out))["results"][0]["action"] == "created"


def test_an_unenabled_plugin_is_a_clear_error(hookgate: Cli):
    hookgate.config.write_text('[gateway]\nplugins = ["mock"]\n[plugins.control]\n')
    result = hookgate("keys", "list", ok=False)
    assert result.exit_code != 0


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


@pytest.mark.parametrize("store_kind", ["sqlite"])  # the key file: a SQLite store's
async def test_provider_keys_are_encrypted_at_rest(
    hookgate: Cli, monkeypatch: pytest.MonkeyPatch, fake_openai, tmp_path: Path
):
    monkeypatch.setenv("UPSTREAM_KEY", SECRET)
    made = hookgate.json(
        "vkeys",
        "create",
        "--name",
        "up",
        "--provider",
        "openai",
        "--slug",
        "vk-up",
        "--key-env",
        "UPSTREAM_KEY",
    )
    assert made["key"] == "sk-...6789"
    listed = hookgate("vkeys", "list").stdout
    assert "sk-...6789" in listed and SECRET not in listed
    key_file = tmp_path / ".hookgate" / "master.key"
    store = tmp_path / ".hookgate" / "control.db"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    for path in files_under(tmp_path):
        assert SECRET.encode() not in path.read_bytes(), path

    async with Gateway.from_toml(hookgate.config) as gateway:
        await gateway.chat.completions.create(
            model="gpt-4o-mini", messages=HELLO, config={"virtual_key": "vk-up"}
        )
    assert fake_openai.calls()[-1].headers["authorization"] == f"Bearer {SECRET}"

    before = key_file.read_text()
    rotated = hookgate.json("vkeys", "rotate-master-key")
    assert rotated["resealed"] == 1 and "master_key" not in rotated
    assert key_file.read_text() != before
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    for path in files_under(tmp_path):
        assert SECRET.encode() not in path.read_bytes(), path
    async with Gateway.from_toml(hookgate.config) as gateway:
        await gateway.chat.completions.create(
            model="gpt-4o-mini", messages=HELLO, config={"virtual_key": "vk-up"}
        )
    assert fake_openai.calls()[-1].headers["authorization"] == f"Bearer {SECRET}"

    hookgate("vkeys", "delete", "vk-up")
    assert hookgate.json("vkeys", "list")["data"] == []
    audit = hookgate("audit").stdout
    assert "master_key.rotate" in audit and "virtual_key.delete" in audit


async def test_a_master_key_from_the_environment(
    hookgate: Cli, monkeypatch: pytest.MonkeyPatch, fake_openai, tmp_path: Path
):
    from hookgate_control.crypto import generate_key

    first = generate_key()
    monkeypatch.setenv("HOOKGATE_MASTER_KEY", first)
    monkeypatch.setenv("UPSTREAM_KEY", SECRET)
    hookgate(
        "vkeys",
        "create",
        "--name",
        "up",
        "--provider",
        "openai",
        "--slug",
        "vk-env",
        "--key-env",
        "UPSTREAM_KEY",
    )
    assert not (tmp_path / ".hookgate" / "master.key").exists()
    rotated = hookgate.json("vkeys", "rotate-master-key")
    assert rotated["master_key"] != first
    monkeypatch.setenv("HOOKGATE_MASTER_KEY", rotated["master_key"])
    async with Gateway.from_toml(hookgate.config) as gateway:
        await gateway.chat.completions.create(
            model="gpt-4o-mini", messages=HELLO, config={"virtual_key": "vk-env"}
        )
    assert fake_openai.calls()[-1].headers["authorization"] == f"Bearer {SECRET}"
    monkeypatch.setenv("HOOKGATE_MASTER_KEY", "not base64 at all!")
    result = hookgate("vkeys", "list", ok=False)
    assert "HOOKGATE_MASTER_KEY is not URL-safe base64" in result.output


def test_the_admin_key_from_the_environment_seeds_the_first_key(
    config_file: Path, serve, monkeypatch: pytest.MonkeyPatch, hookgate: Cli
):
    import httpx

    seed = "hg-seeded-admin-key-for-containers-0123456789"
    monkeypatch.setenv("HOOKGATE_ADMIN_KEY", seed)
    for _ in range(2):  # a second start seeds nothing more
        with serve(Gateway.from_toml(config_file)) as server:
            answer = httpx.get(f"{server.url}/v1/api-keys", headers={"x-portkey-api-key": seed})
            assert answer.status_code == 200
            keys = answer.json()["data"]
            assert [(k["name"], k["role"]) for k in keys] == [("HOOKGATE_ADMIN_KEY", "admin")]
            assert seed not in answer.text


@pytest.mark.parametrize("store_kind", ["sqlite"])  # moving a SQLite store onto PostgreSQL
async def test_control_copy_moves_a_sqlite_store_onto_postgres(
    hookgate: Cli, postgres_url: str, monkeypatch: pytest.MonkeyPatch, fake_openai, tmp_path: Path
):
    admin = hookgate.json("keys", "create", "--name", "root", "--role", "admin")
    hookgate("workspaces", "create", "team-a")
    made = hookgate.json("configs", "create", "--name", "prod", "--config-json", ONE)
    hookgate("configs", "update", made["slug"], "--config-json", TWO)
    monkeypatch.setenv("UPSTREAM_KEY", SECRET)
    hookgate(
        "vkeys",
        "create",
        "--name",
        "up",
        "--provider",
        "openai",
        "--slug",
        "vk-moved",
        "--key-env",
        "UPSTREAM_KEY",
    )
    store = tmp_path / ".hookgate" / "control.db"
    copy = ["control-copy", "--from", str(store), "--to", postgres_url]

    # The virtual key is sealed under the key file's master key: that one must come along.
    refused = hookgate.runner.invoke(cli_group(), copy)
    assert refused.exit_code != 0 and "HOOKGATE_MASTER_KEY" in refused.output
    monkeypatch.setenv("HOOKGATE_MASTER_KEY", generate_key())
    refused = hookgate.runner.invoke(cli_group(), copy)
    assert refused.exit_code != 0 and "not the master key that sealed" in refused.output
    monkeypatch.setenv(
        "HOOKGATE_MASTER_KEY", (tmp_path / ".hookgate" / "master.key").read_text().strip()
    )
    done = hookgate.runner.invoke(cli_group(), [*copy, "--json"])
    assert done.exit_code == 0, done.output
    copied = json.loads(done.stdout)["copied"]
    assert (copied["api_keys"], copied["configs"], copied["config_versions"]) == (1, 1, 2)
    assert copied["workspaces"] == 2 and copied["virtual_keys"] == 1 and copied["audit"] >= 5
    again = hookgate.runner.invoke(cli_group(), copy)  # a second copy would mix two stores
    assert again.exit_code != 0 and "not empty" in again.output

    # The same plugins.toml, now on PostgreSQL: the same key, history, and sealed provider key.
    text = hookgate.config.read_text().replace(
        "poll_interval = 0.1", f'poll_interval = 0.1\nstore = {{ url = "{postgres_url}" }}'
    )
    hookgate.config.write_text(text)
    store.rename(store.with_name("control.db.old"))  # nothing reads the file any more
    assert [k["id"] for k in hookgate.json("keys", "list")["data"]] == [admin["id"]]
    history = hookgate.json("configs", "history", made["slug"])["data"]
    assert [v["version"] for v in history] == [2, 1]
    assert hookgate.json("configs", "show", made["slug"])["version_id"] == history[0]["version_id"]
    async with Gateway.from_toml(hookgate.config) as gateway:
        answer = await gateway.chat.completions.create(
            model="m", messages=HELLO, config=made["slug"]
        )
        assert answer.model == "two"
        await gateway.chat.completions.create(
            model="gpt-4o-mini", messages=HELLO, config={"virtual_key": "vk-moved"}
        )
    assert fake_openai.calls()[-1].headers["authorization"] == f"Bearer {SECRET}"
    # New changes go on after the copied ones (versions, audit ids).
    hookgate("configs", "update", made["slug"], "--config-json", ONE)
    assert hookgate.json("configs", "history", made["slug"])["data"][0]["version"] == 3
    assert "config.update" in hookgate("audit").stdout


def cli_group() -> Any:
    from hookgate.cli import cli

    return cli

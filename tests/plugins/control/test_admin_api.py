"""Portkey's admin API on hookgate's server, driven by the ``portkey-ai`` SDK unchanged (raw
HTTP where the SDK has no method: versions, rollback, diff, export, audit)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from portkey_ai._vendor import openai  # chat calls raise the SDK's vendored openai's errors
from portkey_ai.api_resources import exceptions as pk  # admin calls raise these

from tests.plugins.control.conftest import HELLO, Cli, portkey
from tests.support.fake_openai import FakeOpenAI

# Either family, whichever the SDK method raises.
BadRequest = (pk.BadRequestError, openai.BadRequestError)
Denied = (pk.PermissionDeniedError, openai.PermissionDeniedError)
NotFound = (pk.NotFoundError, openai.NotFoundError)
Conflict = (pk.ConflictError, openai.ConflictError)
Unauthorized = (pk.AuthenticationError, openai.AuthenticationError)

MOCK_ONE = {"provider": "mock", "override_params": {"model": "model-one"}}
MOCK_TWO = {"provider": "mock", "override_params": {"model": "model-two"}}


def api(server, key, method, path, headers=None, **kwargs):
    headers = {**({"x-portkey-api-key": key} if key else {}), **(headers or {})}
    return httpx.request(method, f"{server.url}{path}", headers=headers, timeout=10, **kwargs)


def chat(server, key, config):
    return portkey(server, key, config=config).chat.completions.create(model="m", messages=HELLO)


def test_the_admin_api_is_closed_until_a_key_exists(server):
    for method, path in [("GET", "/v1/configs"), ("POST", "/v1/api-keys/workspace/service")]:
        answer = api(server, None, method, path, json={"name": "x"})
        assert answer.status_code == 403
        error = answer.json()["error"]
        assert error["code"] == "no_gateway_keys"
        assert "hookgate keys create" in error["message"]
    with pytest.raises(Denied):
        portkey(server, None).configs.list()
    # The data plane stays open while no key exists at all.
    assert chat(server, None, None).choices[0].message.content == "[mock] you said: hello"


def test_configs_create_use_update_versions_rollback(server, admin_key):
    admin = portkey(server, admin_key)
    created = admin.configs.create(name="Prod routing", config=MOCK_ONE)
    assert created.object == "config"
    assert created.slug.startswith("pc-prod-routing-")
    assert created.id and created.version_id
    slug = created.slug
    assert chat(server, admin_key, slug).model == "model-one"

    updated = admin.configs.update(slug=slug, config=MOCK_TWO)
    assert updated.object == "config"
    assert updated.version_id != created.version_id
    assert chat(server, admin_key, slug).model == "model-two"

    fetched = admin.configs.retrieve(slug=slug)
    assert fetched.config == MOCK_TWO
    assert fetched.version_id == updated.version_id
    assert fetched.name == "Prod routing"
    assert [c["slug"] for c in admin.configs.list().data] == [slug]

    versions = api(server, admin_key, "GET", f"/v1/configs/{slug}/versions").json()
    assert versions["object"] == "list"
    assert [v["version_id"] for v in versions["data"]] == [updated.version_id, created.version_id]
    first = versions["data"][-1]
    assert first["config"] == MOCK_ONE
    assert first["created_by_name"] == "root"
    assert first["created_by"] and first["created_at"].endswith("Z")

    diff = api(server, admin_key, "GET", f"/v1/configs/{slug}/diff").json()
    assert diff["changes"] == [
        {
            "op": "replace",
            "path": "config.override_params.model",
            "before": "model-one",
            "after": "model-two",
        }
    ]
    assert '-    "model": "model-one"' in diff["unified"]

    back = api(
        server,
        admin_key,
        "POST",
        f"/v1/configs/{slug}/rollback",
        json={"version_id": created.version_id, "message": "two was wrong"},
    ).json()
    assert back["rolled_back_to"] == created.version_id
    assert back["version"] == 3
    assert chat(server, admin_key, slug).model == "model-one"
    history = api(server, admin_key, "GET", f"/v1/configs/{slug}/versions").json()["data"]
    assert [v["version"] for v in history] == [3, 2, 1]  # history is never rewritten
    assert history[0]["message"] == "two was wrong"
    assert history[0]["rollback_of"] == created.version_id

    # A request may pin a version, by number or id.
    assert chat(server, admin_key, f"{slug}@2").model == "model-two"
    assert chat(server, admin_key, f"{slug}@{created.version_id}").model == "model-one"
    with pytest.raises(BadRequest, match="has no version '9'"):
        chat(server, admin_key, f"{slug}@9")

    admin.configs.delete(slug=slug)
    with pytest.raises(BadRequest, match="unknown config id"):
        chat(server, admin_key, slug)
    with pytest.raises(NotFound):
        admin.configs.retrieve(slug=slug)


def test_log_records_carry_the_config_slug_and_version(tmp_path, fake_openai, serve, hookgate):
    from hookgate import Gateway

    from tests.plugins.control.conftest import plugins_toml

    log_file = tmp_path / "requests.jsonl"
    text = plugins_toml(fake_openai.url, f'[plugins.logging]\nlog_to = "{log_file}"\n')
    text = text.replace('"control"]', '"control", "logging"]')
    hookgate.config.write_text(text, encoding="utf-8")
    key = hookgate.json("keys", "create", "--name", "root", "--role", "admin")["key"]
    with serve(Gateway.from_toml(hookgate.config)) as server:
        created = portkey(server, key).configs.create(name="logged", config=MOCK_ONE)
        chat(server, key, created.slug)
        chat(server, key, "pc-from-toml")
    records = [json.loads(line) for line in log_file.read_text().splitlines()]
    stored, toml = [r for r in records if r.get("config_id")]
    assert (stored["config_id"], stored["config_version"]) == (created.slug, 1)
    assert stored["config_version_id"] == created.version_id
    assert stored["workspace"] == "default" and stored["api_key_id"]
    assert (toml["config_id"], toml["config_version"]) == ("pc-from-toml", None)
    assert toml["config_version_id"] is None


def test_invalid_configs_are_refused_like_a_request_and_nothing_is_stored(server, admin_key):
    admin = portkey(server, admin_key)
    bad = {"strategy": {"mode": "fallback"}, "targets": [{"provider": "mock", "weight": -1}]}
    with pytest.raises(BadRequest) as refused:
        admin.configs.create(name="bad", config=bad)
    as_request = api(
        server,
        admin_key,
        "POST",
        "/v1/chat/completions",
        json={"model": "m", "messages": HELLO},
        headers={"x-portkey-config": json.dumps(bad)},
    )
    assert as_request.status_code == 400
    assert refused.value.body == as_request.json()["error"]["message"]
    assert "config.targets[0].weight" in refused.value.body
    with pytest.raises(BadRequest, match="unknown virtual key 'vk-nope'"):
        admin.configs.create(name="bad", config={"virtual_key": "vk-nope"})
    assert admin.configs.list().data == []

    created = admin.configs.create(name="good", config=MOCK_ONE)
    with pytest.raises(BadRequest, match="unknown provider 'nope'"):
        admin.configs.update(slug=created.slug, config={"provider": "nope"})
    versions = api(server, admin_key, "GET", f"/v1/configs/{created.slug}/versions").json()
    assert versions["total"] == 1


def test_conflicts(server, admin_key):
    admin = portkey(server, admin_key)
    taken = api(
        server,
        admin_key,
        "POST",
        "/v1/configs",
        json={"name": "x", "slug": "pc-from-toml", "config": MOCK_ONE},
    )
    assert taken.status_code == 409
    assert "declared in plugins.toml" in taken.json()["error"]["message"]
    created = admin.configs.create(name="c", config=MOCK_ONE)
    first = admin.configs.update(slug=created.slug, config=MOCK_TWO)
    stale = api(
        server,
        admin_key,
        "PUT",
        f"/v1/configs/{created.slug}",
        json={"config": MOCK_ONE, "base_version_id": created.version_id},
    )
    assert stale.status_code == 409
    assert stale.json()["error"]["code"] == "stale_version"
    assert first.version_id in stale.json()["error"]["message"]
    fresh = api(
        server,
        admin_key,
        "PUT",
        f"/v1/configs/{created.slug}",
        json={"config": MOCK_ONE, "base_version_id": first.version_id},
    )
    assert fresh.status_code == 200
    with pytest.raises(Conflict, match=r"declared in plugins\.toml"):
        admin.virtual_keys.create(name="x", provider="mock", slug="vk-toml")


def test_virtual_keys_are_used_but_never_shown(server, admin_key, fake_openai: FakeOpenAI):
    admin = portkey(server, admin_key)
    created = admin.virtual_keys.create(
        name="OpenAI prod", provider="openai", key="sk-stored-0123456789", note="team key"
    )
    assert created.object == "virtual-key" and created.slug
    listed = admin.virtual_keys.list().data
    assert listed[0]["key"] == "sk-...6789"
    assert "sk-stored-0123456789" not in json.dumps(listed)
    assert "sk-stored-0123456789" not in json.dumps(
        admin.virtual_keys.retrieve(slug=created.slug).model_dump()
    )

    answer = portkey(server, admin_key, virtual_key=created.slug).chat.completions.create(
        model="gpt-4o-mini", messages=HELLO
    )
    assert answer.choices[0].message.content == "fake: hello"
    assert fake_openai.calls()[-1].headers["authorization"] == "Bearer sk-stored-0123456789"

    admin.virtual_keys.update(slug=created.slug, key="sk-rotated-9876543210")
    chat(server, admin_key, {"virtual_key": created.slug})
    assert fake_openai.calls()[-1].headers["authorization"] == "Bearer sk-rotated-9876543210"

    # plugins.toml's virtual keys keep working beside the stored ones.
    chat(server, admin_key, {"virtual_key": "vk-toml"})
    assert fake_openai.calls()[-1].headers["authorization"] == "Bearer sk-toml-secret"

    admin.virtual_keys.delete(slug=created.slug)
    with pytest.raises(BadRequest, match="unknown virtual key"):
        chat(server, admin_key, {"virtual_key": created.slug})


def test_a_virtual_key_with_its_own_custom_host(server, admin_key, fake_openai):
    admin = portkey(server, admin_key)
    created = admin.virtual_keys.create(
        name="local", provider="openai", key="sk-host-key-1234", custom_host=fake_openai.url
    )
    before = len(fake_openai.calls())
    chat(server, admin_key, {"virtual_key": created.slug})
    assert len(fake_openai.calls()) == before + 1
    with pytest.raises(BadRequest, match="Invalid custom host"):
        admin.virtual_keys.create(
            name="far", provider="openai", key="sk-x-1234567", custom_host="http://10.9.8.7/v1"
        )


def test_gateway_keys_with_the_sdk(server, admin_key):
    admin = portkey(server, admin_key)
    created = admin.api_keys.create(
        type="workspace",
        sub_type="service",
        name="app",
        scopes=["completions.write", "configs.read"],
        rate_limits=[{"type": "requests", "unit": "rpm", "value": 60}],
        usage_limits={"credit_limit": 10},
    )
    assert created.key.startswith("hg-") and created.id
    listed = admin.api_keys.list(workspace_id="default").data
    assert {k["name"] for k in listed} == {"root", "app"}
    assert created.key not in json.dumps(listed)
    app = next(k for k in listed if k["name"] == "app")
    assert app["role"] == "viewer"  # read scopes plus completions.write: a viewer that calls
    assert app["rate_limits"] == [{"type": "requests", "unit": "rpm", "value": 60}]
    assert admin.api_keys.retrieve(id=created.id).name == "app"

    assert chat(server, created.key, None).choices[0].message.content.startswith("[mock]")
    with pytest.raises(Denied):
        portkey(server, created.key).configs.create(name="x", config=MOCK_ONE)

    admin.api_keys.delete(id=created.id)
    with pytest.raises(Unauthorized):
        chat(server, created.key, None)
    assert admin.api_keys.retrieve(id=created.id).status == "revoked"

    # Once any key exists, a request without one is a 401, on every route.
    for path in ("/v1/chat/completions", "/v1/configs"):
        method = "POST" if "chat" in path else "GET"
        answer = api(server, None, method, path, json={"model": "m", "messages": HELLO})
        assert answer.status_code == 401
        assert answer.json()["error"]["type"] == "authentication_error"


def test_a_key_stops_working_when_it_expires(server, admin_key):
    expires = time.time() + 3.0
    created = portkey(server, admin_key).api_keys.create(
        type="workspace", sub_type="service", name="short", expires_at=expires
    )
    assert chat(server, created.key, None).model
    time.sleep(max(0.0, expires - time.time()) + 0.05)
    answer = api(
        server, created.key, "POST", "/v1/chat/completions", json={"model": "m", "messages": HELLO}
    )
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "expired_api_key"
    past = api(
        server,
        admin_key,
        "POST",
        "/v1/api-keys/workspace/service",
        json={"name": "old", "expires_at": "2001-01-01T00:00:00Z"},
    )
    assert past.status_code == 400 and "in the past" in past.json()["error"]["message"]


def test_workspaces_with_the_sdk(server, admin_key):
    admin = portkey(server, admin_key)
    created = admin.admin.workspaces.create(name="Team A", description="the A team")
    assert created.slug == "team-a" and created.id == "team-a"
    assert {w.slug for w in admin.admin.workspaces.list().data} == {"default", "team-a"}
    assert admin.admin.workspaces.retrieve(workspace_id="team-a").description == "the A team"
    admin.admin.workspaces.update(workspace_id="team-a", description="renamed")
    assert admin.admin.workspaces.retrieve(workspace_id="team-a").description == "renamed"
    in_a = admin.configs.create(name="a", config=MOCK_ONE, workspace_id="team-a")
    with pytest.raises(Conflict, match="still holds configs"):
        admin.admin.workspaces.delete(workspace_id="team-a")
    admin.configs.delete(slug=in_a.slug)
    admin.admin.workspaces.delete(workspace_id="team-a")
    with pytest.raises(NotFound):
        admin.admin.workspaces.retrieve(workspace_id="team-a")
    with pytest.raises(Conflict):
        admin.admin.workspaces.delete(workspace_id="default")


def test_workspace_isolation(server, admin_key, hookgate: Cli):
    hookgate("workspaces", "create", "team-a")
    hookgate("workspaces", "create", "team-b")
    a = hookgate.json("keys", "create", "--name", "a", "--role", "member", "--workspace", "team-a")
    b = hookgate.json("keys", "create", "--name", "b", "--role", "member", "--workspace", "team-b")
    time.sleep(0.3)  # the CLI wrote to the store; the server's snapshot follows within a poll
    as_a, as_b = portkey(server, a["key"]), portkey(server, b["key"])
    config_a = as_a.configs.create(name="a", config=MOCK_ONE)
    vkey_a = as_a.virtual_keys.create(name="a", provider="mock")
    assert as_a.configs.retrieve(slug=config_a.slug).workspace_id == "team-a"
    assert chat(server, a["key"], config_a.slug).model == "model-one"

    assert as_b.configs.list().data == []
    assert as_b.virtual_keys.list().data == []
    with pytest.raises(NotFound):
        as_b.configs.retrieve(slug=config_a.slug)
    with pytest.raises(NotFound):
        as_b.configs.update(slug=config_a.slug, config=MOCK_TWO)
    with pytest.raises(NotFound):
        as_b.virtual_keys.retrieve(slug=vkey_a.slug)
    with pytest.raises(NotFound):
        as_b.configs.list(workspace_id="team-a")
    with pytest.raises(BadRequest, match="unknown config id"):
        chat(server, b["key"], config_a.slug)
    with pytest.raises(BadRequest, match="unknown virtual key"):
        chat(server, b["key"], {"virtual_key": vkey_a.slug})
    # A config of B cannot name A's virtual key either.
    with pytest.raises(BadRequest, match="unknown virtual key"):
        as_b.configs.create(name="steal", config={"virtual_key": vkey_a.slug})
    # The admin sees both.
    admin = portkey(server, admin_key)
    assert {c["workspace_id"] for c in admin.configs.list().data} == {"team-a"}
    assert chat(server, admin_key, config_a.slug).model == "model-one"


def test_each_role_is_refused_what_it_may_not_do(server, admin_key, hookgate: Cli):
    viewer = hookgate.json("keys", "create", "--name", "v", "--role", "viewer")["key"]
    member = hookgate.json("keys", "create", "--name", "m", "--role", "member")["key"]
    caller = hookgate.json(
        "keys",
        "create",
        "--name",
        "vc",
        "--role",
        "viewer",
        "--scopes",
        "configs.read,configs.list,completions.write",
    )["key"]
    time.sleep(0.3)
    admin = portkey(server, admin_key)
    shared = admin.configs.create(name="shared", config=MOCK_ONE)

    as_viewer = portkey(server, viewer)
    assert as_viewer.configs.retrieve(slug=shared.slug).slug == shared.slug
    for attempt in (
        lambda: as_viewer.configs.create(name="x", config=MOCK_ONE),
        lambda: as_viewer.configs.update(slug=shared.slug, config=MOCK_TWO),
        lambda: as_viewer.configs.delete(slug=shared.slug),
        lambda: as_viewer.virtual_keys.create(name="x", provider="mock"),
        lambda: as_viewer.api_keys.list(),
        lambda: as_viewer.admin.workspaces.create(name="x"),
        lambda: chat(server, viewer, None),
    ):
        with pytest.raises(Denied):
            attempt()
    assert chat(server, caller, shared.slug).model == "model-one"

    as_member = portkey(server, member)
    as_member.configs.update(slug=shared.slug, config=MOCK_TWO)
    assert chat(server, member, shared.slug).model == "model-two"
    for attempt in (
        lambda: as_member.api_keys.create(type="workspace", sub_type="service", name="x"),
        lambda: as_member.api_keys.list(),
        lambda: as_member.admin.workspaces.create(name="x"),
    ):
        with pytest.raises(Denied):
            attempt()
    assert api(server, viewer, "GET", "/v1/audit-logs").status_code == 403
    assert api(server, member, "GET", "/v1/audit-logs").status_code == 200


def test_the_audit_log_records_every_change_without_secrets(server, admin_key):
    admin = portkey(server, admin_key)
    created = admin.configs.create(name="audited", config=MOCK_ONE)
    admin.configs.update(slug=created.slug, config=MOCK_TWO)
    vkey = admin.virtual_keys.create(name="k", provider="openai", key="sk-audit-secret-42")
    made = admin.api_keys.create(type="workspace", sub_type="service", name="audited-key")
    entries = api(server, admin_key, "GET", "/v1/audit-logs").json()["data"]
    actions = [e["action"] for e in entries]
    assert actions[:4] == ["api_key.create", "virtual_key.create", "config.update", "config.create"]
    update = entries[2]
    assert update["actor"]["name"] == "root"
    assert update["before"]["config"] == MOCK_ONE and update["after"]["config"] == MOCK_TWO
    assert update["resource_id"] == created.slug and update["created_at"]
    text = json.dumps(entries)
    assert "sk-audit-secret-42" not in text
    assert made.key not in text
    assert vkey.slug in text


def test_bad_input_names_the_problem(server, admin_key):
    cases = [
        ("POST", "/v1/configs", {"content": b"{nope"}, 400, "not valid JSON"),
        ("POST", "/v1/configs", {"json": [1]}, 400, "JSON object"),
        ("POST", "/v1/configs", {"json": {"config": MOCK_ONE}}, 400, "'name' is required"),
        ("POST", "/v1/configs", {"json": {"name": "x", "config": "text"}}, 400, "'config' must"),
        (
            "POST",
            "/v1/configs",
            {"json": {"name": "x", "slug": "Bad Slug", "config": {}}},
            400,
            "config slug",
        ),
        ("GET", "/v1/configs/pc-none", {}, 404, "no config 'pc-none'"),
        ("POST", "/v1/configs/pc-none/rollback", {"json": {"version_id": 1}}, 404, "no config"),
        (
            "POST",
            "/v1/api-keys/workspace/service",
            {"json": {"name": "x", "role": "boss"}},
            400,
            "role must be one of admin, member, viewer",
        ),
        ("POST", "/v1/api-keys/galaxy/service", {"json": {"name": "x"}}, 400, "type must be"),
        (
            "POST",
            "/v1/api-keys/workspace/service",
            {"json": {"name": "x", "workspace_id": "zz"}},
            404,
            "no workspace 'zz'",
        ),
        ("POST", "/v1/virtual-keys", {"json": {"name": "x"}}, 400, "'provider' is required"),
        (
            "POST",
            "/v1/virtual-keys",
            {"json": {"name": "x", "provider": "nope"}},
            400,
            "unknown provider 'nope'",
        ),
        ("GET", "/v1/virtual-keys/vk-none", {}, 404, "no virtual key"),
        ("DELETE", "/v1/api-keys/nope", {}, 404, "no api key"),
    ]
    for method, path, kwargs, status, says in cases:
        answer = api(server, admin_key, method, path, **kwargs)
        assert answer.status_code == status, (path, answer.text)
        assert says in answer.json()["error"]["message"], (path, answer.text)
    created = portkey(server, admin_key).configs.create(name="c", config=MOCK_ONE)
    answer = api(
        server,
        admin_key,
        "POST",
        f"/v1/configs/{created.slug}/rollback",
        json={"version_id": "nope"},
    )
    assert answer.status_code == 404 and "has no version 'nope'" in answer.text


def test_export_and_import(server, admin_key, tmp_path: Path):
    admin = portkey(server, admin_key)
    one = admin.configs.create(name="one", config=MOCK_ONE)
    exported = api(server, admin_key, "GET", "/v1/configs/export").json()
    assert exported["configs"] == [
        {"slug": one.slug, "name": "one", "workspace_id": "default", "config": MOCK_ONE}
    ]
    exported["configs"][0]["config"] = MOCK_TWO
    exported["configs"].append({"slug": "pc-new", "name": "new", "config": MOCK_ONE})
    imported = api(server, admin_key, "POST", "/v1/configs/import", json=exported).json()
    assert [(r["slug"], r["action"]) for r in imported["results"]] == [
        (one.slug, "updated"),
        ("pc-new", "created"),
    ]
    assert chat(server, admin_key, one.slug).model == "model-two"
    again = api(server, admin_key, "POST", "/v1/configs/import", json=exported).json()
    assert {r["action"] for r in again["results"]} == {"unchanged"}
    # All or nothing: one bad config, nothing written.
    exported["configs"].append({"slug": "pc-bad", "config": {"provider": "nope"}})
    exported["configs"][0]["config"] = MOCK_ONE
    refused = api(server, admin_key, "POST", "/v1/configs/import", json=exported)
    assert refused.status_code == 400 and "configs[2] (pc-bad)" in refused.text
    assert chat(server, admin_key, one.slug).model == "model-two"

"""Configs and keys in the browser, over the control plane: Roll back by its button, a viewer
without controls (and refused by the server anyway), a workspace that sees only its own logs."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.plugins.console.conftest import (
    ADMIN_KEY,
    PLUGINS,
    Console,
    start_console,
    stop_console,
)

CONTROL = (
    PLUGINS.replace('"logging", "console"]', '"logging", "control", "console"]')
    + """
[plugins.control]
store = "control.db"
poll_interval = 0.2
"""
)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    running = start_console(tmp_path_factory.mktemp("control"), CONTROL.format(admin=ADMIN_KEY))
    yield running
    stop_console(running)


def admin(
    console: Console, method: str, path: str, body: Any = None, key: str | None = None
) -> Any:
    answer = console.client.request(
        method,
        f"{console.url}{path}",
        json=body,
        headers={"x-portkey-api-key": key or console.admin_key},
    )
    assert answer.status_code < 400, answer.text
    return answer.json()


def mock_config(model: str) -> dict[str, Any]:
    return {"provider": "mock", "override_params": {"model": model}}


@pytest.fixture(scope="module")
def stored(console: Console) -> dict[str, str]:
    """A config with two versions, a viewer key and a member key of another workspace."""
    slug = f"pc-console-{uuid.uuid4().hex[:6]}"
    admin(
        console,
        "POST",
        "/v1/configs",
        {"name": "console test", "slug": slug, "config": mock_config("mock-v1")},
    )
    admin(
        console,
        "PUT",
        f"/v1/configs/{slug}",
        {"config": mock_config("mock-v2"), "message": "second"},
    )
    viewer = admin(
        console, "POST", "/v1/api-keys/workspace/service", {"name": "a viewer", "role": "viewer"}
    )
    admin(console, "POST", "/v1/admin/workspaces", {"name": "team b", "slug": "team-b"})
    member = admin(
        console,
        "POST",
        "/v1/api-keys/workspace/service",
        {"name": "team b member", "role": "member", "workspace_id": "team-b"},
    )
    return {"slug": slug, "viewer": viewer["key"], "member": member["key"]}


def answered_model(console: Console, slug: str) -> str:
    answer = console.chat("which version?", config=slug)
    assert answer.status_code == 200, answer.text
    return answer.json()["model"]


def test_roll_a_config_back_by_its_button(console: Console, stored, watched):
    slug = stored["slug"]
    assert answered_model(console, slug) == "mock-v2"
    w = watched()
    w.login(console.admin_key)
    page = w.page
    page.goto(f"{console.url}/console/configs")
    assert slug in page.locator("table#configs").inner_text()
    page.goto(f"{console.url}/console/configs/{slug}")
    assert page.locator("#current-version").inner_text() == "2"
    assert page.locator("table#diff tr.changed").count() >= 1  # versions 1 and 2 side by side
    w.shot("07-config-versions-and-diff")
    asked: list[str] = []

    def accept(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.locator('tr[data-version="1"] button', has_text="Roll back").click()
    page.wait_for_load_state("load")
    assert asked and "version 1" in asked[0]
    assert page.locator("#current-version").inner_text() == "3"
    assert "config.rollback" in page.locator("table#audit").inner_text()
    w.shot("08-config-rolled-back")
    # the next request uses the old version's settings
    for _ in range(50):
        if answered_model(console, slug) == "mock-v1":
            break
    assert answered_model(console, slug) == "mock-v1"


def test_a_dismissed_confirmation_changes_nothing_and_bad_json_is_shown_inline(
    console: Console, stored, watched
):
    slug = stored["slug"]
    w = watched()
    w.login(console.admin_key)
    page = w.page
    page.goto(f"{console.url}/console/configs/{slug}")
    before = page.locator("#current-version").inner_text()
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.locator("tr[data-version] button", has_text="Roll back").first.click()
    page.wait_for_timeout(300)
    assert page.locator("#current-version").inner_text() == before
    page.fill("form#edit-config textarea", '{"retry": {"attempts": "many"}')
    page.click("form#edit-config button[type=submit]")
    page.wait_for_load_state("load")
    assert "not valid JSON" in page.locator("#config-error").inner_text()
    page.fill("form#edit-config textarea", '{"strategy": {"mode": "no-such-mode"}, "targets": []}')
    page.click("form#edit-config button[type=submit]")
    page.wait_for_load_state("load")
    assert page.locator("#config-error").inner_text() != ""
    assert page.locator("#current-version").inner_text() == before
    w.shot("09-config-inline-validation-error")


def test_a_viewer_sees_no_controls_and_the_server_refuses_them(console: Console, stored, watched):
    slug = stored["slug"]
    w = watched()
    w.login(stored["viewer"])
    page = w.page
    assert page.locator(".who").get_attribute("data-role") == "viewer"
    page.goto(f"{console.url}/console/configs/{slug}")
    assert page.locator("button", has_text="Roll back").count() == 0
    assert page.locator("form#edit-config").count() == 0
    page.goto(f"{console.url}/console/keys")
    assert page.locator("button.revoke").count() == 0
    assert page.locator("form#create-key").count() == 0
    w.shot("10-viewer-keys-without-controls")
    # the viewer's own session, its own CSRF token: still refused
    token = re.search(r'name="csrf" value="([^"]+)"', page.content()).group(1)
    refused = page.request.post(
        f"{console.url}/console/configs/{slug}/rollback",
        form={"csrf": token, "version": "1"},
        headers={"origin": console.url},
    )
    assert refused.status == 403
    with httpx.Client(timeout=30) as client:  # and the admin API itself refuses the key
        direct = client.post(
            f"{console.url}/v1/configs/{slug}/rollback",
            json={"version_id": 1},
            headers={"x-portkey-api-key": stored["viewer"]},
        )
        assert direct.status_code == 403


def test_gateway_keys_are_shown_once_and_revoked(console: Console, stored, watched):
    w = watched()
    w.login(console.admin_key)
    page = w.page
    page.goto(f"{console.url}/console/keys")
    name = f"temp-{uuid.uuid4().hex[:6]}"
    page.fill("form#create-key input[name=name]", name)
    page.click("form#create-key button[type=submit]")
    page.wait_for_load_state("load")
    key = page.locator("#new-key").inner_text()
    assert len(key) > 20
    w.shot("11-key-created-once")
    page.goto(f"{console.url}/console/keys")
    assert key not in page.content()  # listed masked, never again in full
    assert page.locator("#new-key").count() == 0
    row = page.locator("table#gateway-keys tr", has_text=name)
    row.locator("button.revoke").click()
    page.wait_for_load_state("load")
    assert "revoked" in page.locator("table#gateway-keys tr", has_text=name).inner_text()
    # Live on every worker within the control plane's 1 s (each polls its store every 0.25 s;
    # until then a worker may still know the key).
    deadline = time.monotonic() + 1.0
    while (status := console.chat("revoked?", key=key).status_code) != 401:
        assert time.monotonic() < deadline, status
        time.sleep(0.05)


def test_a_workspace_sees_only_its_own_logs(console: Console, stored, watched):
    mine, theirs = f"ws-b-{uuid.uuid4().hex}", f"ws-default-{uuid.uuid4().hex}"
    assert console.chat("from team b", trace_id=mine, key=stored["member"]).status_code == 200
    assert console.chat("from the operator", trace_id=theirs).status_code == 200
    console.logged(mine)
    console.logged(theirs)
    w = watched()
    w.login(stored["member"])
    page = w.page
    page.goto(f"{console.url}/console/logs")
    traces = page.locator("table#logs tbody tr").evaluate_all(
        "rows => rows.map(r => r.getAttribute('data-trace-id'))"
    )
    assert mine in traces and theirs not in traces
    w.shot("12-workspace-member-logs")
    hidden = page.request.get(f"{console.url}/console/requests/{theirs}")
    assert hidden.status == 404 and theirs not in hidden.text().split("No request")[0]

"""Limits a gateway key carries (Portkey's ``rate_limits`` / ``usage_limits`` of its
``api_keys``), through the HTTP app on a real socket: the keys come from a plugin's
``authenticate`` hook, as the control plane's do."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any

import httpx
from hookgate import Gateway, hookimpl
from hookgate.auth import Principal

from tests.support.servers import UvicornServer

CONFIG = """
[gateway]
plugins = ["mock", "limits", "logging"]
default_provider = "mock"

[plugins.logging]
log_to = "none"
store = { enabled = false }
prices = { priced = { input = 100000, output = 100000 } }

[plugins.limits]
path = "limits.table"

[[plugins.limits.rules]]
name = "team-a-total"
scope = "workspace"
match = "team-a"
rate_limits = [{ type = "requests", unit = "rph", value = 6 }]
"""


class Keys:
    """Gateway keys as a control plane would answer for them; ``limits`` can be changed."""

    def __init__(self) -> None:
        self.principals: dict[str, Principal] = {
            "key-ci": Principal(
                key_id="k-ci",
                name="ci",
                workspace="team-a",
                role="member",
                rate_limits=({"type": "requests", "unit": "rpm", "value": 2},),
            ),
            "key-app": Principal(
                key_id="k-app",
                name="app",
                workspace="team-a",
                role="member",
                usage_limits={"credit_limit": 1.0, "periodic_reset": "monthly"},
            ),
            "key-other": Principal(key_id="k-other", name="other", workspace="team-b"),
        }

    @hookimpl
    def authenticate(self, token: str | None, headers: Mapping[str, str]) -> Principal | None:
        return self.principals.get(token or "")


def _chat(url: str, key: str, **body: Any) -> httpx.Response:
    payload = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **body}
    return httpx.post(
        f"{url}/v1/chat/completions",
        json=payload,
        headers={"x-portkey-api-key": key},
        timeout=30,
    )


def test_a_keys_own_limits_apply_and_never_touch_another_key(
    make_gateway: Callable[[str], Gateway],
    serve: Callable[[Gateway], AbstractContextManager[UvicornServer]],
) -> None:
    gateway = make_gateway(CONFIG)
    keys = Keys()
    gateway.register(keys, "keys")
    with serve(gateway) as server:
        url = server.url
        ci = [_chat(url, "key-ci").status_code for _ in range(3)]
        assert ci == [200, 200, 429]
        refused = _chat(url, "key-ci")
        assert "gateway key 'k-ci'" in refused.json()["error"]["message"]

        # key-app: a 1 USD monthly budget; a priced answer costs 0.50 USD.
        app = [_chat(url, "key-app", model="priced").status_code for _ in range(3)]
        assert app == [200, 200, 429]
        assert _chat(url, "key-app", model="priced").json()["error"]["code"] == "budget_exceeded"

        # Another workspace's key is never affected.
        assert all(_chat(url, "key-other").status_code == 200 for _ in range(8))

        # A limit changed on a key applies to its next request.
        keys.principals["key-other"] = Principal(
            key_id="k-other",
            name="other",
            workspace="team-b",
            rate_limits=({"type": "requests", "unit": "rpm", "value": 0},),
        )
        blocked = _chat(url, "key-other")
        assert blocked.status_code == 429
        assert blocked.json()["error"]["type"] == "requests"


def test_a_workspace_rule_counts_every_key_of_the_workspace(
    make_gateway: Callable[[str], Gateway],
    serve: Callable[[Gateway], AbstractContextManager[UvicornServer]],
) -> None:
    gateway = make_gateway(CONFIG)
    keys = Keys()
    keys.principals["key-ci"] = Principal(key_id="k-ci", name="ci", workspace="team-a")
    keys.principals["key-app"] = Principal(key_id="k-app", name="app", workspace="team-a")
    gateway.register(keys, "keys")
    with serve(gateway) as server:
        statuses = [
            _chat(server.url, key).status_code
            for key in ("key-ci", "key-app", "key-ci", "key-app", "key-ci", "key-app", "key-ci")
        ]
        assert statuses == [200] * 6 + [429]
        refused = _chat(server.url, "key-app")
        assert "workspace 'team-a' (rule 'team-a-total')" in refused.json()["error"]["message"]
        assert refused.headers["x-ratelimit-limit-requests"] == "6"
        assert _chat(server.url, "key-other").status_code == 200

"""Concurrent updates of one config through the server: none is lost, a stale base is a 409."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

ONE = {"provider": "mock", "override_params": {"model": "one"}}


def test_concurrent_updates_never_lose_one(server, admin_key):
    headers = {"x-portkey-api-key": admin_key}
    created = httpx.post(
        f"{server.url}/v1/configs", json={"name": "busy", "config": ONE}, headers=headers
    ).json()
    slug = created["slug"]

    def update(i: int, base: str | None) -> httpx.Response:
        body = {"config": {"provider": "mock", "override_params": {"model": f"m{i}"}}}
        if base:
            body["base_version_id"] = base
        return httpx.put(f"{server.url}/v1/configs/{slug}", json=body, headers=headers, timeout=30)

    with ThreadPoolExecutor(8) as pool:
        based = list(pool.map(lambda i: update(i, created["version_id"]), range(8)))
    assert sorted(r.status_code for r in based) == [200] + [409] * 7

    with ThreadPoolExecutor(8) as pool:
        free = list(pool.map(lambda i: update(100 + i, None), range(8)))
    assert {r.status_code for r in free} == {200}
    versions = httpx.get(f"{server.url}/v1/configs/{slug}/versions", headers=headers).json()["data"]
    assert [v["version"] for v in versions] == list(range(10, 0, -1))
    models = {v["config"]["override_params"]["model"] for v in versions}
    assert {f"m{100 + i}" for i in range(8)} <= models

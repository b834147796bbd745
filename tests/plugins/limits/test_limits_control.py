"""A gateway key's limits set through the control plane with the ``portkey-ai`` SDK
(``api_keys.create(..., rate_limits=...)`` and ``update``), on both workers of a real
``hookgate serve``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.plugins.control.conftest import portkey
from tests.plugins.control.test_serve import Served, serve_control

BODY = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}


@pytest.fixture
def served(tmp_path: Path, fake_openai) -> Iterator[Served]:
    with serve_control(tmp_path, fake_openai.url, None, plugins=("limits",)) as running:
        yield running


def _status(client: httpx.Client, key: str) -> int:
    return client.post(
        "/v1/chat/completions", json=BODY, headers={"x-portkey-api-key": key}
    ).status_code


def test_a_keys_rate_limit_from_the_sdk_holds_on_both_workers_and_updates_live(
    served: Served,
) -> None:
    left = 60 - time.time() % 60
    if left < 15:  # windows are clock minutes: keep the check inside one
        time.sleep(left + 0.05)
    admin = portkey(served, served.key)
    made = admin.api_keys.create(
        type="workspace",
        sub_type="service",
        name="batch-job",
        scopes=["completions.write"],
        rate_limits=[{"type": "requests", "unit": "rpm", "value": 3}],
    )
    one, two = served.workers.values()
    # The key is live on both workers within a second of its creation (asked on the admin
    # API, which the rate limit does not count: a known key is a 403 there, not a 401).
    deadline = time.monotonic() + 1.0
    for client in (one, two):
        while client.get("/v1/configs", headers={"x-portkey-api-key": made.key}).status_code == 401:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    statuses = [_status(client, made.key) for client in (one, two, one, two)]
    assert statuses == [200, 200, 200, 429]
    refused = one.post(
        "/v1/chat/completions", json=BODY, headers={"x-portkey-api-key": made.key}
    )
    assert refused.headers["x-ratelimit-limit-requests"] == "3"
    assert int(refused.headers["retry-after"]) >= 1
    # The admin key is not limited by another key's limit.
    assert _status(two, served.key) == 200

    admin.api_keys.update(
        id=made.id, rate_limits=[{"type": "requests", "unit": "rpm", "value": 50}]
    )
    start = time.monotonic()
    for client in (one, two):
        while _status(client, made.key) != 200:
            assert time.monotonic() - start < 1.0, "the new limit is not live within 1 s"
            time.sleep(0.02)

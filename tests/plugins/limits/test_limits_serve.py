"""hookgate-limits through a real ``hookgate serve`` with 2 workers: what a client sees.

Every request opens its own connection, so the two workers share the load and the counts
must be exact across them.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server.test_process import HOOKGATE, start, wait_healthy

CONFIGS: dict[str, Path] = {}

CONFIG = """
[gateway]
plugins = ["mock", "fallback", "limits", "logging"]
default_provider = "mock"

[server]
workers = 2

[plugins.logging]
log_to = "none"
store = {{ enabled = false }}
# 0.1 USD a token, so that a mock answer (5 tokens) costs 0.50 USD
prices = {{ priced = {{ input = 100000, output = 100000 }}, expensive = {{ input = 100000, output = 100000 }} }}

[plugins.limits]
path = "{table}"

[[plugins.limits.rules]]
name = "rpm"
scope = "metadata.rpm_user"
rate_limits = [{{ type = "requests", unit = "rpm", value = 5 }}]

[[plugins.limits.rules]]
name = "daily"
scope = "metadata.day_user"
rate_limits = [{{ type = "requests", unit = "rpd", value = 1000 }}]

[[plugins.limits.rules]]
name = "tpm"
scope = "metadata.tpm_user"
rate_limits = [{{ type = "tokens", unit = "rpm", value = 1000 }}]

[[plugins.limits.rules]]
name = "spend"
scope = "metadata.team"
usage_limits = {{ credit_limit = 1.0, periodic_reset = "10s", alert_threshold = 0.4 }}

[[plugins.limits.rules]]
name = "expensive-budget"
scope = "model"
match = "expensive"
usage_limits = {{ credit_limit = 0.5, periodic_reset = "monthly" }}
on_limit = "skip"
"""


@pytest.fixture(scope="module")
def gateway_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("limits-serve")
    config = folder / "plugins.toml"
    config.write_text(CONFIG.format(table=folder / "limits.table"), encoding="utf-8")
    process, port = start(config)
    try:
        wait_healthy(process, port, timeout=90)  # a busy machine starts slowly
        url = f"http://127.0.0.1:{port}"
        CONFIGS[url] = config
        yield url
    finally:
        process.terminate()
        try:
            process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def _chat(url: str, metadata: dict[str, str], **body: object) -> httpx.Response:
    payload = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **body}
    with httpx.Client(timeout=30) as client:  # a fresh connection: any worker may answer
        return client.post(
            f"{url}/v1/chat/completions",
            json=payload,
            headers={"x-portkey-metadata": json.dumps(metadata)},
        )


def _away_from_a_minute_end(margin: float) -> None:
    """Rate-limit windows are clock minutes: start a check where it cannot straddle one."""
    left = 60 - time.time() % 60
    if left < margin:
        time.sleep(left + 0.05)


def test_five_rpm_gives_exactly_five_answers_then_429_with_retry_after(gateway_url: str) -> None:
    _away_from_a_minute_end(10)
    answers = [_chat(gateway_url, {"rpm_user": "alice"}) for _ in range(8)]
    statuses = [a.status_code for a in answers]
    assert statuses == [200] * 5 + [429] * 3
    assert [a.headers["x-ratelimit-remaining-requests"] for a in answers[:5]] == [
        "4",
        "3",
        "2",
        "1",
        "0",
    ]
    assert all(a.headers["x-ratelimit-limit-requests"] == "5" for a in answers)
    refused = answers[5]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    error = refused.json()["error"]
    assert error["code"] == "rate_limit_exceeded"
    assert "5 requests per minute" in error["message"] and "'alice'" in error["message"]
    # Another value of the same scope is not affected.
    bob = _chat(gateway_url, {"rpm_user": "bob"})
    assert bob.status_code == 200
    assert bob.headers["x-ratelimit-remaining-requests"] == "4"


def test_a_token_limit_holds_under_64_concurrent_requests(gateway_url: str) -> None:
    # Long enough that all 64 are in flight together, even on a busy machine.
    config = json.dumps({"provider": "mock", "mock": {"latency_ms": 5000}})
    body = {
        "model": "m",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
    }

    async def burst() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        f"{gateway_url}/v1/chat/completions",
                        json=body,
                        headers={
                            "x-portkey-config": config,
                            "x-portkey-metadata": json.dumps({"tpm_user": "burst"}),
                        },
                    )
                    for _ in range(64)
                )
            )

    _away_from_a_minute_end(20)
    answers = asyncio.run(burst())
    ok = [a for a in answers if a.status_code == 200]
    refused = [a for a in answers if a.status_code == 429]
    assert len(ok) + len(refused) == 64
    # Each request reserves its max_tokens plus its prompt (~110 tokens): at most
    # 1000 // 110 = 9 fit in the window while they are all in flight.
    reservation = 100 + 10
    assert 1 <= len(ok) <= 1000 // reservation + 1
    assert refused, "the burst must hit the token limit"
    assert refused[0].json()["error"]["type"] == "tokens"
    assert "x-ratelimit-remaining-tokens" in refused[0].headers


def test_a_usd_budget_stops_spending_then_resets_with_its_period(gateway_url: str) -> None:
    # Periods are 10 s of the clock: start with at least 6 s of one left for the three calls.
    left = 10 - time.time() % 10
    if left < 6:
        time.sleep(left + 0.05)
    first, second, third = (_chat(gateway_url, {"team": "red"}, model="priced") for _ in range(3))
    assert (first.status_code, second.status_code) == (200, 200)
    assert third.status_code == 429
    error = third.json()["error"]
    assert error["code"] == "budget_exceeded"
    assert "metadata.team 'red'" in error["message"] and "resets at" in error["message"]
    assert 1 <= int(third.headers["retry-after"]) <= 10
    other = _chat(gateway_url, {"team": "blue"}, model="priced")
    assert other.status_code == 200  # another team's budget is its own
    time.sleep(int(third.headers["retry-after"]) + 0.2)
    assert _chat(gateway_url, {"team": "red"}, model="priced").status_code == 200


def test_a_spent_budget_takes_its_target_out_of_a_fallback_group(gateway_url: str) -> None:
    config = json.dumps(
        {
            "strategy": {"mode": "fallback"},
            "targets": [
                {"provider": "mock", "override_params": {"model": "expensive"}},
                {"provider": "mock", "override_params": {"model": "cheap"}},
            ],
        }
    )
    used = []
    for _ in range(3):
        with httpx.Client(timeout=30) as client:
            answer = client.post(
                f"{gateway_url}/v1/chat/completions",
                json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
                headers={"x-portkey-config": config},
            )
        assert answer.status_code == 200
        used.append((answer.headers["x-portkey-last-used-option-index"], answer.json()["model"]))
    # The first answer spends the expensive target's 0.50 USD; after it the group moves on.
    assert used[0] == ("config.targets[0]", "expensive")
    assert used[1:] == [("config.targets[1]", "cheap")] * 2


def test_limits_show_and_metrics_report_usage(gateway_url: str) -> None:
    # A daily window, so that the check cannot straddle the window's end (but at midnight).
    _chat(gateway_url, {"day_user": "carol"})
    with httpx.Client(timeout=10) as client:
        metrics = client.get(f"{gateway_url}/metrics").text
    assert (
        'hookgate_limit_used{rule="daily",value="carol",kind="requests",unit="rpd"} 1.0' in metrics
    )
    shown = subprocess.run(
        [HOOKGATE, "limits", "show", "--json", "--config", str(CONFIGS[gateway_url])],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = json.loads(shown.stdout)["data"]
    carol = [r for r in rows if r["rule"] == "daily" and r["value"] == "carol"]
    assert len(carol) == 1, shown.stdout
    assert carol == [
        {
            "rule": "daily",
            "value": "carol",
            "kind": "requests",
            "unit": "rpd",
            "used": 1.0,
            "limit": 1000.0,
            "resets_in_s": carol[0]["resets_in_s"],
        }
    ]
    assert 0 < carol[0]["resets_in_s"] <= 86400

"""hookgate-limits embedded: settings errors, alerts, what an embedded caller sees."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from hookgate import CallOptions, Gateway, RateLimitError, SettingsError
from structlog.testing import capture_logs

from tests.support.servers import FakeServer, ServerThread

HI = {"model": "priced", "messages": [{"role": "user", "content": "hi"}]}


def _config(rules: str, extra: str = "") -> str:
    return f"""
[gateway]
plugins = ["mock", "limits", "logging"]
default_provider = "mock"

[plugins.logging]
log_to = "none"
store = {{ enabled = false }}
prices = {{ priced = {{ input = 100000, output = 100000 }} }}

[plugins.limits]
path = "limits.table"
{extra}

{rules}
"""


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ('[[plugins.limits.rules]]\nscope = "user"', "scope: Value error, must be global"),
        (
            '[[plugins.limits.rules]]\nscope = "global"\n'
            'rate_limits = [{ type = "requests", unit = "rpw", value = 1 }]',
            "unit: Input should be 'rps', 'rpm', 'rph' or 'rpd'",
        ),
        (
            '[[plugins.limits.rules]]\nscope = "global"\n'
            'usage_limits = { credit_limit = 5, periodic_reset = "yearly" }',
            "periodic_reset: Value error, must be daily, weekly, monthly",
        ),
        (
            '[[plugins.limits.rules]]\nscope = "global"\n[[plugins.limits.rules]]\nscope = "global"',
            "two rules are named 'global'",
        ),
    ],
)
def test_bad_rules_are_refused_at_start_naming_the_key(
    make_gateway: Callable[[str], Gateway], rules: str, message: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        make_gateway(_config(rules))
    assert "[plugins.limits]" in str(raised.value)
    assert message in str(raised.value)


class Webhook(FakeServer):
    def __init__(self, thread: ServerThread) -> None:
        super().__init__(thread)
        self.received: list[Any] = []

        async def hook(request: web.Request) -> web.Response:
            self.received.append(await request.json())
            return web.json_response({"ok": True})

        app = web.Application()
        app.router.add_post("/alert", hook)
        self.serve(app)


async def test_crossing_an_alert_threshold_warns_once_and_calls_the_webhook(
    make_gateway: Callable[[str], Gateway], server_thread: ServerThread
) -> None:
    webhook = Webhook(server_thread)
    try:
        rules = """
[[plugins.limits.rules]]
name = "team-budget"
scope = "metadata.team"
usage_limits = { credit_limit = 2.0, periodic_reset = "monthly", alert_threshold = 0.9 }
"""
        config = _config(rules, f'alert_webhook = "{webhook.host}/alert"')
        options = CallOptions(metadata={"team": "ops"})
        async with make_gateway(config) as gateway:
            with capture_logs() as logs:
                for _ in range(4):  # 0.50 USD each: 0.5, 1.0 (crosses 0.9), 1.5, 2.0
                    await gateway.chat.completions.create(**HI, options=options)
                with pytest.raises(RateLimitError) as refused:
                    await gateway.chat.completions.create(**HI, options=options)
                for _ in range(100):
                    if webhook.received:
                        break
                    await asyncio.sleep(0.02)
        alerts = [entry for entry in logs if entry["event"] == "budget_alert"]
        assert len(alerts) == 1
        assert alerts[0]["spent"] == pytest.approx(1.0)
        assert webhook.received == [
            {
                "event": "budget_alert",
                "budget": "metadata.team 'ops' (rule 'team-budget')",
                "kind": "usd",
                "period": "monthly",
                "spent": 1.0,
                "alert_threshold": 0.9,
                "limit": 2.0,
                "resets_at": webhook.received[0]["resets_at"],
            }
        ]
        assert webhook.received[0]["resets_at"].endswith("-01T00:00:00Z")
        error = refused.value
        assert error.http_status == 429 and error.code == "budget_exceeded"
        assert "$2.0000 of $2.00" in error.message
    finally:
        webhook.stop()


async def test_a_request_larger_than_a_token_limit_is_told_to_lower_max_tokens(
    make_gateway: Callable[[str], Gateway],
) -> None:
    rules = """
[[plugins.limits.rules]]
scope = "global"
rate_limits = [{ type = "tokens", unit = "rpm", value = 500 }]
"""
    async with make_gateway(_config(rules)) as gateway:
        with pytest.raises(RateLimitError) as refused:
            await gateway.chat.completions.create(**HI, max_tokens=4000)
        assert "lower max_tokens" in refused.value.message
        assert refused.value.retry_after is None
        answer = await gateway.chat.completions.create(**HI, max_tokens=100)
        assert answer.choices[0].message.content

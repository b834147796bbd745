"""``hookgate demo`` scenarios 3 (retry) and 4 (fallback) with both plugins enabled."""

from __future__ import annotations

from hookgate import Gateway
from hookgate.demo import run_demo


async def test_demo_retry_and_fallback_scenarios():
    lines: list[str] = []
    gw = Gateway(
        {"gateway": {"plugins": ["mock", "retry", "fallback"], "default_provider": "mock"}}
    )
    await run_demo(gw, lines.append)
    text = "\n".join(lines)
    retry = text.split("\n3. ")[1].split("\n4. ")[0]
    fallback = text.split("\n4. ")[1].split("\n5. ")[0]
    assert "by mock at config; cache DISABLED; retries 2" in retry
    assert retry.count("status 503") == 2 and "#2: status 200" in retry
    assert "at config.targets[1]" in fallback
    assert "config.targets[0] #0: status 503" in fallback
    assert "skipped" not in retry + fallback

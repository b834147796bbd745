"""The console in a real browser (Debian's Chromium via Playwright) against `hookgate serve`."""

from __future__ import annotations

import uuid

from tests.plugins.console.conftest import Console

FAILING = {
    "retry": {"attempts": 1, "on_status_codes": [503]},
    "targets": [{"provider": "mock", "mock": {"fail_status": 503}}],
}
FALLBACK = {
    "strategy": {"mode": "fallback"},
    "targets": [
        {"provider": "mock", "mock": {"fail_status": 502}},
        {"provider": "mock", "override_params": {"model": "mock-secondary"}},
    ],
}


def test_log_in_and_find_a_request_made_a_moment_ago_by_its_trace_id(console: Console, watched):
    trace = f"browser-{uuid.uuid4().hex}"
    answer = console.chat("what is the weather", trace_id=trace, metadata={"team": "blue"})
    assert answer.status_code == 200
    record = console.logged(trace)

    w = watched()
    page = w.page
    page.goto(f"{console.url}/console/logs?trace_id={trace}")
    page.wait_for_url("**/console/login**")
    assert page.locator("table#logs").count() == 0  # no key, no data
    w.shot("01-login")
    page.fill("input[name=key]", console.admin_key)
    page.click("form.login button[type=submit]")
    page.wait_for_url(f"**/console/logs?trace_id={trace}")
    row = page.locator(f'tr[data-trace-id="{trace}"]')
    assert row.count() == 1
    assert page.locator("table#logs tbody tr").count() == 1
    assert row.locator("td.model").inner_text() == "gpt-4o-mini"
    assert row.locator("td.tokens").inner_text().startswith(str(record["total_tokens"]))
    assert f"prompt {record['prompt_tokens']}" in row.locator("td.tokens").get_attribute("title")
    assert row.locator("td.cache").inner_text() == "DISABLED"
    assert row.locator("td.status").inner_text() == "200"
    w.shot("02-logs-by-trace-id")

    row.locator("td.trace a").click()
    page.wait_for_url(f"**/console/requests/{trace}")
    facts = page.locator("dl.facts")
    assert "gpt-4o-mini" in facts.inner_text()
    assert page.locator('dd[data-field="Cache status"]').inner_text() == "DISABLED"
    assert page.locator("svg.timeline rect").count() == 1
    assert "what is the weather" in page.locator("#request-body").inner_text()
    assert "blue" in page.locator("table.meta").inner_text()
    w.shot("03-request-page")


def test_a_request_page_shows_retries_fallbacks_and_cache_hits(console: Console, watched):
    fallback = f"fallback-{uuid.uuid4().hex}"
    assert console.chat("fall back please", trace_id=fallback, config=FALLBACK).status_code == 200
    cached = {"cache": {"mode": "simple"}}
    first, second = f"miss-{uuid.uuid4().hex}", f"hit-{uuid.uuid4().hex}"
    assert console.chat("cache me", trace_id=first, config=cached).status_code == 200
    assert console.chat("cache me", trace_id=second, config=cached).status_code == 200
    console.logged(fallback)
    console.logged(second)

    w = watched()
    w.login(console.admin_key)
    page = w.page
    page.goto(f"{console.url}/console/requests/{fallback}")
    assert page.locator("tr.attempt").count() == 2
    assert page.locator("tr.attempt.fallback").count() == 1
    assert page.locator('dd[data-field="Model answered"]').inner_text() == "mock-secondary"
    w.shot("04-request-fallback-timeline")
    page.goto(f"{console.url}/console/logs?trace_id={second}")
    row = page.locator(f'tr[data-trace-id="{second}"]')
    assert row.locator("td.cache").inner_text() == "HIT"
    assert "saved" in row.locator("td.cost").inner_text()


def test_filter_the_logs(console: Console, watched):
    tag = uuid.uuid4().hex[:8]
    for i in range(3):
        assert (
            console.chat(f"ok {i}", model=f"model-{tag}", metadata={"run": tag}).status_code == 200
        )
    failed = f"fail-{uuid.uuid4().hex}"
    assert (
        console.chat(
            "fail", trace_id=failed, model=f"model-{tag}", config=FAILING, metadata={"run": tag}
        ).status_code
        == 503
    )
    console.logged(failed)

    w = watched()
    w.login(console.admin_key)
    page = w.page
    page.fill("form#filters input[name=model]", f"model-{tag}")
    page.click("form#filters button[type=submit]")
    page.wait_for_url(f"**model=model-{tag}**")
    assert page.locator("table#logs tbody tr").count() == 4
    page.fill("form#filters input[name=status]", "5xx")
    page.click("form#filters button[type=submit]")
    page.wait_for_url("**status=5xx**")
    rows = page.locator("table#logs tbody tr")
    assert rows.count() == 1
    assert rows.first.get_attribute("data-trace-id") == failed
    assert rows.first.locator("td.status").inner_text() == "503"
    w.shot("05-logs-filtered-5xx")
    # metadata filter, and a filter that means nothing is a message, not a crash
    page.goto(f"{console.url}/console/logs?meta_key=run&meta_value={tag}")
    assert page.locator("table#logs tbody tr").count() == 4
    page.goto(f"{console.url}/console/logs?status=teapot")
    assert "is not a status" in page.locator("p.error").inner_text()


def test_the_monitoring_charts_are_drawn_with_data(console: Console, watched):
    tag = uuid.uuid4().hex[:8]
    cached = {"cache": {"mode": "simple"}}
    for i in range(4):
        assert (
            console.chat("monitor me", config=cached, metadata={"team": f"t-{tag}"}).status_code
            == 200
        )
        assert console.chat(f"distinct {i}", metadata={"team": f"u-{tag}"}).status_code == 200
    last = f"mon-fail-{uuid.uuid4().hex}"
    assert console.chat("boom", trace_id=last, config=FAILING).status_code == 503
    console.logged(last)

    w = watched()
    w.login(console.admin_key)
    page = w.page
    page.goto(f"{console.url}/console/monitoring?range=1h&by=team")
    assert "latency" in page.title().lower() or "Monitoring" in page.title()
    heading = page.locator("h1").inner_text()
    for name in ("latency", "cache hit rate", "errors"):
        assert name in heading
    for chart in ("latency-histogram", "latency", "cache", "errors", "requests"):
        drawn = page.locator(f"#chart-{chart}[data-drawn=true]")
        drawn.wait_for()
        assert int(drawn.get_attribute("data-points")) > 0, chart
        assert drawn.locator("canvas").count() == 1
    assert int(page.locator("#total-requests").inner_text().replace(",", "")) >= 9
    assert page.locator("#total-hit-rate").inner_text().endswith("%")
    assert "503" in page.locator("#errors-table").inner_text()
    teams = page.locator("#by-metadata").inner_text()
    assert f"t-{tag}" in teams and f"u-{tag}" in teams
    assert page.locator("#total-saved").inner_text().startswith("$")
    w.shot("06-monitoring")
    loaded = [url for url in w.requested if "/static/" in url]
    assert any(url.endswith("uPlot.iife.min.js") for url in loaded)

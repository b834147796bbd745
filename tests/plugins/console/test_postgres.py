"""The console over the PostgreSQL log store: the same pages, every worker's records in one
database, read through the same log query hooks."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.plugins.console.conftest import ADMIN_KEY, PLUGINS, Console, start_console, stop_console
from tests.plugins.console.test_browser import FAILING
from tests.support.servers import PostgresServer


@pytest.fixture(scope="module")
def console(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: PostgresServer
) -> Iterator[Console]:
    url = postgres_server.database()
    text = PLUGINS.replace('store = {{ path = "logs.db" }}', f'store = {{{{ url = "{url}" }}}}')
    assert url in text.format(admin=ADMIN_KEY)
    running = start_console(tmp_path_factory.mktemp("console-pg"), text.format(admin=ADMIN_KEY))
    yield running
    stop_console(running)


def test_logs_filters_and_monitoring_read_postgresql(console: Console):
    tag = uuid.uuid4().hex[:8]
    model = f"pg-{tag}"
    traces = [f"pg-{tag}-{i}" for i in range(4)]
    for i, trace in enumerate(traces):
        answer = console.chat(f"hello {i}", model=model, trace_id=trace, metadata={"team": tag})
        assert answer.status_code == 200
    failed = f"pg-fail-{tag}"
    assert console.chat("fail", model=model, trace_id=failed, config=FAILING).status_code == 503
    record = console.logged(failed)
    assert record["status"] == 503 and record["model"] == model
    for trace in traces:  # two workers wrote them, one database has them all
        assert console.logged(trace)["trace_id"] == trace

    headers = {"x-portkey-api-key": console.admin_key}
    with httpx.Client(timeout=30, headers=headers) as client:

        def api(**params: str) -> dict:
            answer = client.get(f"{console.url}/console/api/logs", params=params)
            assert answer.status_code == 200, answer.text
            return answer.json()

        assert [r["trace_id"] for r in api(model=model, status="5xx")["data"]] == [failed]
        first = api(model=model, limit="3")
        second = api(model=model, limit="3", cursor=first["next_cursor"])
        assert [r["trace_id"] for r in first["data"] + second["data"]] == [
            failed,
            *reversed(traces),
        ]
        assert second["next_cursor"] is None
        assert len(api(meta_key="team", meta_value=tag)["data"]) == 4

        page = client.get(f"{console.url}/console/logs", params={"model": model, "status": "5xx"})
        assert page.status_code == 200
        assert f'data-trace-id="{failed}"' in page.text
        assert f'data-trace-id="{traces[0]}"' not in page.text
        request = client.get(f"{console.url}/console/requests/{traces[0]}")
        assert request.status_code == 200 and "hello 0" in request.text

        monitoring = client.get(
            f"{console.url}/console/api/monitoring", params={"range": "1h", "by": "team"}
        )
        assert monitoring.status_code == 200
        data = monitoring.json()
        assert data["totals"]["requests"] >= 5
        by_model = client.get(
            f"{console.url}/console/api/monitoring", params={"range": "1h", "model": model}
        ).json()
        assert by_model["totals"]["requests"] == 5
        html = client.get(f"{console.url}/console/monitoring", params={"range": "1h", "by": "team"})
        assert html.status_code == 200 and tag in html.text


def test_the_monitoring_charts_are_drawn_from_postgresql(console: Console, watched):
    tag = uuid.uuid4().hex[:8]
    for i in range(3):
        assert console.chat(f"chart {i}", metadata={"team": f"pg-{tag}"}).status_code == 200
    last = f"pg-chart-fail-{tag}"
    assert console.chat("boom", trace_id=last, config=FAILING).status_code == 503
    console.logged(last)
    w = watched()
    w.login(console.admin_key)
    page = w.page
    page.goto(f"{console.url}/console/monitoring?range=1h&by=team")
    for chart in ("latency-histogram", "latency", "errors", "requests"):
        drawn = page.locator(f"#chart-{chart}[data-drawn=true]")
        drawn.wait_for()
        assert int(drawn.get_attribute("data-points")) > 0, chart
    assert "503" in page.locator("#errors-table").inner_text()
    assert f"pg-{tag}" in page.locator("#by-metadata").inner_text()
    w.shot("10-monitoring-postgresql")

"""Who may see the console, over HTTP against a real `hookgate serve`: no key, no data;
sessions are HttpOnly SameSite=Strict cookies that never show the key; forms need the
session's CSRF token and this origin."""

from __future__ import annotations

import re
import uuid

import httpx

from tests.plugins.console.conftest import Console


def _login(
    console: Console, client: httpx.Client, key: str, origin: str | None = None
) -> httpx.Response:
    page = client.get(f"{console.url}/console/login")
    assert page.status_code == 200
    token = re.search(r'name="login_token" value="([^"]+)"', page.text)
    assert token is not None
    return client.post(
        f"{console.url}/console/login",
        data={"login_token": token.group(1), "key": key},
        headers={"origin": origin or console.url},
    )


def test_without_a_key_the_pages_show_no_data(console: Console):
    trace = f"secret-{uuid.uuid4().hex}"
    assert console.chat("private question", trace_id=trace).status_code == 200
    console.logged(trace)
    with httpx.Client(timeout=30) as anonymous:
        for path in ("/console/logs", f"/console/requests/{trace}", "/console/monitoring"):
            answer = anonymous.get(f"{console.url}{path}?trace_id={trace}")
            assert answer.status_code == 303
            assert answer.headers["location"].startswith("/console/login?next=")
            assert trace not in answer.text
        api = anonymous.get(f"{console.url}/console/api/logs", params={"trace_id": trace})
        assert api.status_code == 401
        assert api.json()["error"]["type"] == "authentication_error"
        wrong = anonymous.get(
            f"{console.url}/console/logs", headers={"x-portkey-api-key": "not-a-key"}
        )
        assert wrong.status_code == 401
        assert trace not in wrong.text
    with httpx.Client(timeout=30, cookies={"hookgate_console": "Zm9yZ2Vk" * 8}) as forged:
        assert forged.get(f"{console.url}/console/logs").status_code == 303


def test_a_login_sets_an_httponly_strict_cookie_that_does_not_show_the_key(console: Console):
    with httpx.Client(timeout=30) as client:
        refused = _login(console, client, "wrong-key")
        assert refused.status_code == 401
        assert "not valid" in refused.text
        answer = _login(console, client, console.admin_key)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/console/logs"
        cookies = answer.headers.get_list("set-cookie")
        session = next(c for c in cookies if c.startswith("hookgate_console="))
        assert "HttpOnly" in session and "SameSite=Strict" in session
        assert "Path=/console" in session
        assert console.admin_key not in session
        logs = client.get(f"{console.url}/console/logs")
        assert logs.status_code == 200
        assert 'id="logs"' in logs.text
        csp = logs.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp
        assert logs.headers["x-frame-options"] == "DENY"


def test_the_login_form_refuses_another_origin_and_a_missing_token(console: Console):
    with httpx.Client(timeout=30) as client:
        cross = _login(console, client, console.admin_key, origin="http://evil.example")
        assert cross.status_code == 403
        assert "hookgate_console=" not in " ".join(cross.headers.get_list("set-cookie")).replace(
            "hookgate_console_login=", ""
        )
        no_token = client.post(
            f"{console.url}/console/login",
            data={"key": console.admin_key},
            headers={"origin": console.url},
        )
        assert no_token.status_code == 403


def test_after_login_only_console_pages_are_a_destination(console: Console):
    with httpx.Client(timeout=30) as client:
        page = client.get(f"{console.url}/console/login", params={"next": "https://evil.example/"})
        token = re.search(r'name="login_token" value="([^"]+)"', page.text).group(1)
        answer = client.post(
            f"{console.url}/console/login?next=https%3A%2F%2Fevil.example%2F",
            data={"login_token": token, "key": console.admin_key},
            headers={"origin": console.url},
        )
        assert answer.status_code == 303
        assert answer.headers["location"] == "/console/logs"


def test_forms_need_the_sessions_csrf_token(console: Console):
    with httpx.Client(timeout=30) as client:
        assert _login(console, client, console.admin_key).status_code == 303
        page = client.get(f"{console.url}/console/logs")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        forged = client.post(
            f"{console.url}/console/logout", data={"csrf": "nope"}, headers={"origin": console.url}
        )
        assert forged.status_code == 403
        cross = client.post(
            f"{console.url}/console/logout",
            data={"csrf": token},
            headers={"origin": "http://evil.example"},
        )
        assert cross.status_code == 403
        assert client.get(f"{console.url}/console/logs").status_code == 200  # still logged in
        out = client.post(
            f"{console.url}/console/logout", data={"csrf": token}, headers={"origin": console.url}
        )
        assert out.status_code == 303
        assert client.get(f"{console.url}/console/logs").status_code == 303


def test_the_json_api_pages_with_a_cursor(console: Console):
    tag = uuid.uuid4().hex[:8]
    traces = [f"page-{tag}-{i}" for i in range(5)]
    for trace in traces:
        assert console.chat("page me", trace_id=trace, metadata={"batch": tag}).status_code == 200
    console.logged(traces[-1])
    headers = {"x-portkey-api-key": console.admin_key}
    seen: list[str] = []
    cursor = None
    with httpx.Client(timeout=30, headers=headers) as client:
        pages = 0
        for _ in range(5):
            pages += 1
            params = {"meta_key": "batch", "meta_value": tag, "limit": "2"}
            if cursor:
                params["cursor"] = cursor
            body = client.get(f"{console.url}/console/api/logs", params=params).json()
            seen += [r["trace_id"] for r in body["data"]]
            cursor = body["next_cursor"]
            if not cursor:
                break
        assert pages == 3
        assert sorted(seen) == sorted(traces)
        assert seen == list(reversed(traces))
        bad = client.get(f"{console.url}/console/api/logs", params={"since": "yesterday-ish"})
        assert bad.status_code == 400
        assert bad.json()["error"]["code"] == "invalid_filter"
        monitoring = client.get(f"{console.url}/console/api/monitoring", params={"range": "1h"})
        assert monitoring.status_code == 200
        assert monitoring.json()["totals"]["requests"] >= 5


def test_an_admin_sees_what_the_rate_limits_have_used(console: Console):
    assert console.chat("count me").status_code == 200
    page = httpx.get(
        f"{console.url}/console/monitoring",
        headers={"x-portkey-api-key": console.admin_key},
        timeout=30,
    )
    assert page.status_code == 200
    table = page.text[page.text.index('id="limits-table"') :]
    row = re.search(r"<td>everyone</td><td>all</td><td>requests</td><td>rpd</td><td>(\d+)", table)
    assert row is not None and int(row.group(1)) >= 1

"""The console's HTML: server-rendered pages, every value escaped, no inline script or style.

The pages work without JavaScript except for the charts (uPlot, vendored in ``static/``) and
the confirmation before a roll back; data for the charts travels in the page as a
``<script type="application/json">`` block, which the Content-Security-Policy allows because
it is never executed.
"""

from __future__ import annotations

import difflib
import html
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import orjson

from .access import Viewer

__all__ = ["Page", "e"]

CACHE_STATUSES = ("HIT", "SEMANTIC HIT", "MISS", "SEMANTIC MISS", "REFRESH", "DISABLED")


def e(value: Any) -> str:
    """Escaped text; ``-`` for None."""
    if value is None:
        return "-"
    return html.escape(str(value), quote=True)


def when(ts: Any) -> str:
    if not isinstance(ts, int | float):
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def ms(value: Any) -> str:
    if not isinstance(value, int | float):
        return "-"
    return f"{value:,.0f} ms" if value >= 100 else f"{value:.1f} ms"


def money(value: Any) -> str:
    if not isinstance(value, int | float):
        return "-"
    return f"${value:,.6f}" if value < 1 else f"${value:,.2f}"


def number(value: Any) -> str:
    return "-" if not isinstance(value, int | float) else f"{value:,}"


def _status_class(status: Any) -> str:
    if not isinstance(status, int):
        return ""
    return "ok" if status < 400 else ("warn" if status < 500 else "bad")


class Page:
    """Renders pages for one viewer (``None``: logged out) under the console's ``base`` path."""

    def __init__(self, base: str, viewer: Viewer | None, csrf: str | None) -> None:
        self.base = base
        self.viewer = viewer
        self.csrf = csrf

    def url(self, path: str = "", query: Mapping[str, Any] | None = None) -> str:
        out = self.base + path
        if query:
            kept = {k: v for k, v in query.items() if v not in (None, "")}
            if kept:
                out += "?" + urlencode(kept)
        return out

    def csrf_field(self) -> str:
        return f'<input type="hidden" name="csrf" value="{e(self.csrf)}">' if self.csrf else ""

    # ---- the frame --------------------------------------------------------------------

    def layout(self, title: str, body: str, active: str = "") -> str:
        nav = ""
        if self.viewer is not None:
            items = [
                ("logs", "Logs"),
                ("monitoring", "Monitoring"),
                ("configs", "Configs"),
                ("keys", "Keys"),
                ("workspaces", "Workspaces"),
            ]
            links = "".join(
                f'<a href="{self.url("/" + slug)}"{" class=active" if slug == active else ""}>{label}</a>'
                for slug, label in items
            )
            who = self.viewer
            scope = who.workspace or "all workspaces"
            nav = (
                f'<nav>{links}<span class="who" data-role="{e(who.role)}">{e(who.name)} · '
                f"{e(who.role)} · {e(scope)}</span>"
                f'<form method="post" action="{self.url("/logout")}" class="inline">'
                f'{self.csrf_field()}<button type="submit">Log out</button></form></nav>'
            )
        return (
            "<!doctype html><html lang=en><head><meta charset=utf-8>"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{e(title)} · hookgate console</title>"
            '<link rel="icon" href="data:,">'
            f'<link rel="stylesheet" href="{self.url("/static/uPlot.min.css")}">'
            f'<link rel="stylesheet" href="{self.url("/static/console.css")}">'
            f'<script src="{self.url("/static/uPlot.iife.min.js")}" defer></script>'
            f'<script src="{self.url("/static/console.js")}" defer></script>'
            f'</head><body><header><a class="brand" href="{self.url("/logs")}">hookgate</a>{nav}'
            f"</header><main><h1>{e(title)}</h1>{body}</main></body></html>"
        )

    def message(self, title: str, text: str, status_class: str = "note") -> str:
        return self.layout(title, f'<p class="{status_class}">{e(text)}</p>')

    def login(self, error: str | None, token: str, keys_exist: bool, after: str = "") -> str:
        problem = f'<p class="error" role="alert">{e(error)}</p>' if error else ""
        if not keys_exist:
            problem += (
                '<p class="note">This deployment has no gateway keys: set <code>[server] '
                "api_keys</code> in plugins.toml (or create keys in the control plane) to use "
                "the console.</p>"
            )
        body = (
            f'{problem}<form method=post action="{e(self.url("/login", {"next": after}))}" class=login>'
            f'<input type="hidden" name="login_token" value="{e(token)}">'
            '<label>Gateway key <input type="password" name="key" autocomplete="current-password" '
            'required autofocus></label><button type="submit">Log in</button></form>'
            '<p class="note">The key is kept in an HttpOnly cookie for this console only.</p>'
        )
        return self.layout("Log in", body)

    # ---- logs -------------------------------------------------------------------------

    def logs(
        self,
        records: Sequence[dict[str, Any]],
        form: Mapping[str, str],
        next_cursor: str | None,
        elapsed_ms: float,
    ) -> str:
        viewer = self.viewer
        assert viewer is not None

        def field(name: str, label: str, placeholder: str = "") -> str:
            return (
                f'<label>{label} <input name="{name}" value="{e(form.get(name, ""))}" '
                f'placeholder="{e(placeholder)}"></label>'
            )

        ranges = [("", "any time"), ("15m", "15 min"), ("1h", "1 hour"), ("24h", "24 hours"),
                  ("7d", "7 days"), ("30d", "30 days")]  # fmt: skip
        range_select = "".join(
            f'<option value="{v}"{" selected" if form.get("range", "") == v else ""}>{label}</option>'
            for v, label in ranges
        )
        cache_select = '<option value="">any</option>' + "".join(
            f"<option{' selected' if form.get('cache_status') == s else ''}>{s}</option>"
            for s in CACHE_STATUSES
        )
        workspace = field("workspace", "Workspace") if viewer.workspace is None else ""
        filters = (
            f'<form method=get action="{self.url("/logs")}" class="filters" id="filters">'
            f'<label>Time <select name="range">{range_select}</select></label>'
            + field("since", "Since", "2026-01-31T12:00Z")
            + field("until", "Until", "ISO time, UTC")
            + field("status", "Status", "200, 429, 5xx")
            + field("provider", "Provider")
            + field("model", "Model")
            + f'<label>Cache <select name="cache_status">{cache_select}</select></label>'
            + field("config", "Config slug")
            + field("config_version", "Version")
            + workspace
            + field("meta_key", "Metadata key")
            + field("meta_value", "value")
            + field("trace_id", "Trace id")
            + '<button type="submit">Filter</button>'
            f'<a href="{self.url("/logs")}">clear</a></form>'
        )
        rows = "".join(self._log_row(r) for r in records)
        if not records:
            rows = '<tr><td colspan="10" class="empty">No requests match.</td></tr>'
        table = (
            '<table class="logs" id="logs"><thead><tr><th>Time (UTC)</th><th>Model</th>'
            "<th>Provider · target</th><th>Status</th><th>Latency</th><th>Tokens</th>"
            "<th>Cost</th><th>Cache</th><th>Trace id</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
        )
        more = ""
        if next_cursor:
            query = {k: v for k, v in form.items() if k != "cursor"}
            query["cursor"] = next_cursor
            more = f'<p><a class="older" href="{self.url("/logs", query)}">Older requests →</a></p>'
        timing = (
            f'<p class="timing">{len(records)} requests, newest first · {elapsed_ms:.0f} ms</p>'
        )
        return self.layout("Logs", filters + timing + table + more, "logs")

    def _log_row(self, r: dict[str, Any]) -> str:
        requested = r.get("model")
        answered = r.get("model_answered")
        model = e(requested)
        if answered and answered != requested:
            model += f' <span class="arrow">→</span> <span class="answered">{e(answered)}</span>'
        tokens_title = f"prompt {number(r.get('prompt_tokens'))} · completion {number(r.get('completion_tokens'))}"
        saved = r.get("cost_saved_usd")
        cost = money(r.get("cost_usd"))
        if isinstance(saved, int | float) and saved > 0:
            cost = f'<span class="saved" title="saved by the cache">saved {money(saved)}</span>'
        status = r.get("status")
        trace = r.get("trace_id") or ""
        return (
            f'<tr data-trace-id="{e(trace)}">'
            f'<td class="ts">{when(r.get("ts"))}</td>'
            f'<td class="model">{model}</td>'
            f'<td class="provider">{_provider(r)} · <code>{e(r.get("target"))}</code></td>'
            f'<td class="status {_status_class(status)}">{e(status)}</td>'
            f'<td class="latency">{ms(r.get("latency_ms"))}</td>'
            f'<td class="tokens" title="{e(tokens_title)}">{number(r.get("total_tokens"))}'
            f'<span class="split">{number(r.get("prompt_tokens"))} + {number(r.get("completion_tokens"))}</span></td>'
            f'<td class="cost">{cost}</td>'
            f'<td class="cache">{e(r.get("cache_status"))}</td>'
            f'<td class="trace"><a href="{self.url("/requests/" + trace)}">{e(trace)}</a></td></tr>'
        )

    # ---- one request --------------------------------------------------------------------

    def request(self, r: dict[str, Any]) -> str:
        attempts = r.get("attempts") or []
        timeline = self._timeline(attempts, r.get("latency_ms"))
        facts = [
            ("Trace id", f"<code>{e(r.get('trace_id'))}</code>"),
            ("Time (UTC)", when(r.get("ts"))),
            ("Endpoint", e(r.get("endpoint"))),
            ("Model requested", e(r.get("model"))),
            ("Model sent", e(r.get("model_sent"))),
            ("Model answered", e(r.get("model_answered"))),
            ("Provider · target", f"{_provider(r)} · <code>{e(r.get('target'))}</code>"),
            ("Status", f'<span class="status {_status_class(r.get("status"))}">{e(r.get("status"))}</span>'),
            ("Latency", ms(r.get("latency_ms"))),
            ("Upstream", ms(r.get("upstream_ms"))),
            ("Time to first token", ms(r.get("ttft_ms")) if r.get("stream") else "- (not streamed)"),
            ("Retries · fallbacks", f"{e(r.get('retries'))} · {e(r.get('fallbacks'))}"),
            ("Cache status", e(r.get("cache_status"))),
            ("Cache similarity", e(_round(r.get("cache_similarity")))),
            ("Cache decision", e(r.get("cache_reason"))),
            ("Tokens", f"{number(r.get('prompt_tokens'))} prompt + {number(r.get('completion_tokens'))} completion = {number(r.get('total_tokens'))} ({e(r.get('usage_source'))})"),
            ("Cost", money(r.get("cost_usd"))),
            ("Saved by the cache", money(r.get("cost_saved_usd"))),
            ("Config", self._config_link(r)),
            ("Workspace", e(r.get("workspace"))),
            ("Error", e(" · ".join(str(x) for x in (r.get("error_type"), r.get("error_code"), r.get("error_message")) if x)) if r.get("error_type") else "-"),
        ]  # fmt: skip
        dl = "".join(f'<dt>{k}</dt><dd data-field="{e(k)}">{v}</dd>' for k, v in facts)
        metadata = r.get("metadata") or {}
        meta = (
            "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in metadata.items())
            or '<tr><td class="empty">none</td></tr>'
        )
        bodies = ""
        if "request_body" in r or "response_body" in r:
            bodies = (
                "<h2>Bodies (redacted)</h2>"
                f'<h3>Request</h3><pre class="body" id="request-body">{e(_pretty(r.get("request_body")))}</pre>'
                f'<h3>Response</h3><pre class="body" id="response-body">{e(_pretty(r.get("response_body")))}</pre>'
            )
        else:
            bodies = (
                '<p class="note">Bodies are not logged ([plugins.logging] log_bodies = false).</p>'
            )
        body = (
            f'<dl class="facts">{dl}</dl><h2>Attempts</h2>{timeline}'
            f'<h2>Metadata</h2><table class="meta">{meta}</table>{bodies}'
        )
        return self.layout(f"Request {r.get('trace_id', '')}", body, "logs")

    def _config_link(self, r: dict[str, Any]) -> str:
        slug = r.get("config_id")
        if not slug:
            return "- (inline or none)"
        version = r.get("config_version")
        link = f'<a href="{self.url("/configs/" + str(slug))}">{e(slug)}</a>'
        return link + (f" version {e(version)}" if version is not None else "")

    def _timeline(self, attempts: list[dict[str, Any]], total: Any) -> str:
        if not attempts:
            return '<p class="note">No provider was called (answered from a cache, or refused before routing).</p>'
        span = sum((a.get("delay_ms") or 0) + (a.get("latency_ms") or 0) for a in attempts)
        span = max(span, 0.001)  # the attempts fill the width: their delays and latencies compare
        width = 600.0
        x = 0.0
        bars = []
        rows = []
        for i, a in enumerate(attempts):
            delay = a.get("delay_ms") or 0
            latency = a.get("latency_ms") or 0
            x += delay / span * width
            w = max(latency / span * width, 2)
            kind = (
                "retry"
                if a.get("retry")
                else ("fallback" if i and a.get("path") != attempts[i - 1].get("path") else "first")
            )
            y = i * 22
            cls = _status_class(a.get("status")) or "bad"
            bars.append(
                f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="16" class="bar {cls}"></rect>'
                f'<text x="{min(x + w + 4, width - 80):.1f}" y="{y + 15}">{e(a.get("status") or a.get("error"))}</text>'
            )
            x += w
            rows.append(
                f'<tr class="attempt {kind}"><td>{i + 1}</td><td>{kind}</td><td><code>{e(a.get("path"))}</code></td>'
                f'<td>{e(a.get("provider"))}</td><td class="status {cls}">{e(a.get("status"))}</td>'
                f"<td>{e(a.get('error'))}</td><td>{ms(delay)}</td><td>{ms(latency)}</td></tr>"
            )
        svg = (
            f'<svg class="timeline" viewBox="0 0 {width:.0f} {len(attempts) * 22 + 6}" '
            f'width="{width:.0f}" height="{len(attempts) * 22 + 6}" role="img" '
            f'aria-label="attempts timeline">{"".join(bars)}</svg>'
        )
        table = (
            '<table class="attempts"><thead><tr><th>#</th><th>kind</th><th>target</th><th>provider</th>'
            "<th>status</th><th>error</th><th>delay before</th><th>latency</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
        )
        return svg + table

    # ---- monitoring --------------------------------------------------------------------

    def _limits_table(self, limits: list[dict[str, Any]] | None) -> str:
        """What rate limits and budgets have used now (the ``metrics`` hook's
        ``hookgate_limit_used`` gauge), for an admin; None: no plugin reports limits."""
        if limits is None:
            return ""
        rows = (
            "".join(
                f"<tr><td>{e(r.get('rule'))}</td><td>{e(r.get('value'))}</td><td>{e(r.get('kind'))}</td>"
                f"<td>{e(r.get('unit'))}</td><td>{e(_round(r.get('used')))}</td></tr>"
                for r in limits
            )
            or '<tr><td colspan="5" class="empty">no limit used in its current window</td></tr>'
        )
        return (
            '<h2>Rate limits and budgets</h2><table class="usage" id="limits-table"><thead><tr>'
            "<th>rule</th><th>value</th><th>kind</th><th>window</th><th>used</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
        )

    def monitoring(self, data: dict[str, Any], form: Mapping[str, str], elapsed_ms: float) -> str:
        ranges = [
            ("1h", "1 hour"),
            ("6h", "6 hours"),
            ("24h", "24 hours"),
            ("7d", "7 days"),
            ("30d", "30 days"),
        ]
        current = form.get("range") or "24h"
        options = "".join(
            f'<option value="{v}"{" selected" if v == current else ""}>{label}</option>'
            for v, label in ranges
        )
        workspace = ""
        if self.viewer is not None and self.viewer.workspace is None:
            workspace = f'<label>Workspace <input name="workspace" value="{e(form.get("workspace", ""))}"></label>'
        controls = (
            f'<form method=get action="{self.url("/monitoring")}" class="filters">'
            f'<label>Range <select name="range">{options}</select></label>'
            f'<label>Model <input name="model" value="{e(form.get("model", ""))}"></label>'
            f"{workspace}"
            f'<label>Group by metadata key <input name="by" value="{e(form.get("by", ""))}" placeholder="team"></label>'
            '<button type="submit">Show</button></form>'
        )
        totals = data["totals"]
        hit_rate = totals["hit_rate"]
        cards = (
            '<section class="cards">'
            f'<div class="card"><h3>Requests</h3><p id="total-requests">{number(totals["requests"])}</p></div>'
            f'<div class="card"><h3>Latency p50 · p90 · p99</h3><p id="total-latency">{ms(totals["p50"])} · {ms(totals["p90"])} · {ms(totals["p99"])}</p></div>'
            f'<div class="card"><h3>Cache hit rate</h3><p id="total-hit-rate">{"-" if hit_rate is None else f"{hit_rate * 100:.1f}%"}</p>'
            f"<small>{number(totals['exact_hits'])} exact · {number(totals['semantic_hits'])} semantic of {number(totals['lookups'])} lookups</small></div>"
            f'<div class="card"><h3>Errors</h3><p id="total-errors">{number(totals["errors"])}</p></div>'
            f'<div class="card"><h3>Cost</h3><p>{money(totals["cost_usd"])}</p><small>{number(totals["total_tokens"])} tokens</small></div>'
            f'<div class="card"><h3>Money saved by the caches</h3><p id="total-saved">{money(totals["cost_saved_usd"])}</p></div>'
            "</section>"
        )
        charts = (
            '<section class="charts">'
            '<figure><figcaption>Latency distribution (histogram)</figcaption><div class="chart" id="chart-latency-histogram"></div></figure>'
            '<figure><figcaption>Latency p50 / p90 / p99 over time</figcaption><div class="chart" id="chart-latency"></div></figure>'
            '<figure><figcaption>Cache hit rate over time (exact, semantic)</figcaption><div class="chart" id="chart-cache"></div></figure>'
            '<figure><figcaption>Errors over time by type and status</figcaption><div class="chart" id="chart-errors"></div></figure>'
            '<figure><figcaption>Requests and money saved over time</figcaption><div class="chart" id="chart-requests"></div></figure>'
            "</section>"
        )
        tables = self._usage_table("By model", "model", data["by_model"], "by-model")
        if data.get("metadata_key"):
            tables += self._usage_table(
                f"By metadata {data['metadata_key']}", "value", data["by_metadata"], "by-metadata"
            )
        errors = data["error_kinds"]
        error_rows = (
            "".join(
                f"<tr><td>{e(k['error_type'])}</td><td>{e(k['status'])}</td><td>{number(k['n'])}</td></tr>"
                for k in errors
            )
            or '<tr><td colspan="3" class="empty">no errors</td></tr>'
        )
        error_table = (
            '<h2>Errors by type and status</h2><table class="usage" id="errors-table"><thead><tr>'
            f"<th>type</th><th>status</th><th>requests</th></tr></thead><tbody>{error_rows}</tbody></table>"
        )
        blob = orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY).decode().replace("</", "<\\/")
        timing = f'<p class="timing">{e(data["bucket_label"])} buckets · {elapsed_ms:.0f} ms</p>'
        body = (
            controls
            + timing
            + cards
            + charts
            + tables
            + error_table
            + self._limits_table(data.get("limits"))
            + f'<script type="application/json" id="monitoring-data">{blob}</script>'
        )
        return self.layout("Monitoring: latency, cache hit rate, errors", body, "monitoring")

    def _usage_table(self, title: str, key: str, rows: Iterable[dict[str, Any]], ident: str) -> str:
        body = (
            "".join(
                f"<tr><td>{e(r[key] if r[key] is not None else '(none)')}</td><td>{number(r['requests'])}</td>"
                f"<td>{number(r['prompt_tokens'])}</td><td>{number(r['completion_tokens'])}</td>"
                f"<td>{number(r['total_tokens'])}</td><td>{money(r['cost_usd'])}</td><td>{money(r['cost_saved_usd'])}</td></tr>"
                for r in rows
            )
            or '<tr><td colspan="7" class="empty">no requests</td></tr>'
        )
        return (
            f'<h2>{e(title)}</h2><table class="usage" id="{ident}"><thead><tr><th>{e(key)}</th><th>requests</th>'
            "<th>prompt tokens</th><th>completion tokens</th><th>total tokens</th><th>cost</th>"
            f"<th>saved</th></tr></thead><tbody>{body}</tbody></table>"
        )

    # ---- configs -----------------------------------------------------------------------

    def configs(self, configs: Sequence[dict[str, Any]], error: str | None) -> str:
        viewer = self.viewer
        assert viewer is not None
        rows = (
            "".join(
                f'<tr><td><a href="{self.url("/configs/" + str(c.get("slug") or c.get("id")))}">{e(c.get("name") or c.get("slug"))}</a></td>'
                f"<td><code>{e(c.get('slug') or c.get('id'))}</code></td><td>{e(c.get('workspace_id') or c.get('workspace'))}</td>"
                f"<td>{e(c.get('version') or c.get('version_id'))}</td><td>{e(c.get('last_updated_at') or c.get('updated_at'))}</td></tr>"
                for c in configs
            )
            or '<tr><td colspan="5" class="empty">no stored configs</td></tr>'
        )
        problem = f'<p class="error" role="alert">{e(error)}</p>' if error else ""
        create = ""
        if viewer.can_edit:
            create = (
                f'<h2>New config</h2><form method=post action="{self.url("/configs")}" class="edit">'
                f'{self.csrf_field()}<label>Name <input name="name" required></label>'
                '<label>Config (JSON) <textarea name="config" rows="8" required>'
                '{"retry": {"attempts": 2}}</textarea></label><button type="submit">Create</button></form>'
            )
        body = (
            f'{problem}<table class="usage" id="configs"><thead><tr><th>name</th><th>slug</th>'
            f"<th>workspace</th><th>version</th><th>updated</th></tr></thead><tbody>{rows}</tbody></table>{create}"
        )
        return self.layout("Configs", body, "configs")

    def config(
        self,
        config: dict[str, Any],
        versions: Sequence[dict[str, Any]],
        audit: Sequence[dict[str, Any]],
        diff: tuple[dict[str, Any], dict[str, Any]] | None,
        error: str | None,
        draft: str | None,
    ) -> str:
        viewer = self.viewer
        assert viewer is not None
        slug = str(config.get("slug") or config.get("id"))
        current = config.get("version")
        version_rows = []
        for v in versions:
            number_ = v.get("version")
            action = ""
            if viewer.can_edit and number_ != current:
                action = (
                    f'<form method=post action="{self.url(f"/configs/{slug}/rollback")}" class="inline rollback">'
                    f'{self.csrf_field()}<input type="hidden" name="version" value="{e(number_)}">'
                    f'<button type="submit" data-confirm="Make version {e(number_)} of {e(slug)} current?">Roll back</button></form>'
                )
            mark = ' <span class="current">current</span>' if number_ == current else ""
            version_rows.append(
                f'<tr data-version="{e(number_)}"><td>{e(number_)}{mark}</td><td>{e(v.get("created_by_name") or v.get("created_by"))}</td>'
                f"<td>{e(v.get('created_at'))}</td><td>{e(v.get('message'))}</td><td>{action}</td></tr>"
            )
        numbers = [v.get("version") for v in versions]
        left = diff[0].get("version") if diff else (numbers[1] if len(numbers) > 1 else current)
        right = diff[1].get("version") if diff else current

        def pick(name: str, chosen: Any) -> str:
            opts = "".join(
                f"<option{' selected' if n == chosen else ''}>{e(n)}</option>" for n in numbers
            )
            return f'<select name="{name}">{opts}</select>'

        compare = (
            f'<form method=get action="{self.url("/configs/" + slug)}" class="filters">'
            f"<label>Compare {pick('a', left)}</label><label>with {pick('b', right)}</label>"
            '<button type="submit">Diff</button></form>'
        )
        diff_html = self._diff(diff) if diff else ""
        problem = f'<p class="error" role="alert" id="config-error">{e(error)}</p>' if error else ""
        edit = ""
        if viewer.can_edit:
            text = draft if draft is not None else _pretty(config.get("config"))
            edit = (
                f'<h2>Edit</h2><form method=post action="{self.url(f"/configs/{slug}")}" class="edit" id="edit-config">'
                f'{self.csrf_field()}<label>Config (JSON) <textarea name="config" rows="14">{e(text)}</textarea></label>'
                f'{problem}<label>Note <input name="note"></label><button type="submit">Save new version</button></form>'
            )
        elif error:
            edit = problem
        audit_rows = (
            "".join(
                f"<tr><td>{e(a.get('created_at'))}</td><td>{e(_actor(a.get('actor')))}</td>"
                f"<td>{e(a.get('action'))}</td><td>{e(_audit_detail(a))}</td></tr>"
                for a in audit
            )
            or '<tr><td colspan="4" class="empty">no changes recorded</td></tr>'
        )
        body = (
            f"<p>Slug <code>{e(slug)}</code> · current version <strong id=current-version>{e(current)}</strong>"
            f" · workspace {e(config.get('workspace_id') or config.get('workspace'))}</p>"
            f'<h2>Versions</h2><table class="usage" id="versions"><thead><tr><th>version</th><th>author</th>'
            f"<th>time</th><th>note</th><th></th></tr></thead><tbody>{''.join(version_rows)}</tbody></table>"
            f"<h2>Diff</h2>{compare}{diff_html}{edit}"
            f'<h2>Audit log</h2><table class="usage" id="audit"><thead><tr><th>time</th><th>who</th>'
            f"<th>action</th><th>detail</th></tr></thead><tbody>{audit_rows}</tbody></table>"
        )
        return self.layout(f"Config {config.get('name') or slug}", body, "configs")

    def _diff(self, pair: tuple[dict[str, Any], dict[str, Any]]) -> str:
        a, b = pair
        left = _pretty(a.get("config")).splitlines()
        right = _pretty(b.get("config")).splitlines()
        rows = []
        matcher = difflib.SequenceMatcher(a=left, b=right, autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            n = max(i2 - i1, j2 - j1)
            for k in range(n):
                old = left[i1 + k] if i1 + k < i2 else None
                new = right[j1 + k] if j1 + k < j2 else None
                cls = "same" if tag == "equal" else "changed"
                rows.append(
                    f'<tr class="{cls}"><td class="old">{"" if old is None else e(old)}</td>'
                    f'<td class="new">{"" if new is None else e(new)}</td></tr>'
                )
        return (
            f'<table class="diff" id="diff"><thead><tr><th>version {e(a.get("version"))}</th>'
            f"<th>version {e(b.get('version'))}</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        )

    # ---- keys and workspaces ---------------------------------------------------------------

    def keys(
        self,
        virtual: Sequence[dict[str, Any]],
        gateway_keys: Sequence[dict[str, Any]],
        created: str | None,
        error: str | None,
    ) -> str:
        viewer = self.viewer
        assert viewer is not None
        vrows = (
            "".join(
                f"<tr><td>{e(v.get('name'))}</td><td><code>{e(v.get('slug'))}</code></td><td>{e(v.get('provider'))}</td>"
                f"<td><code>{e(_mask(v))}</code></td><td>{e(v.get('workspace_id') or v.get('workspace'))}</td></tr>"
                for v in virtual
            )
            or '<tr><td colspan="5" class="empty">no virtual keys</td></tr>'
        )
        grows = []
        for k in gateway_keys:
            action = ""
            if viewer.can_edit and k.get("status", "active") == "active":
                action = (
                    f'<form method=post action="{self.url("/keys/" + str(k.get("id")) + "/revoke")}" class="inline">'
                    f'{self.csrf_field()}<button type="submit" class="revoke">Revoke</button></form>'
                )
            grows.append(
                f"<tr><td>{e(k.get('name'))}</td><td><code>{e(k.get('id'))}</code></td><td>{e(k.get('role') or k.get('type'))}</td>"
                f"<td>{e(k.get('workspace_id') or k.get('workspace'))}</td><td>{e(k.get('status', 'active'))}</td>"
                f"<td><code>{e(_mask(k))}</code></td><td>{action}</td></tr>"
            )
        once = ""
        if created:
            once = (
                '<div class="once" role="status"><p>Your new gateway key. Copy it now: it is shown '
                f'only this once.</p><code id="new-key">{e(created)}</code></div>'
            )
        problem = f'<p class="error" role="alert">{e(error)}</p>' if error else ""
        create = ""
        if viewer.can_edit:
            roles = "".join(f"<option>{r}</option>" for r in ("viewer", "member", "admin"))
            ws = (
                '<label>Workspace <input name="workspace"></label>'
                if viewer.workspace is None
                else ""
            )
            create = (
                f'<h2>New gateway key</h2><form method=post action="{self.url("/keys")}" class="edit" id="create-key">'
                f'{self.csrf_field()}<label>Name <input name="name" required></label>'
                f'<label>Role <select name="role">{roles}</select></label>{ws}'
                '<button type="submit">Create key</button></form>'
            )
        body = (
            f"{once}{problem}<h2>Virtual keys</h2><table class=usage id=virtual-keys><thead><tr><th>name</th><th>slug</th>"
            f"<th>provider</th><th>key</th><th>workspace</th></tr></thead><tbody>{vrows}</tbody></table>"
            f"<h2>Gateway keys</h2><table class=usage id=gateway-keys><thead><tr><th>name</th><th>id</th><th>role</th>"
            f"<th>workspace</th><th>status</th><th>key</th><th></th></tr></thead><tbody>{''.join(grows)}</tbody></table>{create}"
        )
        return self.layout("Keys", body, "keys")

    def workspaces(self, workspaces: Sequence[dict[str, Any]], error: str | None) -> str:
        rows = (
            "".join(
                f"<tr><td>{e(w.get('name'))}</td><td><code>{e(w.get('slug') or w.get('id'))}</code></td>"
                f"<td>{e(w.get('description'))}</td><td>{e(w.get('created_at'))}</td></tr>"
                for w in workspaces
            )
            or '<tr><td colspan="4" class="empty">no workspaces</td></tr>'
        )
        problem = f'<p class="error" role="alert">{e(error)}</p>' if error else ""
        body = (
            f'{problem}<table class="usage" id="workspaces"><thead><tr><th>name</th><th>slug</th>'
            f"<th>description</th><th>created</th></tr></thead><tbody>{rows}</tbody></table>"
        )
        return self.layout("Workspaces", body, "workspaces")


def _actor(actor: Any) -> Any:
    if isinstance(actor, dict):
        return actor.get("name") or actor.get("id")
    return actor


def _audit_detail(entry: dict[str, Any]) -> str:
    before, after = entry.get("before"), entry.get("after")
    old = before.get("version") if isinstance(before, dict) else None
    new = after.get("version") if isinstance(after, dict) else None
    if old is not None or new is not None:
        return f"version {old if old is not None else '-'} → {new if new is not None else '-'}"
    return str(entry.get("resource_id") or "")


def _provider(r: dict[str, Any]) -> str:
    if r.get("provider"):
        return e(r["provider"])
    if r.get("cache_status") in ("HIT", "SEMANTIC HIT"):
        return '<span class="note">the cache</span>'
    return "-"


def _mask(item: dict[str, Any]) -> str:
    # list views carry only a hint of the key (``sk-...abcd``), never the key itself
    for name in ("masked_key", "key"):
        value = item.get(name)
        if isinstance(value, str) and value:
            return value
    return "••••••••"


def _round(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) and math.isfinite(value) else value


def _pretty(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()

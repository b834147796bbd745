"""The console's routes: pages, form posts, a JSON API and the vendored static files."""

from __future__ import annotations

import asyncio
import hmac
import math
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qsl, quote

import orjson
import structlog
from hookgate.errors import GatewayError
from hookgate.logquery import LATENCY_EDGES_MS, AggregateQuery, LogFilter, LogQuery
from hookgate.server.gate import open_route
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from . import ConsoleSettings
from .access import (
    COOKIE,
    LOGIN_COOKIE,
    Sessions,
    Viewer,
    operator_keys,
    same_origin,
    viewer_from_principal,
)
from .control import ControlPages
from .pages import Page

__all__ = ["Console"]

log = structlog.get_logger("hookgate.console")

_STATIC = {
    "uPlot.iife.min.js": "text/javascript; charset=utf-8",
    "uPlot.min.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}
_SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; "
        "base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}
_RANGES = {"15m": 900, "1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
_BUCKETS = (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400)
_MAX_FORM_BYTES = 256 * 1024
Handler = Callable[[Request], Awaitable[Response]]


class FilterError(ValueError):
    """A filter the user typed that means nothing (shown on the page, never a 500)."""


def _iso(text: str, name: str) -> float:
    try:
        moment = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        raise FilterError(f"{name}: {text!r} is not a time such as 2026-01-31T12:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def log_filter(form: dict[str, str], viewer: Viewer, now: float) -> LogFilter:
    """The :class:`LogFilter` for the logs page's form; a non-admin sees only its workspace."""
    since = until = None
    if form.get("range"):
        span = _RANGES.get(form["range"])
        if span is None:
            raise FilterError(f"range: {form['range']!r} is not one of {', '.join(_RANGES)}")
        since = now - span
    if form.get("since"):
        since = _iso(form["since"], "since")
    if form.get("until"):
        until = _iso(form["until"], "until")
    status = status_class = None
    raw = form.get("status", "").strip().lower()
    if raw:
        if len(raw) == 3 and raw.endswith("xx") and raw[0] in "12345":
            status_class = int(raw[0])
        elif raw.isdigit() and 100 <= int(raw) <= 599:
            status = int(raw)
        else:
            raise FilterError(f"status: {raw!r} is not a status such as 429 or 5xx")
    version = None
    if form.get("config_version"):
        try:
            version = int(form["config_version"])
        except ValueError:
            raise FilterError("version: a config version is a whole number") from None
    metadata: tuple[tuple[str, str], ...] = ()
    if form.get("meta_key"):
        metadata = ((form["meta_key"], form.get("meta_value", "")),)
    workspace = (
        viewer.workspace if viewer.workspace is not None else (form.get("workspace") or None)
    )
    return LogFilter(
        since=since,
        until=until,
        trace_id=form.get("trace_id") or None,
        status=status,
        status_class=status_class,
        provider=form.get("provider") or None,
        model=form.get("model") or None,
        cache_status=form.get("cache_status") or None,
        config_id=form.get("config") or None,
        config_version=version,
        workspace=workspace,
        metadata=metadata,
    )


def _bucket(span: float) -> int:
    for size in _BUCKETS:
        if span / size <= 120:
            return size
    return _BUCKETS[-1]


def _label(seconds: float) -> str:
    if seconds % 86400 == 0:
        return f"{int(seconds // 86400)} d"
    if seconds % 3600 == 0:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 60)} min"


def monitoring_data(agg: Any, since: float, until: float) -> dict[str, Any]:
    """What the monitoring page's charts and tables show, as JSON-ready columns."""
    step = int(agg.bucket_s)
    first = int(since // step) * step
    grid = list(range(first, int(until) + 1, step))
    by_t = {int(s["t"]): s for s in agg.series}

    def column(name: str) -> list[Any]:
        return [by_t[t][name] if t in by_t else None for t in grid]

    def rate(name: str) -> list[float | None]:
        out: list[float | None] = []
        for t in grid:
            s = by_t.get(t)
            out.append(s[name] / s["lookups"] if s and s["lookups"] else None)
        return out

    kinds: dict[tuple[str, int], int] = {}
    for item in agg.error_series:
        key = (item["error_type"], item["status"])
        kinds[key] = kinds.get(key, 0) + item["n"]
    top = sorted(kinds, key=lambda k: -kinds[k])[:6]
    errors = []
    for kind in top:
        counts = dict.fromkeys(grid, 0)
        for item in agg.error_series:
            if (item["error_type"], item["status"]) == kind and int(item["t"]) in counts:
                counts[int(item["t"])] += item["n"]
        errors.append({"label": f"{kind[0]} ({kind[1]})", "values": [counts[t] for t in grid]})
    edges = ["0"] + [f"{edge:g}" for edge in LATENCY_EDGES_MS]
    labels = [f"<{LATENCY_EDGES_MS[0]:g}"] + [
        f"{edges[i]}-{LATENCY_EDGES_MS[i]:g}" for i in range(1, len(LATENCY_EDGES_MS))
    ]
    labels.append(f"≥{LATENCY_EDGES_MS[-1]:g}")
    hit_rate = agg.hit_rate
    return {
        "since": since,
        "until": until,
        "bucket_s": step,
        "bucket_label": _label(step),
        "t": grid,
        "p50": column("p50"),
        "p90": column("p90"),
        "p99": column("p99"),
        "requests": [by_t[t]["requests"] if t in by_t else 0 for t in grid],
        "errors": [by_t[t]["errors"] if t in by_t else 0 for t in grid],
        "exact_rate": rate("exact_hits"),
        "semantic_rate": rate("semantic_hits"),
        "saved": [by_t[t]["cost_saved_usd"] if t in by_t else 0 for t in grid],
        "cost": [by_t[t]["cost_usd"] if t in by_t else 0 for t in grid],
        "histogram": {"labels": labels, "counts": list(agg.histogram)},
        "error_series": errors,
        "error_kinds": [
            {"error_type": k[0], "status": k[1], "n": kinds[k]}
            for k in sorted(kinds, key=lambda k: -kinds[k])
        ],
        "by_model": agg.by_model,
        "metadata_key": agg.metadata_key,
        "by_metadata": agg.by_metadata,
        "totals": {
            "requests": agg.requests,
            "errors": agg.errors,
            "p50": agg.latency_ms.get("p50"),
            "p90": agg.latency_ms.get("p90"),
            "p99": agg.latency_ms.get("p99"),
            "exact_hits": agg.exact_hits,
            "semantic_hits": agg.semantic_hits,
            "lookups": agg.lookups,
            "hit_rate": hit_rate if hit_rate is None or math.isfinite(hit_rate) else None,
            "total_tokens": agg.total_tokens,
            "cost_usd": agg.cost_usd,
            "cost_saved_usd": agg.cost_saved_usd,
        },
    }


class Console:
    """The console of one gateway: its routes and the in-process admin API client."""

    def __init__(self, settings: ConsoleSettings, sessions: Sessions, gateway: Any) -> None:
        self.settings = settings
        self.sessions = sessions
        self.gateway = gateway
        self.base = settings.path
        self._operator = operator_keys(gateway.settings.server.api_keys)
        self.control = ControlPages(self)
        self._static = {
            name: files("hookgate_console").joinpath("static", name).read_bytes()
            for name in _STATIC
        }

    async def aclose(self) -> None:
        await self.control.aclose()

    def routes(self) -> list[BaseRoute]:
        """Every console route is open at the server's gateway-key gate: a browser carries
        its key in the session cookie, not in a header, so each handler authenticates the
        request itself (``page``/``api``: no valid key, no data) and the login page and the
        static files hold none."""
        return [open_route(route) for route in self._routes()]

    def _routes(self) -> list[BaseRoute]:
        b = self.base
        return [
            Route(b, self.home, methods=["GET"]),
            Route(b + "/login", self.login_page, methods=["GET"]),
            Route(b + "/login", self.login, methods=["POST"]),
            Route(b + "/logout", self.logout, methods=["POST"]),
            Route(b + "/static/{name}", self.static, methods=["GET"]),
            Route(b + "/logs", self.page(self.logs), methods=["GET"]),
            Route(b + "/requests/{trace_id}", self.page(self.request_page), methods=["GET"]),
            Route(b + "/monitoring", self.page(self.monitoring), methods=["GET"]),
            Route(b + "/configs", self.page(self.control.configs), methods=["GET"]),
            Route(b + "/configs", self.page(self.control.create_config), methods=["POST"]),
            Route(b + "/configs/{slug}", self.page(self.control.config), methods=["GET"]),
            Route(b + "/configs/{slug}", self.page(self.control.update_config), methods=["POST"]),
            Route(
                b + "/configs/{slug}/rollback", self.page(self.control.rollback), methods=["POST"]
            ),
            Route(b + "/keys", self.page(self.control.keys), methods=["GET"]),
            Route(b + "/keys", self.page(self.control.create_key), methods=["POST"]),
            Route(
                b + "/keys/{key_id}/revoke", self.page(self.control.revoke_key), methods=["POST"]
            ),
            Route(b + "/workspaces", self.page(self.control.workspaces), methods=["GET"]),
            Route(b + "/api/logs", self.api(self.api_logs), methods=["GET"]),
            Route(b + "/api/monitoring", self.api(self.api_monitoring), methods=["GET"]),
        ]

    # ---- access ----------------------------------------------------------------------

    def check_key(self, key: str, request: Request) -> Viewer | None:
        """The console user a gateway key stands for: the operator for ``[server] api_keys``,
        else whatever the control plane's ``authenticate`` answers (None: not a key)."""
        viewer = self._operator(key)
        if viewer is not None:
            return viewer
        headers = {k: v for k, v in request.headers.items() if k != "cookie"}
        headers["x-portkey-api-key"] = key
        try:
            principal = self.gateway.hooks.authenticate(key, headers)
        except GatewayError:  # a key the control plane refuses: revoked, expired, unknown
            return None
        return viewer_from_principal(principal, key)

    def identify(self, request: Request) -> tuple[Viewer | None, str | None, bool]:
        """(viewer, session cookie, whether a key was presented at all)."""
        header = request.headers.get("x-portkey-api-key")
        if header:
            return self.check_key(header, request), None, True
        cookie = request.cookies.get(COOKIE)
        key = self.sessions.open(cookie)
        if key is None:
            return None, None, bool(cookie)
        viewer = self.check_key(key, request)
        return viewer, cookie if viewer is not None else None, True

    def respond(
        self, body: str | bytes, status: int = 200, headers: dict[str, str] | None = None
    ) -> Response:
        out = Response(body, status_code=status, media_type="text/html; charset=utf-8")
        out.headers.update(_SECURITY_HEADERS)
        out.headers["cache-control"] = "no-store"
        for name, value in (headers or {}).items():
            out.headers[name] = value
        return out

    def redirect(self, location: str, cookies: list[str] | None = None) -> Response:
        out = Response(b"", status_code=303, headers={"location": location})
        out.headers.update(_SECURITY_HEADERS)
        out.headers["cache-control"] = "no-store"
        for cookie in cookies or ():
            out.headers.append("set-cookie", cookie)
        return out

    def _cookie(self, request: Request, name: str, value: str, max_age: int) -> str:
        secure = "; Secure" if request.url.scheme == "https" else ""
        return f"{name}={value}; Path={self.base}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"

    def page(self, handler: Callable[[Request, Page], Awaitable[Response]]) -> Handler:
        """A page for logged-in users: without a valid key, the login page and no data."""

        async def run(request: Request) -> Response:
            viewer, session, _ = self.identify(request)
            if viewer is None:
                if request.headers.get("x-portkey-api-key"):
                    page = Page(self.base, None, None)
                    return self.respond(
                        page.message("Not allowed", "That gateway key is not valid.", "error"), 401
                    )
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return self.redirect(f"{self.base}/login?next={quote(target, safe='')}")
            page = Page(self.base, viewer, self.sessions.csrf_for(session) if session else None)
            try:
                return await handler(request, page)
            except GatewayError as exc:
                return self.respond(page.message("Error", exc.message, "error"), exc.http_status)

        return run

    def api(self, handler: Callable[[Request, Viewer], Awaitable[dict[str, Any]]]) -> Handler:
        async def run(request: Request) -> Response:
            viewer, _session, _ = self.identify(request)
            if viewer is None:
                error = {"error": {"message": "a valid gateway key is required", "type": "authentication_error", "code": "invalid_api_key"}}  # fmt: skip
                return Response(orjson.dumps(error), 401, media_type="application/json")
            try:
                body = await handler(request, viewer)
            except FilterError as exc:
                error = {"error": {"message": str(exc), "type": "invalid_request_error", "code": "invalid_filter"}}  # fmt: skip
                return Response(orjson.dumps(error), 400, media_type="application/json")
            except GatewayError as exc:
                return Response(exc.to_json(), exc.http_status, media_type="application/json")
            return Response(
                orjson.dumps(body, default=str),
                media_type="application/json",
                headers={"cache-control": "no-store", **_SECURITY_HEADERS},
            )

        return run

    async def form(self, request: Request) -> dict[str, str]:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > _MAX_FORM_BYTES:
                break
        return dict(
            parse_qsl(body[:_MAX_FORM_BYTES].decode("utf-8", "replace"), keep_blank_values=True)
        )

    def csrf_ok(self, request: Request, session: str | None, form: dict[str, str]) -> bool:
        """A browser's post needs this origin and the session's token; a request carrying
        its key in a header has no ambient credential to abuse."""
        if request.headers.get("x-portkey-api-key") and session is None:
            return True
        return same_origin(
            request.headers, request.url.scheme, request.headers.get("host")
        ) and self.sessions.csrf_ok(session, form.get("csrf"))

    async def checked_form(self, request: Request, page: Page) -> dict[str, str] | None:
        """A change's form, or None when it must be refused: a viewer (whatever the page
        showed), or a browser post without this origin and the session's CSRF token."""
        form = await self.form(request)
        viewer = page.viewer
        if viewer is None or not viewer.can_edit:
            return None
        if page.csrf is None:  # the key came in a header: no ambient credential
            return form if request.headers.get("x-portkey-api-key") else None
        token = form.get("csrf") or ""
        if not hmac.compare_digest(token.encode(), page.csrf.encode()):
            return None
        if not same_origin(request.headers, request.url.scheme, request.headers.get("host")):
            return None
        return form

    def refused(self, page: Page) -> Response:
        text = (
            "A viewer key cannot change anything."
            if page.viewer is not None and not page.viewer.can_edit
            else "The form expired or came from another site; reload the page and try again."
        )
        return self.respond(page.message("Not allowed", text, "error"), 403)

    # ---- login -----------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        return self.redirect(self.base + "/logs")

    def _keys_exist(self) -> bool:
        return bool(self.gateway.settings.server.api_keys) or bool(
            self.gateway.hooks.implementers("authenticate")
        )

    async def login_page(self, request: Request) -> Response:
        token = self.sessions.login_token()
        page = Page(self.base, None, None)
        return self.respond(
            page.login(None, token, self._keys_exist(), self._next(request)),
            headers={"set-cookie": self._cookie(request, LOGIN_COOKIE, token, 1800)},
        )

    async def login(self, request: Request) -> Response:
        form = await self.form(request)
        page = Page(self.base, None, None)
        token = request.cookies.get(LOGIN_COOKIE)
        fresh = self.sessions.login_token()
        cookie = {"set-cookie": self._cookie(request, LOGIN_COOKIE, fresh, 1800)}
        if (
            not token
            or token != form.get("login_token")
            or not same_origin(request.headers, request.url.scheme, request.headers.get("host"))
        ):
            return self.respond(
                page.login(
                    "The form expired; try again.", fresh, self._keys_exist(), self._next(request)
                ),
                403,
                cookie,
            )
        key = form.get("key", "").strip()
        viewer = self.check_key(key, request) if key else None
        if viewer is None:
            log.info("console_login_refused")
            return self.respond(
                page.login(
                    "That gateway key is not valid.", fresh, self._keys_exist(), self._next(request)
                ),
                401,
                cookie,
            )
        log.info("console_login", viewer=viewer.name, role=viewer.role)
        return self.redirect(
            self._next(request) or self.base + "/logs",
            [
                self._cookie(request, COOKIE, self.sessions.seal(key), self.sessions.max_age),
                self._cookie(request, LOGIN_COOKIE, "", 0),
            ],
        )

    def _next(self, request: Request) -> str:
        """Where to go after logging in: a console page, never another site."""
        target = request.query_params.get("next") or ""
        if not target.startswith(self.base + "/") or "//" in target or "\\" in target:
            return ""
        return target

    async def logout(self, request: Request) -> Response:
        form = await self.form(request)
        _viewer, session, _ = self.identify(request)
        if session is not None and not self.csrf_ok(request, session, form):
            return self.respond(
                Page(self.base, None, None).message("Refused", "The form expired.", "error"), 403
            )
        return self.redirect(self.base + "/login", [self._cookie(request, COOKIE, "", 0)])

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in _STATIC:
            return Response(b"not found", 404, media_type="text/plain")
        return Response(
            self._static[name],
            media_type=_STATIC[name],
            headers={"cache-control": "public, max-age=3600", "x-content-type-options": "nosniff"},
        )

    # ---- logs ------------------------------------------------------------------------

    async def _page_of_logs(
        self, form: dict[str, str], viewer: Viewer
    ) -> tuple[list[dict[str, Any]], str | None, bool]:
        limit = self.settings.page_size
        if form.get("limit"):
            if not form["limit"].isdigit() or not 1 <= int(form["limit"]) <= 500:
                raise FilterError("limit: a number of requests from 1 to 500")
            limit = int(form["limit"])
        query = LogQuery(
            filter=log_filter(form, viewer, time.time()),
            limit=limit,
            cursor=form.get("cursor") or None,
        )
        result = await self.gateway.hooks.query_logs(self.gateway, query)
        if result is None:
            return [], None, False
        return result.records, result.next_cursor, True

    async def logs(self, request: Request, page: Page) -> Response:
        form = dict(request.query_params)
        started = time.perf_counter()
        viewer = page.viewer
        assert viewer is not None
        try:
            records, cursor, stored = await self._page_of_logs(form, viewer)
        except FilterError as exc:
            # The form is shown again with the problem beside it (a page, not an error).
            html = page.logs([], form, None, 0).replace(
                '<p class="timing">',
                f'<p class="error" role="alert">{_esc(str(exc))}</p><p class="timing">',
                1,
            )
            return self.respond(html)
        elapsed = (time.perf_counter() - started) * 1000
        html = page.logs(records, form, cursor, elapsed)
        if not stored:
            html = html.replace(
                '<p class="timing">',
                '<p class="note">No plugin stores request records: enable the logging plugin\'s store.</p><p class="timing">',
                1,
            )
        return self.respond(html)

    async def request_page(self, request: Request, page: Page) -> Response:
        trace_id = request.path_params["trace_id"]
        viewer = page.viewer
        assert viewer is not None
        result = await self.gateway.hooks.query_logs(
            self.gateway,
            LogQuery(filter=LogFilter(trace_id=trace_id, workspace=viewer.workspace), limit=1),
        )
        if result is None or not result.records:
            return self.respond(
                page.message(
                    "Not found", f"No request with trace id {trace_id} is logged.", "error"
                ),
                404,
            )
        return self.respond(page.request(result.records[0]))

    async def api_logs(self, request: Request, viewer: Viewer) -> dict[str, Any]:
        records, cursor, _ = await self._page_of_logs(dict(request.query_params), viewer)
        return {"data": records, "next_cursor": cursor}

    # ---- monitoring ------------------------------------------------------------------------

    async def _monitoring(self, form: dict[str, str], viewer: Viewer) -> dict[str, Any] | None:
        span = _RANGES.get(form.get("range") or "24h")
        if span is None:
            raise FilterError(f"range: {form['range']!r} is not one of {', '.join(_RANGES)}")
        until = time.time()
        since = until - span
        workspace = (
            viewer.workspace if viewer.workspace is not None else (form.get("workspace") or None)
        )
        query = AggregateQuery(
            filter=LogFilter(
                since=since, until=until, workspace=workspace, model=form.get("model") or None
            ),
            bucket_s=_bucket(span),
            metadata_key=form.get("by") or None,
        )
        agg = await self.gateway.hooks.aggregate_logs(self.gateway, query)
        if agg is None:
            return None
        data = monitoring_data(agg, since, until)
        if viewer.workspace is None:  # counters name keys and users of every workspace
            data["limits"] = await asyncio.to_thread(self._limits)
        return data

    def _limits(self) -> list[dict[str, Any]] | None:
        """Current usage of every limit, from the ``metrics`` hook (hookgate-limits reports
        ``hookgate_limit_used``); None when no plugin reports limits."""
        for gauge in self.gateway.hooks.metrics(self.gateway):
            if gauge.name == "hookgate_limit_used":
                found = [{**labels, "used": value} for labels, value in gauge.values]
                return sorted(found, key=lambda r: (str(r.get("rule")), str(r.get("value"))))
        return None

    async def monitoring(self, request: Request, page: Page) -> Response:
        form = dict(request.query_params)
        viewer = page.viewer
        assert viewer is not None
        started = time.perf_counter()
        try:
            data = await self._monitoring(form, viewer)
        except FilterError as exc:
            return self.respond(page.message("Monitoring", str(exc), "error"))
        if data is None:
            return self.respond(
                page.message(
                    "Monitoring",
                    "No plugin stores request records: enable the logging plugin's store.",
                )
            )
        return self.respond(page.monitoring(data, form, (time.perf_counter() - started) * 1000))

    async def api_monitoring(self, request: Request, viewer: Viewer) -> dict[str, Any]:
        data = await self._monitoring(dict(request.query_params), viewer)
        return data or {}


def _esc(text: str) -> str:
    from .pages import e

    return e(text)

"""Configs, keys and workspaces: pages over the control plane's admin API.

The console never imports the control plane. It calls the Portkey-shaped admin API
(``/v1/configs``, ``/v1/configs/{slug}/versions``, ``/v1/configs/{slug}/rollback``,
``/v1/virtual-keys``, ``/v1/api-keys``, ``/v1/admin/workspaces``, ``/v1/audit-logs``) of the
same server, in-process (httpx over ASGI, no socket), with the console user's own gateway key:
whatever the control plane allows or refuses that key, the console shows. The console hides
the controls a viewer may not use; the API refuses them anyway.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import orjson
from starlette.requests import Request
from starlette.responses import Response

from .pages import Page

if TYPE_CHECKING:
    from .routes import Console

__all__ = ["ControlPages"]

NOT_INSTALLED = (
    "No control plane answers the admin API on this server (enable the control plugin to "
    "manage configs, keys and workspaces here)."
)


class AdminError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ControlPages:
    """The control plane's pages of one console."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._client: httpx.AsyncClient | None = None
        self._app: Any = None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _http(self, request: Request) -> httpx.AsyncClient:
        app = request.app
        if self._client is None or self._app is not app:
            # One client for the life of the server: the app it talks to does not change.
            self._client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://hookgate.console"
            )
            self._app = app
        return self._client

    async def call(
        self,
        request: Request,
        page: Page,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        """One admin API call with the viewer's key; :class:`AdminError` with the API's own
        message on a 4xx/5xx."""
        assert page.viewer is not None
        answer = await self._http(request).request(
            method,
            path,
            json=body,
            params=params,
            headers={"x-portkey-api-key": page.viewer.key},
        )
        try:
            data = answer.json()
        except ValueError:
            data = None
        if answer.status_code >= 400:
            message = NOT_INSTALLED if answer.status_code == 404 and path in (
                "/v1/configs", "/v1/api-keys", "/v1/virtual-keys", "/v1/admin/workspaces"
            ) else _message(data, answer.status_code)  # fmt: skip
            raise AdminError(answer.status_code, message)
        return data

    async def listing(self, request: Request, page: Page, path: str) -> list[dict[str, Any]]:
        data = await self.call(request, page, "GET", path)
        items = data.get("data") if isinstance(data, dict) else None
        return [i for i in items or () if isinstance(i, dict)]

    # ---- configs --------------------------------------------------------------------

    async def configs(self, request: Request, page: Page, error: str | None = None) -> Response:
        try:
            items = await self.listing(request, page, "/v1/configs")
        except AdminError as exc:
            return self.console.respond(page.configs([], exc.message), _shown(exc.status))
        return self.console.respond(page.configs(items, error))

    async def create_config(self, request: Request, page: Page) -> Response:
        form = await self.console.checked_form(request, page)
        if form is None:
            return self.console.refused(page)
        try:
            config = _parse(form.get("config", ""))
            body: dict[str, Any] = {"name": form.get("name", "").strip(), "config": config}
            workspace = form.get("workspace", "").strip()
            if workspace:
                body["workspace_id"] = workspace
            made = await self.call(request, page, "POST", "/v1/configs", body=body)
        except AdminError as exc:
            return await self.configs(request, page, exc.message)
        return self.console.redirect(page.url("/configs/" + str(made.get("slug"))))

    async def config(
        self,
        request: Request,
        page: Page,
        error: str | None = None,
        draft: str | None = None,
    ) -> Response:
        slug = request.path_params["slug"]
        try:
            config = await self.call(request, page, "GET", f"/v1/configs/{slug}")
            versions = await self.listing(request, page, f"/v1/configs/{slug}/versions")
        except AdminError as exc:
            return self.console.respond(
                page.message("Config", exc.message, "error"), _shown(exc.status)
            )
        audit: list[dict[str, Any]] = []
        try:
            entries = await self.listing(request, page, "/v1/audit-logs")
            audit = [a for a in entries if a.get("resource_id") == slug]
        except AdminError:
            pass  # a viewer may not read the audit log: the table says there is nothing
        by_number = {str(v.get("version")): v for v in versions}
        wanted = (request.query_params.get("a"), request.query_params.get("b"))
        diff = None
        if len(versions) > 1:
            left = by_number.get(wanted[0] or "") or versions[1]
            right = by_number.get(wanted[1] or "") or versions[0]
            diff = (left, right)
        return self.console.respond(page.config(config, versions, audit, diff, error, draft))

    async def update_config(self, request: Request, page: Page) -> Response:
        form = await self.console.checked_form(request, page)
        if form is None:
            return self.console.refused(page)
        slug = request.path_params["slug"]
        text = form.get("config", "")
        try:
            body: dict[str, Any] = {"config": _parse(text)}
            if form.get("note"):
                body["message"] = form["note"]
            await self.call(request, page, "PUT", f"/v1/configs/{slug}", body=body)
        except AdminError as exc:
            return await self.config(request, page, exc.message, text)
        return self.console.redirect(page.url(f"/configs/{slug}"))

    async def rollback(self, request: Request, page: Page) -> Response:
        form = await self.console.checked_form(request, page)
        if form is None:
            return self.console.refused(page)
        slug = request.path_params["slug"]
        version = form.get("version", "")
        try:
            await self.call(
                request,
                page,
                "POST",
                f"/v1/configs/{slug}/rollback",
                body={"version_id": int(version) if version.isdigit() else version},
            )
        except AdminError as exc:
            return await self.config(request, page, exc.message)
        return self.console.redirect(page.url(f"/configs/{slug}"))

    # ---- keys and workspaces -------------------------------------------------------------

    async def keys(
        self,
        request: Request,
        page: Page,
        created: str | None = None,
        error: str | None = None,
    ) -> Response:
        try:
            virtual = await self.listing(request, page, "/v1/virtual-keys")
        except AdminError as exc:
            return self.console.respond(page.keys([], [], None, exc.message), _shown(exc.status))
        gateway_keys: list[dict[str, Any]] = []
        try:
            gateway_keys = await self.listing(request, page, "/v1/api-keys")
        except AdminError as exc:
            error = error or exc.message
        return self.console.respond(page.keys(virtual, gateway_keys, created, error))

    async def create_key(self, request: Request, page: Page) -> Response:
        form = await self.console.checked_form(request, page)
        if form is None:
            return self.console.refused(page)
        body: dict[str, Any] = {
            "name": form.get("name", "").strip(),
            "role": form.get("role") or "viewer",
        }
        if form.get("workspace"):
            body["workspace_id"] = form["workspace"].strip()
        try:
            made = await self.call(
                request, page, "POST", "/v1/api-keys/workspace/service", body=body
            )
        except AdminError as exc:
            return await self.keys(request, page, None, exc.message)
        # Shown once, in this answer only: never stored by the console, never in a URL.
        return await self.keys(request, page, str(made.get("key") or ""), None)

    async def revoke_key(self, request: Request, page: Page) -> Response:
        form = await self.console.checked_form(request, page)
        if form is None:
            return self.console.refused(page)
        key_id = request.path_params["key_id"]
        try:
            await self.call(request, page, "DELETE", f"/v1/api-keys/{key_id}")
        except AdminError as exc:
            return await self.keys(request, page, None, exc.message)
        return self.console.redirect(page.url("/keys"))

    async def workspaces(self, request: Request, page: Page) -> Response:
        try:
            items = await self.listing(request, page, "/v1/admin/workspaces")
        except AdminError as exc:
            return self.console.respond(page.workspaces([], exc.message), _shown(exc.status))
        return self.console.respond(page.workspaces(items, None))


def _shown(status: int) -> int:
    """A control plane that is missing is a page that says so (200), not an error page."""
    return 200 if status == 404 else status


def _parse(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise AdminError(400, f"the config is not valid JSON: {exc}") from exc


def _message(data: Any, status: int) -> str:
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        message = data["error"].get("message")
        if isinstance(message, str) and message:
            return message
    return f"the admin API answered {status}"

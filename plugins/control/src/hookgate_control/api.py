"""Portkey's admin API on ``hookgate serve``, as the ``portkey-ai`` SDK calls it.

========================================  ============================================
route                                     SDK method
========================================  ============================================
``POST   /v1/configs``                    ``configs.create``
``GET    /v1/configs``                    ``configs.list``
``GET    /v1/configs/{slug}``             ``configs.retrieve``
``PUT    /v1/configs/{slug}``             ``configs.update``
``DELETE /v1/configs/{slug}``             ``configs.delete``
``GET    /v1/configs/{slug}/versions``    (Portkey's versions list)
``GET    /v1/configs/{slug}/versions/{v}``  hookgate: one version
``POST   /v1/configs/{slug}/rollback``    hookgate: a new version equal to an old one
``GET    /v1/configs/{slug}/diff``        hookgate: ``?from=&to=`` (ids or numbers)
``GET    /v1/configs/export``             hookgate: every config, as a file
``POST   /v1/configs/import``             hookgate: create or update from such a file
``POST   /v1/virtual-keys``               ``virtual_keys.create``
``GET    /v1/virtual-keys``               ``virtual_keys.list``
``GET|PUT|DELETE /v1/virtual-keys/{slug}``  ``virtual_keys.retrieve|update|delete``
``POST   /v1/api-keys/{type}/{sub_type}`` ``api_keys.create``
``GET    /v1/api-keys``                   ``api_keys.list``
``GET|PUT|DELETE /v1/api-keys/{id}``      ``api_keys.retrieve|update|delete``
``POST|GET /v1/admin/workspaces``         ``admin.workspaces.create|list``
``GET|PUT|DELETE /v1/admin/workspaces/{id}``  ``admin.workspaces.retrieve|update|delete``
``GET    /v1/audit-logs``                 hookgate: the audit log, newest first
========================================  ============================================

Every call needs a gateway key (``x-portkey-api-key``); while none exists at all, every call
is refused, so an open store cannot be used to mint the first admin key: that is done with
``hookgate keys create`` (or ``HOOKGATE_ADMIN_KEY``). The store is read and written directly,
in a worker thread; after a change this worker's snapshot is refreshed at once, the others'
within ``poll_interval``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from hookgate.auth import Principal
from hookgate.errors import (
    AuthenticationError,
    BadRequestError,
    GatewayError,
    PermissionDeniedError,
)
from hookgate.server.app import error_response, read_json
from hookgate.server.headers import authenticate
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .store import StoreUnavailable

if TYPE_CHECKING:
    from hookgate import Gateway

    from . import Plugin

__all__ = ["routes"]

log = structlog.get_logger("hookgate.control")

NO_KEYS = (
    "the admin API is closed until a gateway key exists: create the first admin key with "
    "`hookgate keys create --name admin --role admin` (or set HOOKGATE_ADMIN_KEY before start)"
)

Handler = Callable[[Request, Principal], Awaitable[Any]]


def _json(value: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(value), status_code=status, media_type="application/json")


def _listing(items: list[dict[str, Any]], request: Request) -> dict[str, Any]:
    total = len(items)
    query = request.query_params
    size = query.get("page_size") or query.get("pageSize")
    page = query.get("current_page") or query.get("currentPage") or "0"
    if size and size.isdigit() and int(size) > 0 and page.isdigit():
        start = int(page) * int(size)
        items = items[start : start + int(size)]
    return {"object": "list", "total": total, "data": items}


def routes(plugin: Plugin, gateway: Gateway) -> list[Route]:
    server = gateway.settings.server
    limit = server.max_body_bytes

    def endpoint(
        handler: Handler, *, writes: bool = False
    ) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                try:
                    principal, _ = authenticate(request.headers, server, gateway.hooks)
                except AuthenticationError:
                    principal = None
                if principal is None:
                    # The admin API answers from the store, not this worker's snapshot: a
                    # key made a moment ago (the CLI, another worker) is known at once.
                    with contextlib.suppress(StoreUnavailable):
                        await plugin.refresh()
                    principal, _ = authenticate(request.headers, server, gateway.hooks)
                if principal is None:
                    raise PermissionDeniedError(NO_KEYS, code="no_gateway_keys")
                if writes:
                    # Validation reads this worker's snapshot (virtual keys a config names).
                    with contextlib.suppress(StoreUnavailable):
                        await plugin.refresh()
                result = await handler(request, principal)
                if writes:
                    with contextlib.suppress(StoreUnavailable):
                        await plugin.refresh()
            except GatewayError as exc:
                return error_response(exc)
            if isinstance(result, Response):
                return result
            return _json(result)

        return run

    async def body(request: Request) -> dict[str, Any]:
        found = await read_json(request, limit)
        if not isinstance(found, dict):
            raise BadRequestError("the request body must be a JSON object", code="invalid_json")
        return found

    def call(fn: Callable[..., Any], *args: Any) -> Awaitable[Any]:
        return asyncio.to_thread(fn, *args)

    def param(request: Request, name: str) -> str:
        return str(request.path_params[name])

    def workspace(request: Request) -> str | None:
        return request.query_params.get("workspace_id") or None

    # ---- configs ------------------------------------------------------------------------

    async def create_config(request: Request, who: Principal) -> Any:
        found = await call(plugin.plane.create_config, who, await body(request))
        return {
            "id": found["id"],
            "slug": found["slug"],
            "version_id": found["version_id"],
            "version": found["version"],
            "object": "config",
        }

    async def list_configs(request: Request, who: Principal) -> Any:
        return _listing(await call(plugin.plane.list_configs, who, workspace(request)), request)

    async def get_config(request: Request, who: Principal) -> Any:
        return await call(plugin.plane.get_config, who, param(request, "slug"))

    async def update_config(request: Request, who: Principal) -> Any:
        found = await call(
            plugin.plane.update_config, who, param(request, "slug"), await body(request)
        )
        return {
            "version_id": found["version_id"],
            "version": found["version"],
            "slug": found["slug"],
            "object": "config",
        }

    async def delete_config(request: Request, who: Principal) -> Any:
        slug = param(request, "slug")
        await call(plugin.plane.delete_config, who, slug)
        return {"object": "config", "slug": slug, "deleted": True}

    async def versions(request: Request, who: Principal) -> Any:
        return _listing(await call(plugin.plane.versions, who, param(request, "slug")), request)

    async def version(request: Request, who: Principal) -> Any:
        return await call(
            plugin.plane.get_version, who, param(request, "slug"), param(request, "version")
        )

    async def rollback(request: Request, who: Principal) -> Any:
        found = await call(plugin.plane.rollback, who, param(request, "slug"), await body(request))
        return {
            "version_id": found["version_id"],
            "version": found["version"],
            "rolled_back_to": found["rolled_back_to"],
            "slug": found["slug"],
            "object": "config",
        }

    async def diff(request: Request, who: Principal) -> Any:
        query = request.query_params
        return await call(
            plugin.plane.diff, who, param(request, "slug"), query.get("from"), query.get("to")
        )

    async def export(request: Request, who: Principal) -> Any:
        return await call(plugin.plane.export, who, workspace(request))

    async def import_(request: Request, who: Principal) -> Any:
        return await call(plugin.plane.import_, who, await body(request))

    # ---- virtual keys -------------------------------------------------------------------

    async def create_vkey(request: Request, who: Principal) -> Any:
        found = await call(plugin.plane.create_virtual_key, who, await body(request))
        return {"id": found["id"], "slug": found["slug"], "object": "virtual-key"}

    async def list_vkeys(request: Request, who: Principal) -> Any:
        return _listing(
            await call(plugin.plane.list_virtual_keys, who, workspace(request)), request
        )

    async def get_vkey(request: Request, who: Principal) -> Any:
        return await call(plugin.plane.get_virtual_key, who, param(request, "slug"))

    async def update_vkey(request: Request, who: Principal) -> Any:
        found = await call(
            plugin.plane.update_virtual_key, who, param(request, "slug"), await body(request)
        )
        return {"id": found["id"], "slug": found["slug"], "object": "virtual-key"}

    async def delete_vkey(request: Request, who: Principal) -> Any:
        slug = param(request, "slug")
        await call(plugin.plane.delete_virtual_key, who, slug)
        return {"object": "virtual-key", "slug": slug, "deleted": True}

    # ---- api keys -----------------------------------------------------------------------

    async def create_key(request: Request, who: Principal) -> Any:
        fields = await body(request)
        fields["type"] = param(request, "type")
        fields["sub-type"] = param(request, "sub_type")
        view, token = await call(plugin.plane.create_key, who, fields)
        return {**view, "key": token, "object": "api-key"}

    async def list_keys(request: Request, who: Principal) -> Any:
        return _listing(await call(plugin.plane.list_keys, who, workspace(request)), request)

    async def get_key(request: Request, who: Principal) -> Any:
        return await call(plugin.plane.get_key, who, param(request, "id"))

    async def update_key(request: Request, who: Principal) -> Any:
        return await call(plugin.plane.update_key, who, param(request, "id"), await body(request))

    async def revoke_key(request: Request, who: Principal) -> Any:
        return await call(plugin.plane.revoke_key, who, param(request, "id"))

    # ---- workspaces and audit -----------------------------------------------------------

    async def create_workspace(request: Request, who: Principal) -> Any:
        return await call(plugin.plane.create_workspace, who, await body(request))

    async def list_workspaces(request: Request, who: Principal) -> Any:
        items = await call(plugin.plane.list_workspaces, who)
        name = request.query_params.get("name")
        if name:
            items = [w for w in items if name.lower() in w["name"].lower()]
        return _listing(items, request)

    async def get_workspace(request: Request, who: Principal) -> Any:
        return await call(plugin.plane.get_workspace, who, param(request, "workspace"))

    async def update_workspace(request: Request, who: Principal) -> Any:
        return await call(
            plugin.plane.update_workspace, who, param(request, "workspace"), await body(request)
        )

    async def delete_workspace(request: Request, who: Principal) -> Any:
        ref = param(request, "workspace")
        await call(plugin.plane.delete_workspace, who, ref)
        return {"object": "workspace", "id": ref, "deleted": True}

    async def audit(request: Request, who: Principal) -> Any:
        raw = request.query_params.get("limit") or "100"
        count = int(raw) if raw.isdigit() and 0 < int(raw) <= 1000 else 100
        return _listing(await call(plugin.plane.audit_log, who, workspace(request), count), request)

    read = endpoint
    write = lambda handler: endpoint(handler, writes=True)  # noqa: E731
    return [
        Route("/v1/configs", write(create_config), methods=["POST"]),
        Route("/v1/configs", read(list_configs), methods=["GET"]),
        Route("/v1/configs/export", read(export), methods=["GET"]),
        Route("/v1/configs/import", write(import_), methods=["POST"]),
        Route("/v1/configs/{slug}", read(get_config), methods=["GET"]),
        Route("/v1/configs/{slug}", write(update_config), methods=["PUT"]),
        Route("/v1/configs/{slug}", write(delete_config), methods=["DELETE"]),
        Route("/v1/configs/{slug}/versions", read(versions), methods=["GET"]),
        Route("/v1/configs/{slug}/versions/{version}", read(version), methods=["GET"]),
        Route("/v1/configs/{slug}/rollback", write(rollback), methods=["POST"]),
        Route("/v1/configs/{slug}/diff", read(diff), methods=["GET"]),
        Route("/v1/virtual-keys", write(create_vkey), methods=["POST"]),
        Route("/v1/virtual-keys", read(list_vkeys), methods=["GET"]),
        Route("/v1/virtual-keys/{slug}", read(get_vkey), methods=["GET"]),
        Route("/v1/virtual-keys/{slug}", write(update_vkey), methods=["PUT"]),
        Route("/v1/virtual-keys/{slug}", write(delete_vkey), methods=["DELETE"]),
        Route("/v1/api-keys/{type}/{sub_type}", write(create_key), methods=["POST"]),
        Route("/v1/api-keys", read(list_keys), methods=["GET"]),
        Route("/v1/api-keys/{id}", read(get_key), methods=["GET"]),
        Route("/v1/api-keys/{id}", write(update_key), methods=["PUT"]),
        Route("/v1/api-keys/{id}", write(revoke_key), methods=["DELETE"]),
        Route("/v1/admin/workspaces", write(create_workspace), methods=["POST"]),
        Route("/v1/admin/workspaces", read(list_workspaces), methods=["GET"]),
        Route("/v1/admin/workspaces/{workspace}", read(get_workspace), methods=["GET"]),
        Route("/v1/admin/workspaces/{workspace}", write(update_workspace), methods=["PUT"]),
        Route("/v1/admin/workspaces/{workspace}", write(delete_workspace), methods=["DELETE"]),
        Route("/v1/audit-logs", read(audit), methods=["GET"]),
    ]

"""Roles, and how Portkey's API-key scopes map onto them.

========  =====================================================================
role      may
========  =====================================================================
admin     everything, in every workspace: workspaces, gateway keys, audit log
member    call the gateway; read, create, change and delete its workspace's
          configs and virtual keys; read its workspace's audit log
viewer    read its workspace's configs and virtual keys; call the gateway only
          when its scopes include ``completions.write``
========  =====================================================================

A key created through Portkey's ``api_keys.create`` carries ``scopes`` rather than a role
(hookgate also accepts a ``role`` field). The role is the least one that covers the scopes:
an ``organisation`` key, or one with a scope on workspaces or API keys, is an admin; one that
may create, update or delete configs or virtual keys is a member; anything else is a viewer.
"""

from __future__ import annotations

from collections.abc import Iterable

from hookgate.auth import ROLES, Principal, Role

__all__ = ["DEFAULT_SCOPES", "ROLES", "may_call", "role_for_scopes"]

CALL_SCOPE = "completions.write"

_READ = [
    "configs.read",
    "configs.list",
    "virtual_keys.read",
    "virtual_keys.list",
    "logs.view",
    "logs.list",
]
_WRITE = [
    "configs.create",
    "configs.update",
    "configs.delete",
    "virtual_keys.create",
    "virtual_keys.update",
    "virtual_keys.delete",
]
_ADMIN = [
    "workspaces.create",
    "workspaces.read",
    "workspaces.update",
    "workspaces.delete",
    "workspaces.list",
    "organisation_service_api_keys.create",
    "organisation_service_api_keys.read",
    "organisation_service_api_keys.update",
    "organisation_service_api_keys.delete",
    "organisation_service_api_keys.list",
    "workspace_service_api_keys.create",
    "workspace_service_api_keys.read",
    "workspace_service_api_keys.update",
    "workspace_service_api_keys.delete",
    "workspace_service_api_keys.list",
    "audit_logs.list",
]

DEFAULT_SCOPES: dict[Role, list[str]] = {
    "admin": [CALL_SCOPE, *_READ, *_WRITE, *_ADMIN],
    "member": [CALL_SCOPE, *_READ, *_WRITE],
    "viewer": list(_READ),
}


def role_for_scopes(scopes: Iterable[str], key_type: str = "workspace") -> Role:
    """The least role that covers ``scopes`` (see the module docstring)."""
    if key_type == "organisation":
        return "admin"
    role: Role = "viewer"
    for scope in scopes:
        resource, _, action = scope.partition(".")
        if (
            resource in ("workspaces", "audit_logs")
            or resource.endswith("api_keys")
            or resource.startswith("organisation")
        ):
            return "admin"
        if resource in ("configs", "virtual_keys") and action in ("create", "update", "delete"):
            role = "member"
    return role


def may_call(principal: Principal) -> bool:
    """Whether the key may make data-plane calls (chat, completions, embeddings, ...)."""
    return principal.role != "viewer" or CALL_SCOPE in principal.scopes

"""The gateway-key gate: the one place that decides whether a request may reach a route.

Every request the server receives passes here before anything answers it: the fast path for
the hot routes, the core's Starlette routes and every route a plugin adds with
``register_routes``. :class:`Gate`

1. normalises the path (the HTTP server percent-decoded it once; repeated slashes and ``.`` /
   ``..`` segments are resolved and a trailing slash dropped) and the request is routed by that
   same path, so what is checked is what answers. Nothing answers with a redirect, and no
   answer is built from the ``Host`` header;
2. identifies the caller with :func:`~hookgate.server.headers.authenticate`: a key of
   ``[server] api_keys`` is the operator, any other key is offered to the plugins'
   ``authenticate`` hook (a key store: workspace, role); a deployment without keys lets
   everyone in anonymously (principal None);
3. admits an identified caller anywhere, and an unidentified one only to the open routes:
   ``GET /health``, ``GET /ready`` (whose handler then shows only the status), the paths the
   operator opened in ``[server] open_paths`` and routes a plugin marked with
   :func:`open_route` (a login page). Everything else is a 401 in OpenAI's shape, whether
   the route exists or not.

What the gate found rides on the ASGI scope: :func:`principal_of` and :func:`admitted`
read it in a route, so a plugin's route never authenticates on its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from ..auth import Principal
from ..errors import AuthenticationError
from ..settings import ServerSettings
from .headers import authenticate

if TYPE_CHECKING:
    from ..plugins import Hooks

__all__ = ["ADMITTED", "Gate", "admitted", "normalise_path", "open_route", "principal_of"]

PRINCIPAL = "hookgate.principal"
"""Scope key: the caller's principal (None: anonymous, or not identified on an open route)."""
GATEWAY_KEY = "hookgate.gateway_key"
"""Scope key: the gateway key the caller presented, so it is never taken for a provider's."""
ADMITTED = "hookgate.admitted"
"""Scope key: True when the caller passed the key check (or the deployment needs none)."""

ALWAYS_OPEN = frozenset({"/health", "/ready"})
_READ_METHODS = frozenset({"GET", "HEAD"})


def normalise_path(path: str) -> str:
    """``path`` with empty and ``.`` segments dropped, ``..`` resolved, no trailing slash."""
    if "//" not in path and "/." not in path and (len(path) < 2 or path[-1] != "/"):
        return path if path.startswith("/") else "/" + path
    parts: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if parts:
                parts.pop()
            continue
        parts.append(segment)
    return "/" + "/".join(parts)


def open_route(route: BaseRoute) -> BaseRoute:
    """Mark a plugin's route as answered without a gateway key (a console's login page).

    Return it from ``register_routes`` as usual; the gate admits requests that match it fully
    (path and method) without a key. Everything else a plugin serves needs the key.
    """
    route.hookgate_open = True  # type: ignore[attr-defined]
    return route


def principal_of(scope: Mapping[str, Any]) -> Principal | None:
    """Who the gate admitted (``request.scope`` of a route); None for an anonymous caller
    (a deployment without keys) or one not identified on an open route."""
    return scope.get(PRINCIPAL)


def admitted(scope: Mapping[str, Any]) -> bool:
    """Whether the caller passed the key check (always, on a deployment without keys)."""
    return bool(scope.get(ADMITTED))


class Gate:
    """The gateway-key check of one server app (see the module docstring)."""

    def __init__(
        self, settings: ServerSettings, hooks: Hooks, routes: Iterable[BaseRoute] = ()
    ) -> None:
        self._settings = settings
        self._hooks = hooks
        self._open_paths = frozenset(normalise_path(p) for p in settings.open_paths) | ALWAYS_OPEN
        self._open_routes = [r for r in routes if getattr(r, "hookgate_open", False)]

    def admit(self, scope: Scope, headers: Mapping[str, str] | None = None) -> None:
        """Check the caller of ``scope`` (its path normalised already) and leave what was
        found on the scope; raise :class:`AuthenticationError` unless it may go on."""
        if headers is None:
            headers = scope_headers(scope)
        try:
            principal, key = authenticate(headers, self._settings, self._hooks)
        except AuthenticationError:
            if not self._is_open(scope):
                raise
            scope[PRINCIPAL], scope[GATEWAY_KEY], scope[ADMITTED] = None, None, False
            return
        scope[PRINCIPAL], scope[GATEWAY_KEY], scope[ADMITTED] = principal, key, True

    def _is_open(self, scope: Scope) -> bool:
        if scope["type"] != "http":
            return False
        if scope["method"] in _READ_METHODS and scope["path"] in self._open_paths:
            return True
        return any(route.matches(scope)[0] is Match.FULL for route in self._open_routes)


def scope_headers(scope: Scope) -> dict[str, str]:
    """A scope's headers, lower-case names, the first value of a repeated one (as
    Starlette's ``headers.get``)."""
    found: dict[str, str] = {}
    for name, value in scope["headers"]:
        key = name.decode("latin-1").lower()
        if key not in found:
            found[key] = value.decode("latin-1")
    return found

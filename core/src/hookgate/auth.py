"""Who is calling: the :class:`Principal` a gateway key stands for.

The core authenticates a request once, at the server's gate: a key from ``[server] api_keys``
is the operator (an admin of every workspace); any other key is offered to the plugins'
``authenticate`` hook (the control plane answers with the key's workspace and role). The
principal then rides on :attr:`RequestContext.principal` so that other plugins (logging,
limits, the console) can read it without knowing where keys are stored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

__all__ = ["DEFAULT_WORKSPACE", "OPERATOR", "ROLES", "Principal", "Role"]

Role = Literal["admin", "member", "viewer"]
ROLES: tuple[Role, ...] = ("admin", "member", "viewer")
DEFAULT_WORKSPACE = "default"

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Principal:
    """A gateway key, as the gate resolved it. Never holds the key itself."""

    key_id: str
    """A stable id for the key (logs and audit records name it); not a secret."""
    name: str
    workspace: str = DEFAULT_WORKSPACE
    """The workspace's slug: what the key may see and use."""
    role: Role = "viewer"
    """``admin``: everything in every workspace; ``member``: use and edit its workspace;
    ``viewer``: read only."""
    scopes: frozenset[str] = frozenset()
    """Portkey's scopes as the key was created with (``completions.write``, ...)."""
    rate_limits: Sequence[Mapping[str, Any]] = ()
    """Portkey's ``rate_limits`` of the key, for a plugin that enforces them."""
    usage_limits: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    """Portkey's ``usage_limits`` of the key, for a plugin that enforces them."""
    expires_at: float | None = None
    """Unix time after which the key is refused; None: never."""
    source: str = ""
    """Who vouched for the key: ``plugins.toml`` or the plugin's name."""

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def may_use_workspace(self, workspace: str) -> bool:
        """Whether this key sees ``workspace``'s configs, virtual keys and logs."""
        return self.role == "admin" or workspace == self.workspace


OPERATOR = Principal(
    key_id="server.api_keys",
    name="[server] api_keys",
    role="admin",
    source="plugins.toml",
)
"""A key from ``[server] api_keys``: whoever writes plugins.toml runs the deployment."""

"""Processes that ``hookgate serve`` runs beside its workers, on a plugin's behalf.

A plugin whose workers must share something that cannot live in each of them (one store
file, one copy of a model) returns :class:`Service` descriptions from the
``server_services`` hook. The server's parent process starts each one before it forks the
workers, restarts one that exits, and stops them all when it stops. The core knows nothing
of what a service does: it runs a command.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["Service"]


@dataclass(frozen=True, slots=True)
class Service:
    """A command the server's parent process keeps running for its workers."""

    name: str
    """Short name for logs (``semantic-cache``)."""
    argv: Sequence[str]
    """The command; run without a shell, with stdin closed and stdout/stderr inherited."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Variables added to the server's environment for this command (settings, secrets:
    never on the command line, where every local user can read them)."""
    cwd: str | None = None
    stop_timeout: float = 10.0
    """Seconds between SIGTERM and SIGKILL when the server stops."""

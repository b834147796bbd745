"""hookgate-console: a web console for ``hookgate serve`` at ``/console``.

- **Logs** (``/console/logs``): every request, newest first, keyset-paginated, filtered by time,
  status, provider, model, cache status, config and version, workspace, metadata and trace id;
  ``/console/requests/{trace_id}`` shows one request's attempts, time to first token, cache
  similarity and refusal, config version, metadata and (with body logging) redacted bodies.
- **Monitoring** (``/console/monitoring``): latency histogram and p50/p90/p99, cache hit rate
  (exact and semantic), errors by type and status, requests, tokens and cost by model and by a
  metadata key, money saved by the caches; charts drawn by uPlot, vendored in ``static/``:
  the pages load nothing from anywhere but the gateway.
- **Configs, keys, workspaces**: the control plane's, through its admin API (``/v1/configs``,
  ``/v1/virtual-keys``, ``/v1/api-keys``, ``/v1/admin/workspaces``) called in-process with the
  user's own gateway key, so the control plane's roles and workspaces apply as they do to any
  client.

It reads records only through the core's log query hooks (``query_logs``, ``aggregate_logs``;
:mod:`hookgate.logquery`): whichever store answers them (SQLite, PostgreSQL) serves the console,
and the queries run on the store's threads, never on the request path. Access is described in
:mod:`hookgate_console.access`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from hookgate import hookimpl
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .access import Sessions

if TYPE_CHECKING:
    from hookgate import Gateway

__all__ = ["ConsoleSettings", "Plugin", "Settings"]


class ConsoleSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = "/console"
    """Where the console is served."""
    session_secret: str | None = Field(default=None, repr=False)
    """Seals session cookies. Unset: a random secret per server start (sessions end when the
    server restarts). Set the same value on every instance behind one load balancer."""
    session_hours: Annotated[float, Field(gt=0, le=24 * 30)] = 12.0
    page_size: Annotated[int, Field(ge=1, le=500)] = 50
    """Requests per page of the logs."""

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        value = "/" + value.strip("/")
        if value == "/" or "//" in value or ".." in value:
            raise ValueError("path must be a plain prefix such as /console")
        return value


Settings = ConsoleSettings


class Plugin:
    """The ``console`` plugin."""

    Settings = ConsoleSettings

    def __init__(self, settings: ConsoleSettings | None = None) -> None:
        self.settings = settings or ConsoleSettings()
        self.sessions = Sessions(self.settings.session_secret, self.settings.session_hours)
        self._console: Any = None

    @hookimpl
    def register_routes(self, gateway: Gateway) -> list[Any]:
        from .routes import Console

        self._console = Console(self.settings, self.sessions, gateway)
        return self._console.routes()

    @hookimpl
    async def shutdown(self, gateway: Gateway) -> None:
        if self._console is not None:
            await self._console.aclose()

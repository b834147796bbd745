"""``hookgate serve``: the gateway as an OpenAI-compatible HTTP server (needs ``hookgate[server]``)."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import structlog

from ..settings import Settings, find_settings_file, load_settings

__all__ = ["serve"]

log = structlog.get_logger("hookgate.server")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    config_path: str | None = None,
    *,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    log_level: str = "warning",
) -> None:
    """Run the server until SIGTERM/SIGINT; in-flight requests get time to finish."""
    import uvicorn

    found = find_settings_file(config_path)
    settings: Settings = load_settings(found)
    server = settings.server
    host = host or server.host
    port = server.port if port is None else port
    workers = server.workers if workers is None else workers
    if workers <= 0:
        workers = os.cpu_count() or 1
    if not _is_loopback(host) and not server.api_keys:
        log.warning(
            "server_open_without_keys",
            host=host,
            advice="anyone who can reach this address can spend your provider keys; "
            "set [server] api_keys in plugins.toml",
        )
    if found is not None:
        os.environ["HOOKGATE_CONFIG"] = str(Path(found).resolve())
    uvicorn.run(
        "hookgate.server.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=False,
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=int(server.graceful_shutdown_s) or None,
    )

"""``hookgate serve``: the gateway as an OpenAI-compatible HTTP server (needs ``hookgate[server]``)."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Any

import structlog

from ..errors import SettingsError
from ..settings import Settings, find_settings_file, load_settings

__all__ = ["SERVER_DIR_ENV", "serve"]

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
    """Run the server until SIGTERM/SIGINT; in-flight requests get time to finish.

    With more than one worker the app is built once, in this process, before the workers
    are forked from it: they start at once, share the imported code's memory, and listen
    on one socket. This process forwards SIGTERM/SIGINT to them and returns when all have
    finished their in-flight requests (at most ``graceful_shutdown_s``).

    Before the workers start, this process starts the services plugins ask for
    (``server_services`` hook: a store every worker shares), keeps them running, and stops
    them after the workers have stopped.
    """
    _on_stop(_exit_now)  # a stop request during start-up is a clean exit too
    try:
        import starlette  # noqa: F401
        import uvicorn
    except ImportError as exc:
        raise SettingsError(
            "`hookgate serve` needs the server extra: pip install 'hookgate[server]' "
            f"(missing: {exc.name})"
        ) from None

    found = find_settings_file(config_path)
    settings: Settings = load_settings(found)
    server = settings.server
    host = host or server.host
    port = server.port if port is None else port
    workers = server.workers if workers is None else workers
    if workers <= 0:
        workers = default_workers()
    if (host, port) != (server.host, server.port):
        # The address actually served is what the gateway refuses as a custom host, and
        # what decides whether custom hosts are open at all (a non-loopback bind).
        server = server.model_copy(update={"host": host, "port": port})
        settings = settings.model_copy(update={"server": server})
    if not _is_loopback(host) and not server.api_keys:
        log.warning(
            "server_open_without_keys",
            host=host,
            advice="anyone who can reach this address can spend your provider keys; "
            "set [server] api_keys in plugins.toml",
        )
        print(
            f"WARNING: hookgate is listening on {host}:{port} without gateway keys: anyone "
            "who can reach it can spend your provider keys. Set [server] api_keys in "
            "plugins.toml.",
            file=sys.stderr,
            flush=True,
        )
    if found is not None:
        os.environ["HOOKGATE_CONFIG"] = str(Path(found).resolve())
    if workers > 1:
        _shared_dir()
    from ..gateway import Gateway
    from .app import create_app
    from .protocol import protocol_class
    from .services import ServiceSupervisor

    # The app, its gateway and every plugin are built once, here, before any fork.
    gateway = Gateway(settings)
    app = create_app(gateway)
    services = ServiceSupervisor(gateway.hooks.server_services(gateway))
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        loop="uvloop",
        http=protocol_class(server),
        timeout_keep_alive=server.keep_alive_timeout_s,  # type: ignore[arg-type]  # uvicorn waits a float of seconds though its stub says int
        timeout_graceful_shutdown=server.graceful_shutdown_s or None,  # type: ignore[arg-type]  # uvicorn waits a float of seconds though its stub says int
    )
    config.load()
    shown = f"[{host}]" if ":" in host else host
    print(
        f"hookgate serving http://{shown}:{port} with {workers} worker"
        f"{'s' if workers != 1 else ''}; plugins: "
        f"{', '.join(p.name for p in gateway.plugins) or 'none'}"
        f" ({gateway.settings.source})",
        file=sys.stderr,
        flush=True,
    )
    services.start()
    try:
        if workers == 1:
            code = _run_worker(config, None)
        else:
            code = _supervise(config, config.bind_socket(), workers)
    finally:
        services.stop()
    sys.exit(code)


SERVER_DIR_ENV = "HOOKGATE_SERVER_DIR"


def _shared_dir() -> str:
    """A private folder every process of this server shares (``$HOOKGATE_SERVER_DIR``), for
    plugins that add up their workers' state in files (the logging plugin's metrics). Made
    before the plugins are built, so they see it; removed when the server exits (the workers
    leave with ``os._exit`` and never run this)."""
    import atexit
    import shutil
    import tempfile

    path = tempfile.mkdtemp(prefix="hookgate-serve-")
    os.environ[SERVER_DIR_ENV] = path
    atexit.register(shutil.rmtree, path, True)
    return path


def _on_stop(handler: Any) -> None:
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, handler)


def _exit_now(signum: int, frame: object) -> None:
    sys.exit(0)


def default_workers() -> int:
    """One worker per core this process may run on."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _run_worker(config: Any, sock: socket.socket | None) -> int:
    import uvicorn

    # uvicorn re-raises the signal that stopped it after its graceful shutdown; a no-op
    # handler turns that into a normal return, so a SIGTERM'd server exits 0.
    _on_stop(lambda *_: None)
    worker = uvicorn.Server(config)
    worker.run(sockets=None if sock is None else [sock])
    return 0 if worker.started else 3


def _stop_with(supervisor: int) -> None:
    """Make this worker stop (SIGTERM: it drains, then exits) when its supervisor dies.

    A supervisor killed outright (SIGKILL, the OOM killer) cannot stop its workers; without
    this they would keep the port, and the restarted server could not bind it. Linux only
    (``prctl(PR_SET_PDEATHSIG)``); elsewhere orphaned workers serve on until stopped.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != supervisor:  # it died before the line above
        os._exit(0)


def _supervise(config: Any, sock: socket.socket, workers: int) -> int:
    """Fork ``workers`` processes serving ``sock``; replace one that dies; stop on a signal.

    Children that are not workers (the plugins' services) are left to their supervisor.
    """
    stopping = False
    children: dict[int, int] = {}

    supervisor = os.getpid()

    def spawn() -> None:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                for sig in (signal.SIGTERM, signal.SIGINT):  # not the supervisor's handler
                    signal.signal(sig, signal.SIG_DFL)
                _stop_with(supervisor)
                code = _run_worker(config, sock)
            except BaseException:
                log.exception("worker_crashed")
            finally:
                os._exit(code)
        children[pid] = pid

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        sock.close()  # the workers close theirs: nobody accepts new connections any more
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    _on_stop(stop)
    for _ in range(workers):
        spawn()
    failed = False
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        if pid not in children:  # a service (its supervisor restarts it) or a stray child
            continue
        children.pop(pid)
        code = os.waitstatus_to_exitcode(status)
        if stopping:
            failed = failed or code not in (0, -signal.SIGTERM)
        elif code == 3:  # could not start (port, plugin start-up): give up, say so
            log.error("worker_failed_to_start", pid=pid)
            stop(signal.SIGTERM, None)
            failed = True
        else:
            log.error("worker_died", pid=pid, exit_code=code)
            spawn()
    return 1 if failed else 0

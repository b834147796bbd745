"""Keeping the plugins' services (``server_services`` hook) running beside the workers."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from collections.abc import Sequence

import structlog

from ..services import Service

__all__ = ["ServiceSupervisor"]

log = structlog.get_logger("hookgate.server")

_FIRST_DELAY = 0.2
_MAX_DELAY = 5.0
_HEALTHY_AFTER = 10.0
"""A service that ran this long before it exited is restarted without back-off."""


class _Running:
    __slots__ = ("delay", "process", "restart_at", "service", "started_at")

    def __init__(self, service: Service) -> None:
        self.service = service
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.delay = _FIRST_DELAY
        self.restart_at: float | None = None


class ServiceSupervisor:
    """Starts every service, restarts one that exits (with back-off), stops them all.

    A thread polls the processes (``Popen.poll``, which only reaps its own pid), so the
    workers' supervisor may keep waiting for its workers as before; a service it reaps
    by accident reads as exited here too.
    """

    def __init__(self, services: Sequence[Service], poll_interval: float = 0.1) -> None:
        self._running = [_Running(service) for service in services]
        self._poll_interval = poll_interval
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def __bool__(self) -> bool:
        return bool(self._running)

    def start(self) -> None:
        if not self._running:
            return
        for running in self._running:
            self._launch(running)
        self._thread = threading.Thread(target=self._watch, name="hookgate-services", daemon=True)
        self._thread.start()

    def _launch(self, running: _Running) -> None:
        service = running.service
        try:
            process = subprocess.Popen(
                list(service.argv),
                env={**os.environ, **service.env},
                cwd=service.cwd,
                stdin=subprocess.DEVNULL,
                close_fds=True,
                # Not in the terminal's process group: a Ctrl-C reaches the server, which
                # stops the workers first and the services after them.
                start_new_session=True,
            )
        except OSError as exc:
            log.error("service_failed_to_start", service=service.name, error=str(exc))
            running.process = None
            running.restart_at = time.monotonic() + running.delay
            running.delay = min(running.delay * 2, _MAX_DELAY)
            return
        running.process = process
        running.started_at = time.monotonic()
        running.restart_at = None
        log.info("service_started", service=service.name, pid=process.pid)

    def _watch(self) -> None:
        while not self._stopping.wait(self._poll_interval):
            with self._lock:
                if self._stopping.is_set():
                    return
                now = time.monotonic()
                for running in self._running:
                    if running.restart_at is not None:
                        if now >= running.restart_at:
                            self._launch(running)
                        continue
                    process = running.process
                    if process is None or process.poll() is None:
                        continue
                    if now - running.started_at >= _HEALTHY_AFTER:
                        running.delay = _FIRST_DELAY
                    log.error(
                        "service_died",
                        service=running.service.name,
                        pid=process.pid,
                        exit_code=process.returncode,
                        restart_in=running.delay,
                    )
                    running.restart_at = now + running.delay
                    running.delay = min(running.delay * 2, _MAX_DELAY)

    def stop(self) -> None:
        """SIGTERM every service, SIGKILL those still running after their ``stop_timeout``."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)
        with self._lock:
            alive = [r for r in self._running if r.process is not None and r.process.poll() is None]
            for running in alive:
                assert running.process is not None
                with contextlib.suppress(ProcessLookupError):
                    running.process.terminate()
            for running in alive:
                assert running.process is not None
                try:
                    running.process.wait(running.service.stop_timeout)
                except subprocess.TimeoutExpired:
                    log.warning("service_killed", service=running.service.name)
                    running.process.kill()
                    running.process.wait()

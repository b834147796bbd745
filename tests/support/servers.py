"""Real servers for tests, on free loopback ports.

The loopback helpers every plugin author may use live in :mod:`hookgate.testing.servers`
and are re-exported here; what only this repository's suite needs (redis-server, ...) is
defined here.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from hookgate.testing.servers import (
    FakeServer,
    ServerThread,
    UvicornServer,
    free_port,
    serving,
)

__all__ = [
    "FakeServer",
    "PostgresServer",
    "RedisServer",
    "ServerThread",
    "UvicornServer",
    "free_port",
    "serving",
]


class RedisServer:
    """A real redis-server on a free loopback port, keeping nothing on disk."""

    def __init__(self, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.port = port or free_port()
        self._dir = tempfile.mkdtemp(prefix="hookgate-redis-")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self._dir,
                "--protected-mode",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2) as s,
            ):
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("redis-server did not start")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self._dir, ignore_errors=True)


def _postgres_bin(name: str) -> str:
    """``initdb``/``pg_ctl``: on PATH, else where Debian's postgresql package puts them."""
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True):
        return candidate
    raise RuntimeError(f"{name} is not installed (bash tests/install-deps.sh installs postgresql)")


def _unprivileged_user() -> str | None:
    """The user the server runs as when the tests run as root (initdb refuses root):
    Debian's ``postgres``, else a system user created for the purpose."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "hookgate-pg"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "hookgate-pg"],
        check=True,
        capture_output=True,
    )
    return "hookgate-pg"


class PostgresServer:
    """A real PostgreSQL on a free loopback port, its cluster in a temporary folder.

    Set ``HOOKGATE_TEST_POSTGRES_URL`` (a server where the URL's user may ``CREATE DATABASE``)
    to use one you run instead; then :meth:`stop`, :meth:`start` and :meth:`stall` are not
    available. :meth:`database` hands each test a fresh, empty database.
    """

    def __init__(self) -> None:
        self.external = os.environ.get("HOOKGATE_TEST_POSTGRES_URL")
        self._made = 0
        if self.external:
            return
        self._initdb = _postgres_bin("initdb")
        self._pg_ctl = _postgres_bin("pg_ctl")
        self.user = _unprivileged_user()
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="hookgate-pg-")
        self.data = os.path.join(self.dir, "data")
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        self._as_user(
            [
                self._initdb,
                "-D",
                self.data,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )
        self.start()

    def _as_user(self, argv: list[str]) -> None:
        if self.user is not None:
            argv = ["runuser", "-u", self.user, "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, cwd=self.dir, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {done.stderr.strip() or done.stdout.strip()}")

    @property
    def url(self) -> str:
        """The server's ``postgres`` database (an admin connection)."""
        if self.external:
            return self.external
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        """Start (or restart, on the same port and data) the server and wait until it answers."""
        options = (
            f"-p {self.port} -h 127.0.0.1 -k {self.dir} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._as_user(
            [
                self._pg_ctl,
                "start",
                "-D",
                self.data,
                "-w",
                "-t",
                "30",
                "-l",
                os.path.join(self.dir, "server.log"),
                "-o",
                options,
            ]
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: roll back and disconnect clients; ``immediate``: abort)."""
        if not self.external and os.path.exists(os.path.join(self.data, "postmaster.pid")):
            self._as_user([self._pg_ctl, "stop", "-D", self.data, "-m", mode, "-w", "-t", "30"])

    def pids(self) -> list[int]:
        """The postmaster and its children (every backend and helper process)."""
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            main = int(f.readline())
        children = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(main)], capture_output=True, text=True, check=False
        ).stdout.split()
        return [main, *(int(pid) for pid in children)]

    @contextlib.contextmanager
    def stall(self) -> Iterator[None]:
        """Freeze every server process (SIGSTOP) inside the block: a database that accepts TCP
        connections and answers nothing, as an overloaded or wedged server does."""
        pids = self.pids()
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)

    def database(self) -> str:
        """Create an empty database and return its URL."""
        import psycopg

        self._made += 1
        name = f"hookgate_test_{os.getpid()}_{self._made}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        base, _, _ = self.url.rpartition("/")
        return f"{base}/{name}"

    def close(self) -> None:
        if self.external:
            return
        with contextlib.suppress(RuntimeError):
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_http(url: str, process: subprocess.Popen[Any] | None = None, timeout: float = 60) -> None:
    """Until ``url`` answers 200 (or the process exits, or ``timeout`` passes)."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer 200 within {timeout} s")
        time.sleep(0.1)


class ChromaServer:
    """A real Chroma server (``chroma run``) on a free loopback port, its data in a temp folder;
    :meth:`stop` and :meth:`start` keep the data and the port."""

    def __init__(self) -> None:
        import sys
        from pathlib import Path

        cli = Path(sys.executable).parent / "chroma"
        self._cli = str(cli) if cli.exists() else (shutil.which("chroma") or "chroma")
        self._path = str(Path(sys.executable).parent)
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="hookgate-chroma-")
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self._cli, "run", "--path", self.dir, "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={"ANONYMIZED_TELEMETRY": "False", "PATH": self._path},
        )
        wait_http(f"{self.url}/api/v2/heartbeat", self.process, timeout=120)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class NginxServer:
    """Debian's nginx on a free loopback port, serving an http-level config file (such as
    ``deploy/nginx/hookgate.conf``) with its ``listen`` and upstream ``server`` addresses
    replaced."""

    def __init__(self, conf: str, replace: dict[str, str]) -> None:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not os.path.exists(binary):
            raise RuntimeError("nginx is not installed (bash tests/install-deps.sh installs it)")
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="hookgate-nginx-")
        with open(conf) as f:
            site = f.read()
        for old, new in replace.items():
            if old not in site:
                raise ValueError(f"{old!r} is not in {conf}")
            site = site.replace(old, new)
        site = site.replace("listen 8080;", f"listen 127.0.0.1:{self.port};")
        main = f"""
daemon off;
worker_processes 1;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {self.dir}/body;
    proxy_temp_path {self.dir}/proxy;
    fastcgi_temp_path {self.dir}/fastcgi;
    uwsgi_temp_path {self.dir}/uwsgi;
    scgi_temp_path {self.dir}/scgi;
{site}
}}
"""
        with open(os.path.join(self.dir, "nginx.conf"), "w") as f:
            f.write(main)
        self.process = subprocess.Popen(
            [binary, "-c", os.path.join(self.dir, "nginx.conf"), "-p", self.dir],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while True:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2),
            ):
                return
            if self.process.poll() is not None or time.monotonic() > deadline:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                self.close()
                raise RuntimeError(f"nginx did not start: {err}")
            time.sleep(0.02)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr:
            self.process.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)

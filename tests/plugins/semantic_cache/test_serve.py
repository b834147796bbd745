"""The semantic cache behind a real ``hookgate serve``: one store for every worker.

The server's parent runs the semantic-cache service (the ``server_services`` hook); these
tests start the real command with the reference plugins.toml, find its processes in /proc,
and talk to it over real sockets. Which worker answers is decided by stopping (SIGSTOP) the
others: a stopped process cannot accept a connection.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[3]
HOOKGATE = str(Path(sys.executable).parent / "hookgate")
SEMANTIC = {
    "x-portkey-config": json.dumps(
        {"provider": "mock", "cache": {"mode": "semantic", "max_age": 600}}
    )
}
QUESTION = "How do I reset my password?"
PARAPHRASES = [
    "How can I reset my password?",
    "how do i reset my password",
    "How do I reset my password, please?",
]

def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(FileNotFoundError):  # it has exited
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""


def _wait(condition: Callable[[], bool], timeout: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass
class Served:
    process: subprocess.Popen[str]
    port: int
    folder: Path
    log: Path
    stopped: tuple[int, str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def workers(self) -> list[int]:
        return [c for c in _children(self.process.pid) if " serve " in _cmdline(c)]

    def service(self) -> int | None:
        found = [c for c in _children(self.process.pid) if "semantic_cache.service" in _cmdline(c)]
        return found[0] if found else None

    def ready(self) -> httpx.Response | None:
        try:
            return httpx.get(f"{self.url}/ready", timeout=2)
        except httpx.TransportError:
            return None

    def wait_ready(self, timeout: float = 90) -> None:
        def ready() -> bool:
            assert self.process.poll() is None, self.log.read_text()
            answer = self.ready()
            return answer is not None and answer.status_code == 200

        _wait(ready, timeout, "the server to be ready")

    def stop(self) -> tuple[int, str]:
        if self.stopped is not None:
            return self.stopped
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self.stopped = (code, self.log.read_text())
        return self.stopped


def _start(folder: Path, *args: str, log: str = "stderr.log") -> Served:
    port = free_port()
    with (folder / log).open("w") as stderr:
        process = subprocess.Popen(
            [
                HOOKGATE,
                "serve",
                "--config",
                str(folder / "plugins.toml"),
                "--port",
                str(port),
                *args,
            ],
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            text=True,
        )
    return Served(process, port, folder, folder / log)


def _deployment(folder: Path) -> Path:
    """A folder with the reference plugins.toml, as an operator would copy it."""
    shutil.copy(ROOT / "plugins.toml", folder / "plugins.toml")
    return folder


@pytest.fixture
def deployment(tmp_path: Path) -> Path:
    return _deployment(tmp_path)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One server with two workers for the tests of this module (its store takes seconds to
    start); each test asks its own questions."""
    server = _start(_deployment(tmp_path_factory.mktemp("served")), "--workers", "2")
    server.wait_ready()
    yield server
    for pid in server.workers():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    server.stop()


def ask(client: httpx.Client, url: str, question: str) -> httpx.Response:
    body = {"model": "m", "messages": [{"role": "user", "content": question}]}
    answer = client.post(f"{url}/v1/chat/completions", json=body, headers=SEMANTIC, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer


@contextlib.contextmanager
def only(served: Served, worker: int) -> Iterator[None]:
    """Only ``worker`` accepts connections meanwhile: the others are stopped."""
    others = [pid for pid in served.workers() if pid != worker]
    for pid in others:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in others:
            os.kill(pid, signal.SIGCONT)


def test_every_worker_answers_a_paraphrase_from_one_store(served: Served) -> None:
    workers = served.workers()
    assert len(workers) == 2 and served.service() is not None
    with httpx.Client() as client:
        first = ask(client, served.url, QUESTION)
    assert first.headers["x-portkey-cache-status"] == "SEMANTIC MISS"
    expected = first.json()["choices"][0]["message"]["content"]
    for worker in workers:
        with only(served, worker):
            with httpx.Client() as keep_alive:  # one connection, several requests
                for question in PARAPHRASES:
                    answer = ask(keep_alive, served.url, question)
                    assert answer.headers["x-portkey-cache-status"] == "SEMANTIC HIT", question
                    assert answer.json()["choices"][0]["message"]["content"] == expected
            for question in PARAPHRASES:  # a fresh connection each
                with httpx.Client() as fresh:
                    answer = ask(fresh, served.url, question)
                assert answer.headers["x-portkey-cache-status"] == "SEMANTIC HIT", question
                assert float(answer.headers["x-hookgate-cache-similarity"]) >= 0.85


def test_an_answer_stored_by_one_worker_is_served_by_the_other(served: Served) -> None:
    one, other = served.workers()
    with only(served, one), httpx.Client() as client:
        stored = ask(client, served.url, "Where can I download my invoices?")
    assert stored.headers["x-portkey-cache-status"] == "SEMANTIC MISS"
    with only(served, other), httpx.Client() as client:
        answer = ask(client, served.url, "Where do I download my invoices?")
    assert answer.headers["x-portkey-cache-status"] == "SEMANTIC HIT"
    assert answer.json() == stored.json()


def test_the_store_is_restarted_when_it_dies(served: Served) -> None:
    with httpx.Client() as client:
        ask(client, served.url, "How do I change my billing address?")
        stored = ask(client, served.url, "How can I change my billing address?")
        assert stored.headers["x-portkey-cache-status"] == "SEMANTIC HIT"
        service = served.service()
        assert service is not None
        os.kill(service, signal.SIGKILL)
        # Meanwhile: answered by the provider, a miss and a warning; /ready says why.
        _wait(lambda: _cmdline(service) == "", 10, "the store to die")
        answer = ask(client, served.url, "Where can I change my billing address?")
        assert answer.headers["x-portkey-cache-status"] == "SEMANTIC MISS"
        not_ready = served.ready()
        assert not_ready is not None and not_ready.status_code == 503
        assert "semantic-cache service" in json.dumps(not_ready.json()["problems"])
        served.wait_ready()
        restarted = served.service()
        assert restarted is not None and restarted != service
        # The entries were on disk: the new service serves them.
        answer = ask(client, served.url, "how do i change my billing address")
        assert answer.headers["x-portkey-cache-status"] == "SEMANTIC HIT"
    stderr = served.log.read_text()
    assert '"event": "service_died"' in stderr
    assert "semantic_cache_store_unavailable" in stderr
    assert "Traceback" not in stderr


def test_a_second_server_on_the_same_folder_is_refused(served: Served) -> None:
    second = _start(served.folder, "--workers", "2", log="second.log")
    code, stderr = second.stop() if second.process.wait(60) is not None else (None, "")
    assert code != 0
    assert "is in use by process" in stderr and "chroma_url" in stderr
    assert "Traceback" not in stderr
    with httpx.Client() as client:  # the first one is untouched
        ask(client, served.url, "How do I close my account?")
        answer = ask(client, served.url, "How can I close my account?")
    assert answer.headers["x-portkey-cache-status"] == "SEMANTIC HIT"


def test_another_process_on_the_folder_is_served_by_the_running_store(served: Served) -> None:
    with httpx.Client() as client:
        ask(client, served.url, "How do I export my data?")
    script = (
        "from hookgate import SyncGateway\n"
        "with SyncGateway.from_toml('plugins.toml') as gw:\n"
        "    answer = gw.chat.completions.create(model='m', config={'provider': 'mock', 'cache': {'mode': 'semantic'}},"
        " messages=[{'role': 'user', 'content': 'How can I export my data?'}])\n"
        "    print(answer.hookgate.cache_status)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=served.folder,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "SEMANTIC HIT"


def test_one_worker_shuts_its_store_down_with_it(deployment: Path) -> None:
    server = _start(deployment, "--workers", "1")
    try:
        server.wait_ready()
        service = server.service()
        assert service is not None
        with httpx.Client() as client:
            ask(client, server.url, "What are your opening hours?")
            answer = ask(client, server.url, "What are your opening hours, please?")
        assert answer.headers["x-portkey-cache-status"] == "SEMANTIC HIT"
    finally:
        code, stderr = server.stop()
    assert code == 0, stderr
    assert _cmdline(service) == ""
    assert not (deployment / ".hookgate" / "semantic-cache" / "service.sock").exists()
    assert "WARNING" not in stderr and "Traceback" not in stderr

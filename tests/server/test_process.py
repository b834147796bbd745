"""``hookgate serve`` as a real process: workers, SIGTERM with a request in flight, warnings."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import wait_for
from tests.support.servers import free_port

HOOKGATE = str(Path(sys.executable).parent / "hookgate")
SLOW = {"provider": "mock", "mock": {"latency_ms": 1500}}
HELLO = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}
PLUGINS = """
[gateway]
plugins = ["mock"]
default_provider = "mock"
[server]
graceful_shutdown_s = 10
"""


@pytest.fixture
def config(write_toml) -> Path:
    return write_toml(PLUGINS)


def start(config: Path, *args: str) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    process = subprocess.Popen(
        [HOOKGATE, "serve", "--config", str(config), "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return process, port


def wait_healthy(process: subprocess.Popen[str], port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.02)
    raise AssertionError("hookgate serve did not come up")


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


@pytest.fixture
def stop_all() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate()


@pytest.mark.parametrize("workers", [[], ["--workers", "1"]], ids=["default-workers", "one"])
def test_sigterm_lets_the_request_in_flight_finish_and_exits_0(config, stop_all, workers):
    process, port = start(config, *workers)
    stop_all.append(process)
    wait_healthy(process, port)
    if not workers:
        assert len(children(process.pid)) == len(os.sched_getaffinity(0))
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    result: dict[str, httpx.Response] = {}

    def slow() -> None:
        result["slow"] = httpx.post(
            url, json=HELLO, headers={"x-portkey-config": json.dumps(SLOW)}, timeout=10
        )

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.5)  # the slow request is in the worker now
    process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    with pytest.raises(httpx.TransportError):  # no new connections while it drains
        httpx.post(url, json=HELLO, timeout=2)
    thread.join(10)
    assert result["slow"].status_code == 200
    assert result["slow"].json()["choices"][0]["message"]["content"] == "[mock] you said: hello"
    assert process.wait(10) == 0
    _, stderr = process.communicate()
    assert "WARNING" not in stderr and "Traceback" not in stderr


def test_a_dead_worker_is_replaced(config, stop_all):
    process, port = start(config, "--workers", "2")
    stop_all.append(process)
    wait_healthy(process, port)
    first, _ = children(process.pid)
    os.kill(first, signal.SIGKILL)
    assert wait_for(lambda: len(children(process.pid)) == 2 and first not in children(process.pid))
    for _ in range(4):  # both workers answer, the new one included
        response = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=HELLO)
        assert response.status_code == 200
    process.send_signal(signal.SIGTERM)
    assert process.wait(15) == 0
    assert '"event": "worker_died"' in process.communicate()[1]


def test_open_bind_without_keys_warns_loudly(config, stop_all):
    process, port = start(config, "--host", "0.0.0.0", "--workers", "1")
    stop_all.append(process)
    assert process.stderr is not None
    logged = process.stderr.readline()  # the structured record, for log collectors
    assert '"event": "server_open_without_keys"' in logged and '"level": "warning"' in logged
    line = process.stderr.readline()  # and a plain sentence for whoever watches the terminal
    assert "WARNING: hookgate is listening on 0.0.0.0" in line
    assert "without gateway keys" in line and "api_keys" in line
    wait_healthy(process, port)
    process.send_signal(signal.SIGTERM)
    assert process.wait(15) == 0


def test_bad_plugins_toml_fails_at_once_with_the_reason(write_toml):
    bad = write_toml("[gateway]\nplugins = ['no-such-plugin']\n")
    done = subprocess.run(
        [HOOKGATE, "serve", "--config", str(bad), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert "no-such-plugin" in done.stderr and "Traceback" not in done.stderr

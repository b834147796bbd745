"""Fixtures of the semantic cache tests: a real ``chroma run`` server and gateway settings."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import free_port


@dataclass
class ChromaServer:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _chroma_cli() -> str:
    cli = Path(sys.executable).parent / "chroma"
    return str(cli) if cli.exists() else (shutil.which("chroma") or "chroma")


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    """A real Chroma server (``chroma run``) on a free loopback port, for the whole session."""
    folder = tmp_path_factory.mktemp("chroma-server")
    port = free_port()
    process = subprocess.Popen(
        [_chroma_cli(), "run", "--path", str(folder), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={"ANONYMIZED_TELEMETRY": "False", "PATH": str(Path(sys.executable).parent)},
    )
    server = ChromaServer(process, port)
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{server.url}/api/v2/heartbeat", timeout=1) as answer:
                if answer.status == 200:
                    break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("chroma run did not start") from None
            time.sleep(0.1)
    yield server
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def settings(plugin: dict[str, Any]) -> dict[str, Any]:
    """Gateway settings: the mock provider and the semantic cache with ``plugin``'s table."""
    return {
        "gateway": {"plugins": ["mock", "semantic-cache"], "default_provider": "mock"},
        "plugins": {"semantic-cache": {"prune_interval": 0, **plugin}},
    }

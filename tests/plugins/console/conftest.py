"""A real ``hookgate serve`` with the console, and Debian's Chromium driven by Playwright.

Every page a test opens is watched: a JavaScript error, a console error or a request to any
origin but the gateway's fails the test when it ends. Screenshots go to
``tests/artifacts/console/`` (git-ignored), one per step worth looking at.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.support.servers import free_port

HOOKGATE = str(Path(sys.executable).parent / "hookgate")
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parents[2] / "artifacts" / "console"
ADMIN_KEY = "console-admin-key-0123456789"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

PLUGINS = """
[gateway]
plugins = ["mock", "retry", "fallback", "limits", "cache", "logging", "console"]
default_provider = "mock"

[server]
api_keys = ["{admin}"]
workers = 2

[plugins.retry]
initial_delay = 0.01
jitter = false

[plugins.logging]
log_to = "none"
log_bodies = true
flush_interval = 0.01
store = {{ path = "logs.db" }}

[[plugins.limits.rules]]
name = "everyone"
scope = "global"
rate_limits = [{{ type = "requests", unit = "rpd", value = 1000000 }}]
"""


@dataclass
class Console:
    """A running ``hookgate serve`` with the console."""

    url: str
    folder: Path
    process: subprocess.Popen[str]
    admin_key: str = ADMIN_KEY
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

    def chat(
        self,
        content: str,
        *,
        model: str = "gpt-4o-mini",
        trace_id: str | None = None,
        config: dict[str, Any] | str | None = None,
        metadata: dict[str, str] | None = None,
        key: str | None = None,
    ) -> httpx.Response:
        headers = {"x-portkey-api-key": key or self.admin_key}
        if trace_id:
            headers["x-portkey-trace-id"] = trace_id
        if config is not None:
            headers["x-portkey-config"] = (
                config if isinstance(config, str) else orjson.dumps(config).decode()
            )
        if metadata:
            headers["x-portkey-metadata"] = orjson.dumps(metadata).decode()
        return self.client.post(
            f"{self.url}/v1/chat/completions",
            headers=headers,
            json={"model": model, "messages": [{"role": "user", "content": content}]},
        )

    def logged(self, trace_id: str, timeout: float = 20) -> dict[str, Any]:
        """Wait until the request is in the store (the writer batches), and return its record."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = self.client.get(
                f"{self.url}/console/api/logs",
                params={"trace_id": trace_id},
                headers={"x-portkey-api-key": self.admin_key},
            )
            assert answer.status_code == 200, answer.text
            if answer.json()["data"]:
                return answer.json()["data"][0]
            time.sleep(0.05)
        raise AssertionError(f"{trace_id} was never logged")


def _wait_healthy(process: subprocess.Popen[str], url: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"hookgate serve exited: {process.communicate()}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("hookgate serve did not come up")


def start_console(folder: Path, text: str) -> Console:
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "plugins.toml"
    config.write_text(textwrap.dedent(text), encoding="utf-8")
    port = free_port()
    process = subprocess.Popen(
        [HOOKGATE, "serve", "--config", str(config), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=folder,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(process, url)
    except BaseException:
        process.kill()
        process.communicate()
        raise
    return Console(url, folder, process)


def stop_console(console: Console) -> None:
    console.client.close()
    if console.process.poll() is None:
        console.process.send_signal(signal.SIGTERM)
        try:
            console.process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            console.process.kill()
            console.process.communicate()
    else:
        console.process.communicate()


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    running = start_console(tmp_path_factory.mktemp("console"), PLUGINS.format(admin=ADMIN_KEY))
    yield running
    stop_console(running)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Module-scoped, never longer: Playwright's sync API keeps an event loop running on this
    # thread while it is open, and the async tests that follow need the thread's loop free.
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        raise AssertionError(f"{CHROMIUM} is missing: run tests/install-deps.sh")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclass
class Watched:
    """A browser page, and everything it did that a test must not see."""

    page: Any
    origin: str
    errors: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)

    def shot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def login(self, key: str) -> None:
        page = self.page
        page.goto(f"{self.origin}/console/logs")
        page.wait_for_url("**/console/login**")
        page.fill("input[name=key]", key)
        page.click("form.login button[type=submit]")
        page.wait_for_url("**/console/logs")


@pytest.fixture
def watched(browser: Any, console: Console) -> Iterator[Callable[[], Watched]]:
    """``watched()``: a fresh browser context and page on the console, checked at the end."""
    made: list[tuple[Any, Watched]] = []

    def make() -> Watched:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        w = Watched(page, console.url)

        def on_request(request: Any) -> None:
            w.requested.append(request.url)
            if not (request.url.startswith(console.url + "/") or request.url.startswith("data:")):
                w.foreign.append(request.url)

        page.on("pageerror", lambda error: w.errors.append(f"pageerror: {error}"))
        page.on(
            "console",
            lambda message: (
                w.errors.append(f"console.{message.type}: {message.text}")
                if message.type == "error"
                else None
            ),
        )
        page.on("request", on_request)
        made.append((context, w))
        return w

    yield make
    for context, w in made:
        context.close()
        assert w.errors == [], w.errors
        assert w.foreign == [], f"requests left the gateway's origin: {w.foreign}"

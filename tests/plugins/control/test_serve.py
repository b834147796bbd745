"""The control plane on a real ``hookgate serve`` with two workers: the ``portkey-ai`` SDK
drives create → use → update → live on both workers → versions → rollback, and the store
goes away under load."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from portkey_ai.api_resources import exceptions as pk

from tests.plugins.control.conftest import plugins_toml, portkey
from tests.support.servers import free_port

HOOKGATE = str(Path(sys.executable).parent / "hookgate")
ROOT = Path(__file__).resolve().parents[3]
BODY = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}
ONE = {"provider": "mock", "override_params": {"model": "model-one"}}
TWO = {"provider": "mock", "override_params": {"model": "model-two"}}
ROOT_ADMIN = ("--name", "root", "--role", "admin")


class Served:
    def __init__(
        self,
        config: Path,
        key: str,
        process: subprocess.Popen[str],
        port: int,
        store_url: str | None,
    ):
        self.config = config
        self.store_url = store_url
        self.key = key
        self.process = process
        self.url = f"http://127.0.0.1:{port}"
        self.workers: dict[int, httpx.Client] = {}

    def pin_workers(self, count: int = 2) -> None:
        """One kept-alive connection to each worker (the kernel spreads new ones)."""
        spare = []
        for _ in range(200):
            client = httpx.Client(base_url=self.url, timeout=10)
            pid = client.get("/_worker").json()["pid"]
            if pid in self.workers:
                spare.append(client)
            else:
                self.workers[pid] = client
            if len(self.workers) == count:
                break
        for client in spare:
            client.close()
        assert len(self.workers) == count, "could not reach every worker"

    def model_on(self, client: httpx.Client, config: str) -> str | None:
        """The model the worker's answer names; None while it does not know the config yet."""
        answer = client.post(
            "/v1/chat/completions",
            json=BODY,
            headers={"x-portkey-api-key": self.key, "x-portkey-config": config},
        )
        if answer.status_code == 400 and answer.json()["error"]["code"] == "config_not_found":
            return None
        assert answer.status_code == 200, answer.text
        return answer.json()["model"]

    def wait_everywhere(self, config: str, model: str, limit: float = 1.0) -> float:
        """Seconds until every worker answers ``config`` with ``model``; fails past ``limit``."""
        start = time.monotonic()
        pending = dict(self.workers)
        while pending:
            for pid, client in list(pending.items()):
                if self.model_on(client, config) == model:
                    del pending[pid]
            elapsed = time.monotonic() - start
            assert elapsed < limit, f"not live on workers {sorted(pending)} after {elapsed:.2f} s"
        return time.monotonic() - start


@contextlib.contextmanager
def serve_control(
    folder: Path, upstream_url: str, store_url: str | None, plugins: tuple[str, ...] = ()
) -> Iterator[Served]:
    """``hookgate serve`` (2 workers) with the control plane, ``worker-id`` and ``plugins``
    enabled, an admin key made by ``hookgate keys create``, a connection pinned per worker."""
    config = folder / "plugins.toml"
    text = plugins_toml(
        upstream_url,
        '[plugins.worker-id]\nuse = "tests.plugins.control.worker_id:WorkerId"\n',
        store_url=store_url,
    ).replace('"control"]', ", ".join(['"control"', *(f'"{p}"' for p in plugins), '"worker-id"]']))
    config.write_text(text, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("HOOKGATE_MASTER_KEY", None)
    env.pop("HOOKGATE_ADMIN_KEY", None)
    created = subprocess.run(
        [HOOKGATE, "keys", "create", *ROOT_ADMIN, "--json", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    key = json.loads(created.stdout)["key"]  # stdout is exactly one JSON object
    assert "not shown again" in created.stderr
    port = free_port()
    process = subprocess.Popen(
        [HOOKGATE, "serve", "--config", str(config), "--port", str(port), "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    running = Served(config, key, process, port, store_url)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, process.communicate()
            try:
                if httpx.get(f"{running.url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "hookgate serve did not come up"
            time.sleep(0.05)
        running.pin_workers()
        yield running
    finally:
        for client in running.workers.values():
            client.close()
        process.terminate()
        try:
            process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


@pytest.fixture
def served(tmp_path: Path, fake_openai, store_url: str | None) -> Iterator[Served]:
    with serve_control(tmp_path, fake_openai.url, store_url) as running:
        yield running


def test_the_sdk_drives_configs_live_on_both_workers(served: Served):
    admin = portkey(served, served.key)
    created = admin.configs.create(name="live", config=ONE)
    served.wait_everywhere(created.slug, "model-one")

    updated = admin.configs.update(slug=created.slug, config=TWO)
    took = served.wait_everywhere(created.slug, "model-two")
    assert took < 1.0
    # The admin API reads the store itself: every worker lists the new version at once.
    for client in served.workers.values():
        versions = client.get(
            f"/v1/configs/{created.slug}/versions", headers={"x-portkey-api-key": served.key}
        ).json()["data"]
        assert [v["version_id"] for v in versions] == [updated.version_id, created.version_id]

    pinned = f"{created.slug}@{created.version_id}"
    assert all(served.model_on(c, pinned) == "model-one" for c in served.workers.values())

    client = next(iter(served.workers.values()))
    rolled = client.post(
        f"/v1/configs/{created.slug}/rollback",
        json={"version_id": 1},
        headers={"x-portkey-api-key": served.key},
    )
    assert rolled.status_code == 200
    served.wait_everywhere(created.slug, "model-one")
    # A revoked key is refused by every worker within a second as well.
    made = admin.api_keys.create(type="workspace", sub_type="service", name="temp")
    deadline = time.monotonic() + 1.0
    for worker in served.workers.values():
        while worker.get("/v1/configs", headers={"x-portkey-api-key": made.key}).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    admin.api_keys.delete(id=made.id)
    deadline = time.monotonic() + 1.0
    for worker in served.workers.values():
        while worker.get("/v1/configs", headers={"x-portkey-api-key": made.key}).status_code != 401:
            assert time.monotonic() < deadline
            time.sleep(0.02)


def test_the_store_going_away_under_load(served: Served, request: pytest.FixtureRequest):
    admin = portkey(served, served.key)
    created = admin.configs.create(name="steady", config=ONE)
    served.wait_everywhere(created.slug, "model-one")
    if served.store_url is None:
        store = served.config.parent / ".hookgate" / "control.db"
        assert store.is_file()
        away = store.with_name("control.db.away")

        def go_away() -> None:
            shutil.move(store, away)

        def come_back() -> None:
            shutil.move(away, store)
    else:
        postgres = request.getfixturevalue("postgres_server")
        if postgres.external:
            pytest.fail("this test stops PostgreSQL: unset HOOKGATE_TEST_POSTGRES_URL")
        go_away, come_back = postgres.stop, postgres.start

    statuses: list[int] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=served.url, timeout=10) as client:
            while not stop.is_set():
                answer = client.post(
                    "/v1/chat/completions",
                    json=BODY,
                    headers={"x-portkey-api-key": served.key, "x-portkey-config": created.slug},
                )
                statuses.append(answer.status_code)

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.3)
        go_away()
        time.sleep(0.5)  # every worker's poll has failed by now
        for client in served.workers.values():
            write = client.put(
                f"/v1/configs/{created.slug}",
                json={"config": TWO},
                headers={"x-portkey-api-key": served.key},
            )
            assert write.status_code == 503, write.text
            assert write.json()["error"]["code"] == "store_unavailable"
            ready = client.get("/ready", headers={"x-portkey-api-key": served.key})
            assert ready.status_code == 503
            assert any("control store unavailable" in p for p in ready.json()["problems"])
        with pytest.raises(pk.InternalServerError):
            admin.configs.create(name="while-down", config=ONE)
        served_during = len(statuses)
        time.sleep(0.3)
        assert len(statuses) > served_during  # still answering, from the snapshot
        come_back()
        time.sleep(0.3)
        admin.configs.update(slug=created.slug, config=TWO)
        served.wait_everywhere(created.slug, "model-two")
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert statuses and set(statuses) == {200}
    for client in served.workers.values():
        assert client.get("/ready").status_code == 200


@pytest.mark.parametrize("store_kind", ["postgres"])
def test_a_worker_started_while_the_store_is_down_lets_nothing_through_until_it_returns(
    tmp_path: Path, fake_openai, store_url: str, postgres_server
):
    """Whether keys exist is unknown until the store was read once: refused (401), and served
    as soon as the store returns; /ready is 503 meanwhile."""
    if postgres_server.external:
        pytest.fail("this test stops PostgreSQL: unset HOOKGATE_TEST_POSTGRES_URL")
    config = tmp_path / "plugins.toml"
    config.write_text(plugins_toml(fake_openai.url, store_url=store_url), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKGATE_")}
    created = subprocess.run(
        [HOOKGATE, "keys", "create", "--config", str(config), "--json", *ROOT_ADMIN],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    key = json.loads(created.stdout)["key"]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    postgres_server.stop()
    process = subprocess.Popen(
        [HOOKGATE, "serve", "--config", str(config), "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, "hookgate serve exited"
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "hookgate serve did not come up"
            time.sleep(0.05)
        for token in (None, key):
            headers = {"x-portkey-api-key": token} if token else {}
            answer = httpx.post(f"{url}/v1/chat/completions", json=BODY, headers=headers)
            assert answer.status_code == 401, answer.text
            assert answer.json()["error"]["code"] == "store_unavailable"
        assert httpx.get(f"{url}/ready").status_code == 503  # (details only to a known key)
    finally:
        postgres_server.start()
    try:
        deadline = time.monotonic() + 5
        headers = {"x-portkey-api-key": key}
        while (
            httpx.post(f"{url}/v1/chat/completions", json=BODY, headers=headers).status_code != 200
        ):
            assert time.monotonic() < deadline, "not serving after the store returned"
            time.sleep(0.05)
        assert httpx.post(f"{url}/v1/chat/completions", json=BODY).status_code == 401  # no key
        assert httpx.get(f"{url}/ready").status_code == 200
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

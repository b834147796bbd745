"""deploy/shared/plugins.toml as it is deployed: two ``hookgate serve`` instances with two
workers each behind nginx (round-robin, the repo's deploy/nginx/hookgate.conf), sharing a real
redis-server, a real PostgreSQL and a real ``chroma run``, behave as one gateway."""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.support.servers import (
    ChromaServer,
    NginxServer,
    PostgresServer,
    RedisServer,
    free_port,
    wait_http,
)

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT / "deploy" / "shared" / "plugins.toml"
NGINX = ROOT / "deploy" / "nginx" / "hookgate.conf"
HOOKGATE = str(Path(sys.executable).with_name("hookgate"))
# Four gateway processes, each loading the embedding model, plus Chroma, on a shared 2-core
# machine: start-up alone can take a minute or two there (a few seconds on an idle one).
pytestmark = pytest.mark.timeout(900)
# Seeded by every instance at start (HOOKGATE_ADMIN_KEY): the control plane then requires a
# gateway key on every request. The shared file names no default provider: requests say mock.
ADMIN_KEY = "hg-shared-deployment-test-admin-key-0123456789"
HEADERS = {"x-portkey-api-key": ADMIN_KEY, "x-portkey-provider": "mock"}


def ask(
    url: str, content: str, config: dict[str, Any] | None = None, trace: str | None = None
) -> httpx.Response:
    headers = {**HEADERS, **({"x-portkey-config": json.dumps(config)} if config else {})}
    if trace:
        headers["x-portkey-trace-id"] = trace
    return httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": content}]},
        headers=headers,
        timeout=30,
    )


@dataclass
class Instance:
    env: dict[str, str]
    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        if self.log is None:
            self.log = open(self.workdir / f"serve-{self.port}.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                HOOKGATE,
                "serve",
                "--config",
                str(SHARED),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "2",
            ],
            env=self.env,
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,  # the request log lines
            stderr=self.log,
        )

    def wait_ready(self) -> None:
        wait_http(f"{self.url}/ready", self.process, timeout=300)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def close(self) -> None:
        self.stop()
        if self.log is not None:
            self.log.close()


def grows(results: list[int], by: int, timeout: float = 60) -> int:
    """Wait until ``results`` has ``by`` more entries (the machine may be slow); its length."""
    goal = len(results) + by
    deadline = time.monotonic() + timeout
    while len(results) < goal:
        assert time.monotonic() < deadline, f"the load stalled at {len(results)} answers"
        time.sleep(0.05)
    return len(results)


@dataclass
class Cluster:
    redis: RedisServer
    postgres: PostgresServer
    database: str
    chroma: ChromaServer
    instances: list[Instance]
    nginx: NginxServer
    env: dict[str, str]

    def records(self, where: str = "", params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with psycopg.connect(self.database) as conn:
            return [
                json.loads(row[0])
                for row in conn.execute(f"SELECT record FROM hookgate_requests {where}", params)
            ]

    def wait_records(
        self, where: str, params: tuple[Any, ...], n: int, timeout: float = 10
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.records(where, params)
            if len(found) >= n or time.monotonic() > deadline:
                return found
            time.sleep(0.1)

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [HOOKGATE, *args, "--config", str(SHARED)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout


@pytest.fixture(scope="module")
def cluster(
    redis_server: RedisServer,
    postgres_server: PostgresServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    redis = RedisServer()  # its own: the test stops it
    chroma = ChromaServer()
    database = postgres_server.database()
    workdir = tmp_path_factory.mktemp("shared")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("HOOKGATE_", "PROMETHEUS_"))},
        "REDIS_URL": redis.url,
        "DATABASE_URL": database,
        "HOOKGATE_CHROMA_URL": chroma.url,
        "ANONYMIZED_TELEMETRY": "False",
        "HOOKGATE_ADMIN_KEY": ADMIN_KEY,
    }
    instances = [Instance(env, workdir), Instance(env, workdir)]
    nginx = None
    try:
        for instance in instances:
            instance.start()
        for instance in instances:
            instance.wait_ready()
        nginx = NginxServer(
            str(NGINX),
            {
                "gateway-1:8787": f"127.0.0.1:{instances[0].port}",
                "gateway-2:8787": f"127.0.0.1:{instances[1].port}",
            },
        )
        cluster = Cluster(redis, postgres_server, database, chroma, instances, nginx, env)
        yield cluster
        redis = cluster.redis  # a test may have replaced it with a restarted one
    finally:
        if nginx is not None:
            nginx.close()
        for instance in instances:
            instance.close()
        chroma.close()
        redis.stop()


def until(condition: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not stored in time"
        time.sleep(0.02)


def redis_keys(cluster: Cluster) -> int:
    import redis

    client = redis.Redis.from_url(cluster.redis.url)
    try:
        return int(client.dbsize())
    finally:
        client.close()


def chroma_entries(cluster: Cluster) -> int:
    import chromadb
    from chromadb.config import Settings

    client = chromadb.HttpClient(
        host="127.0.0.1", port=cluster.chroma.port, settings=Settings(anonymized_telemetry=False)
    )
    return sum(collection.count() for collection in client.list_collections())


def test_an_exact_cache_entry_made_through_one_instance_is_a_hit_through_the_other(cluster):
    a, b = cluster.instances
    question = f"exact {uuid.uuid4()}"
    cache = {"cache": {"mode": "simple"}}
    before = redis_keys(cluster)
    first = ask(a.url, question, cache)
    assert (first.status_code, first.headers["x-portkey-cache-status"]) == (200, "MISS")
    # Visible within 100 ms on an idle machine (bench/scale_out.py measures it); on a loaded
    # one, wait for the entry to be in Redis, so that b can only have it from a.
    until(lambda: redis_keys(cluster) > before)
    second = ask(b.url, question, cache)
    assert (second.status_code, second.headers["x-portkey-cache-status"]) == (200, "HIT")
    assert second.json()["choices"] == first.json()["choices"]


def test_a_semantic_entry_made_through_one_instance_answers_a_paraphrase_on_the_other(cluster):
    a, b = cluster.instances
    tag = uuid.uuid4().hex[:8]  # a partition of its own, so reruns start empty
    config = {"cache": {"mode": "semantic"}}
    headers_ns = {"x-portkey-cache-namespace": tag}

    def semantic(url: str, content: str) -> httpx.Response:
        return httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": content}]},
            headers={**HEADERS, "x-portkey-config": json.dumps(config), **headers_ns},
            timeout=30,
        )

    before = chroma_entries(cluster)
    first = semantic(a.url, "How do I reset my password?")
    assert first.headers["x-portkey-cache-status"] == "SEMANTIC MISS"
    until(lambda: chroma_entries(cluster) > before)
    second = semantic(b.url, "How can I reset my password?")
    assert second.headers["x-portkey-cache-status"] == "SEMANTIC HIT"
    assert second.json()["choices"][0]["message"]["content"].endswith("How do I reset my password?")


def test_a_circuit_opened_through_one_instance_is_skipped_by_the_other(cluster):
    a, b = cluster.instances
    primary = f"primary-{uuid.uuid4().hex[:8]}"  # a target no other test trips
    config = {
        "strategy": {"mode": "fallback"},
        "targets": [
            {
                "provider": "mock",
                "override_params": {"model": primary},
                "mock": {"fail_status": 503},
            },
            {"provider": "mock", "override_params": {"model": "backup"}},
        ],
    }
    for i in range(5):  # failure_threshold = 5 in the shared file
        answer = ask(a.url, "hi", config, trace=f"{primary}-a{i}")
        assert answer.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
    answer = ask(b.url, "hi", config, trace=f"{primary}-b")
    assert answer.status_code == 200
    assert answer.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
    [record] = cluster.wait_records("WHERE trace_id = %s", (f"{primary}-b",), 1)
    # instance b never called the failing target: its only attempt is the backup
    assert [attempt["path"] for attempt in record["attempts"]] == ["config.targets[1]"]


def live_on(url: str, slug: str, model: str, since: float, watch: float = 1.5) -> float:
    """Ask ``url`` (a new connection each time, so both of its workers answer) for ``watch``
    seconds after ``since``; the seconds from ``since`` to the last answer that was not yet
    ``model`` (0 when none was), which must be the last one ever: later ones all are."""
    last_stale = since
    answers = 0
    while time.monotonic() - since < watch or answers < 10:
        asked = time.monotonic()
        answer = httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "which config?"}]},
            headers={"x-portkey-api-key": ADMIN_KEY, "x-portkey-config": slug},
            timeout=30,
        )
        answers += 1
        if answer.status_code == 200 and answer.json()["model"] == model:
            continue
        assert answer.status_code in (200, 400), answer.text  # 400: config not known yet
        last_stale = asked
    return last_stale - since


def test_a_config_created_and_rolled_back_through_one_instance_is_live_on_the_other(cluster):
    """Through instance a's admin API; instance b (both workers) serves each change within
    1 s (each worker polls the shared store's generation every 0.25 s)."""
    a, b = cluster.instances
    admin = {"x-portkey-api-key": ADMIN_KEY}
    one = {"provider": "mock", "override_params": {"model": "model-one"}}
    two = {"provider": "mock", "override_params": {"model": "model-two"}}
    took: dict[str, float] = {}

    start = time.monotonic()
    made = httpx.post(
        f"{a.url}/v1/configs", json={"name": "live", "config": one}, headers=admin, timeout=30
    )
    assert made.status_code == 200, made.text
    slug = made.json()["slug"]
    took["create"] = live_on(b.url, slug, "model-one", start)

    start = time.monotonic()
    updated = httpx.put(
        f"{a.url}/v1/configs/{slug}", json={"config": two}, headers=admin, timeout=30
    )
    assert updated.status_code == 200, updated.text
    took["update"] = live_on(b.url, slug, "model-two", start)

    start = time.monotonic()
    rolled = httpx.post(
        f"{a.url}/v1/configs/{slug}/rollback",
        json={"version_id": made.json()["version_id"]},
        headers=admin,
        timeout=30,
    )
    assert rolled.status_code == 200, rolled.text
    took["rollback"] = live_on(b.url, slug, "model-one", start)
    print(f"live on the other instance after: {took}")  # the measurement, with -s
    assert max(took.values()) <= 1.0, took
    # b's admin API reads the store itself: the history is there at once.
    versions = httpx.get(f"{b.url}/v1/configs/{slug}/versions", headers=admin, timeout=30)
    assert [v["version"] for v in versions.json()["data"]] == [3, 2, 1]


def test_virtual_keys_are_refused_without_a_master_key_and_the_secret_is_in_the_database(
    cluster,
):
    a, _ = cluster.instances
    answer = httpx.post(
        f"{a.url}/v1/virtual-keys",
        json={"name": "up", "provider": "openai", "key": "sk-never-stored-0123456789"},
        headers={"x-portkey-api-key": ADMIN_KEY},
        timeout=30,
    )
    assert answer.status_code == 503
    error = answer.json()["error"]
    assert error["code"] == "master_key_missing" and "HOOKGATE_MASTER_KEY" in error["message"]
    with psycopg.connect(cluster.database) as conn:
        assert conn.execute("SELECT count(*) FROM virtual_keys").fetchone() == (0,)
        # HOOKGATE_SECRET is unset: the instances keep one partition secret in the database.
        assert conn.execute("SELECT name FROM kept").fetchall() == [("deployment_secret",)]


def test_hookgate_stats_counts_every_request_of_both_instances(cluster):
    tag = uuid.uuid4().hex[:8]
    # through nginx, new connections each: round-robin spreads them over both instances
    for i in range(20):
        headers = {
            **HEADERS,
            "x-portkey-metadata": json.dumps({"run": tag}),
            "x-portkey-trace-id": f"{tag}-{i}",
        }
        answer = httpx.post(
            f"{cluster.nginx.url}/v1/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "count me"}]},
            headers=headers,
            timeout=30,
        )
        assert answer.status_code == 200
    records = cluster.wait_records("WHERE metadata ->> 'run' = %s", (tag,), 20)
    assert len(records) == 20
    stats = json.loads(cluster.cli("stats", "--json", "--by", "run"))
    groups = {g["value"]: g["requests"] for g in stats["by_metadata"]["groups"]}
    assert groups[tag] == 20
    logged = [
        json.loads(line) for line in cluster.cli("logs", "--json", "--limit", "1000").splitlines()
    ]
    assert {f"{tag}-{i}" for i in range(20)} <= {r["trace_id"] for r in logged}


def _load(url: str, stop: threading.Event, results: list[int], content: str = "load") -> None:
    with httpx.Client(timeout=30) as client:
        while not stop.is_set():
            try:
                answer = client.post(
                    f"{url}/v1/chat/completions",
                    json={"model": "m", "messages": [{"role": "user", "content": content}]},
                    headers={
                        **HEADERS,
                        "x-portkey-config": json.dumps(
                            {"provider": "mock", "mock": {"latency_ms": 20}}
                        ),
                    },
                )
                results.append(answer.status_code)
            except httpx.TransportError:
                results.append(0)


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_killing_one_instance_under_load_fails_only_its_requests_in_flight(cluster):
    a, _ = cluster.instances
    stop = threading.Event()
    results: list[int] = []
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for _ in range(4):
            pool.submit(_load, cluster.nginx.url, stop, results)
        before = grows(results, 20)
        in_flight_at_most = 4  # one request per client thread
        a.stop(signal.SIGKILL)
        killed_at = len(results)
        grows(results, 20)  # the rest flow through the other instance
        stop.set()
    try:
        assert before > 0 and all(code == 200 for code in results[:before])
        failed = [code for code in results if code != 200]
        assert len(failed) <= in_flight_at_most, failed
        assert len(results) - killed_at >= 20
        # Its workers stop with their supervisor and let go of the port, so it can restart.
        deadline = time.monotonic() + 30
        while not _port_is_free(a.port):
            assert time.monotonic() < deadline, "the killed server's workers still hold its port"
            time.sleep(0.1)
    finally:
        a.start()
        a.wait_ready()


def test_stopping_postgres_then_redis_then_chroma_under_load_fails_no_answer(cluster):
    stop = threading.Event()
    results: list[int] = []
    tag = uuid.uuid4().hex[:8]

    def semantic_load() -> None:
        with httpx.Client(timeout=30) as client:
            i = 0
            while not stop.is_set():
                i += 1
                answer = client.post(
                    f"{cluster.nginx.url}/v1/chat/completions",
                    json={
                        "model": "m",
                        "messages": [{"role": "user", "content": f"{tag} question {i % 5}"}],
                    },
                    headers={
                        **HEADERS,
                        "x-portkey-config": json.dumps({"cache": {"mode": "semantic"}}),
                        "x-portkey-trace-id": f"{tag}-s{i}",
                    },
                )
                results.append(answer.status_code)

    def exact_load() -> None:
        with httpx.Client(timeout=30) as client:
            i = 0
            while not stop.is_set():
                i += 1
                answer = client.post(
                    f"{cluster.nginx.url}/v1/chat/completions",
                    json={
                        "model": "m",
                        "messages": [{"role": "user", "content": f"{tag} exact {i % 7}"}],
                    },
                    headers={
                        **HEADERS,
                        "x-portkey-config": json.dumps({"cache": {"mode": "simple"}}),
                        "x-portkey-trace-id": f"{tag}-e{i}",
                    },
                )
                results.append(answer.status_code)

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(semantic_load), pool.submit(exact_load), pool.submit(exact_load)]
        try:
            grows(results, 10)
            cluster.postgres.stop()
            during_pg = grows(results, 20)
            cluster.postgres.start()
            cluster.redis.stop()
            grows(results, 20)
            cluster.redis = RedisServer(cluster.redis.port)
            cluster.chroma.stop()
            grows(results, 20)
            cluster.chroma.start()
            grows(results, 10)
        finally:
            stop.set()
            for future in futures:
                future.result(60)
    assert during_pg >= 30
    assert results and all(code == 200 for code in results), [c for c in results if c != 200][:5]
    # every answer, including those given while PostgreSQL was down, reaches the database
    records = cluster.wait_records(
        "WHERE trace_id LIKE %s", (f"{tag}-%",), len(results), timeout=30
    )
    assert len(records) == len(results)


def test_keys_create_works_against_an_empty_database(postgres_server: PostgresServer):
    """The bootstrap path of a new deployment: nothing but the three variables, an empty
    database, and `hookgate keys create`; the key it prints opens the admin API."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HOOKGATE_")},
        "REDIS_URL": "redis://127.0.0.1:1/0",  # not needed by the command
        "DATABASE_URL": postgres_server.database(),
        "HOOKGATE_CHROMA_URL": "http://127.0.0.1:1",
    }
    config = ["--config", str(SHARED)]
    done = subprocess.run(
        [HOOKGATE, "keys", "create", *config, "--name", "x", "--role", "admin", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    made = json.loads(done.stdout)
    assert made["key"].startswith("hg-") and made["id"]
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        rows = conn.execute("SELECT name, role, workspace FROM api_keys").fetchall()
    assert rows == [("x", "admin", "default")]
    refused = subprocess.run(
        [
            HOOKGATE,
            "vkeys",
            "create",
            *config,
            "--name",
            "v",
            "--provider",
            "openai",
            "--key-stdin",
        ],
        env=env,
        input="sk-never-stored-0123456789\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode != 0
    assert "HOOKGATE_MASTER_KEY" in refused.stderr and "Traceback" not in refused.stderr

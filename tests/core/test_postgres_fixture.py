"""The PostgreSQL the tests start: a fresh database per test, restartable, stallable."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from tests.support.servers import PostgresServer


def test_each_test_gets_an_empty_database(
    postgres_url: str, postgres_server: PostgresServer
) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ).fetchone()
        assert tables == (0,)
        conn.execute("CREATE TABLE t (x int)")
    assert postgres_server.database() != postgres_url


def test_stall_freezes_the_server_and_stop_start_keeps_the_data(
    postgres_url: str, postgres_server: PostgresServer
) -> None:
    if postgres_server.external:
        pytest.fail("this test needs the server the tests start (unset HOOKGATE_TEST_POSTGRES_URL)")
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (1)")
    answered = threading.Event()

    def query() -> None:
        with psycopg.connect(postgres_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute("SELECT 1")
        answered.set()

    with postgres_server.stall():
        worker = threading.Thread(target=query, daemon=True)
        worker.start()
        time.sleep(0.5)
        assert not answered.is_set()
    assert answered.wait(10)

    postgres_server.stop()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(postgres_url, connect_timeout=2)
    postgres_server.start()
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT x FROM t").fetchall() == [(1,)]

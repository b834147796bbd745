"""GET /ready reports backends the plugins cannot reach, and recovers when they are back."""

from __future__ import annotations

import httpx

from tests.support.servers import RedisServer, free_port


def test_ready_names_an_unreachable_cache_redis(make_gateway, serve, redis_server):
    gateway = make_gateway(f"""
        [gateway]
        plugins = ["mock", "cache", "fallback"]
        default_provider = "mock"
        [plugins.cache]
        backend = "redis"
        url = "{redis_server.url}"
        [plugins.fallback.circuit_breaker]
        enabled = true
        redis_url = "redis://127.0.0.1:{free_port()}/0"
    """)
    with serve(gateway) as server:
        answer = httpx.get(f"{server.url}/ready")
        assert answer.status_code == 503
        problems = answer.json()["problems"]
        assert len(problems) == 1 and problems[0].startswith("fallback: circuit-breaker redis:")


def test_ready_follows_the_cache_redis_going_away(make_gateway, serve):
    redis = RedisServer()
    try:
        gateway = make_gateway(f"""
            [gateway]
            plugins = ["mock", "cache"]
            default_provider = "mock"
            [plugins.cache]
            backend = "redis"
            url = "{redis.url}"
        """)
        with serve(gateway) as server:
            assert httpx.get(f"{server.url}/ready").status_code == 200
            redis.stop()
            answer = httpx.get(f"{server.url}/ready")
            assert answer.status_code == 503
            assert answer.json()["problems"][0].startswith(
                f"cache: redis at 127.0.0.1:{redis.port}"
            )
            # the gateway still answers requests: a dead cache is a miss, not an outage
            chat = httpx.post(
                f"{server.url}/v1/chat/completions",
                json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
                headers={"x-portkey-config": '{"cache": {"mode": "simple"}}'},
            )
            assert chat.status_code == 200
    finally:
        redis.stop()


def test_ready_names_an_unreachable_chroma_server(make_gateway, serve):
    port = free_port()
    gateway = make_gateway(f"""
        [gateway]
        plugins = ["mock", "semantic-cache"]
        default_provider = "mock"
        [plugins.semantic-cache]
        chroma_url = "http://127.0.0.1:{port}"
    """)
    with serve(gateway) as server:
        answer = httpx.get(f"{server.url}/ready")
        assert answer.status_code == 503
        [problem] = answer.json()["problems"]
        assert problem.startswith(f"semantic-cache: chroma at http://127.0.0.1:{port}: ")
        assert httpx.get(f"{server.url}/health").status_code == 200

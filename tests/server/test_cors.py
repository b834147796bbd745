"""CORS from ``[server] cors_origins``: off by default; listed origins get answers a browser
accepts, preflights included; the gateway key is still required for the request itself."""

from __future__ import annotations

import httpx
import pytest

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
PREFLIGHT = {
    "origin": "https://app.example.com",
    "access-control-request-method": "POST",
    "access-control-request-headers": "content-type, x-portkey-api-key, x-portkey-config",
}


def test_off_by_default(make_gateway, serve):
    gateway = make_gateway('[gateway]\nplugins = ["mock"]\ndefault_provider = "mock"\n')
    with serve(gateway) as server:
        preflight = httpx.options(f"{server.url}/v1/chat/completions", headers=PREFLIGHT)
        assert "access-control-allow-origin" not in preflight.headers
        answer = httpx.post(
            f"{server.url}/v1/chat/completions", json=CHAT, headers={"origin": PREFLIGHT["origin"]}
        )
        assert answer.status_code == 200
        assert "access-control-allow-origin" not in answer.headers


@pytest.fixture
def server(make_gateway, serve):
    gateway = make_gateway("""
        [gateway]
        plugins = ["mock", "responses"]
        default_provider = "mock"
        [server]
        api_keys = ["gw-key-1"]
        cors_origins = ["https://app.example.com"]
        cors_max_age = 120
    """)
    with serve(gateway) as running:
        yield running


def test_preflight_answered_for_a_listed_origin(server):
    for path in ("/v1/chat/completions", "/v1/responses", "/chat/completions"):
        answer = httpx.options(server.url + path, headers=PREFLIGHT)
        assert answer.status_code == 200, path
        assert answer.headers["access-control-allow-origin"] == "https://app.example.com"
        assert "POST" in answer.headers["access-control-allow-methods"]
        allowed = answer.headers["access-control-allow-headers"].lower()
        assert "x-portkey-api-key" in allowed and "x-portkey-config" in allowed
        assert answer.headers["access-control-max-age"] == "120"


def test_an_unlisted_origin_gets_no_cors(server):
    answer = httpx.options(
        f"{server.url}/v1/chat/completions", headers={**PREFLIGHT, "origin": "https://evil.test"}
    )
    assert answer.status_code == 400
    assert "access-control-allow-origin" not in answer.headers


def test_the_gateway_key_rules_are_unchanged(server):
    origin = {"origin": "https://app.example.com"}
    refused = httpx.post(f"{server.url}/v1/chat/completions", json=CHAT, headers=origin)
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == "https://app.example.com"
    answer = httpx.post(
        f"{server.url}/v1/chat/completions",
        json=CHAT,
        headers={**origin, "x-portkey-api-key": "gw-key-1"},
    )
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == "https://app.example.com"
    exposed = answer.headers["access-control-expose-headers"].lower()
    assert "x-portkey-trace-id" in exposed and "x-portkey-cache-status" in exposed

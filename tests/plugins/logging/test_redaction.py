"""No key ever reaches a log line, a record, an error or the SQLite file."""

from __future__ import annotations

import json

import httpx
import structlog
from hookgate import Gateway

from tests.support.fake_openai import Reply, openai_error

VIRTUAL = "sk-virtualkey-SECRET-0001"
PLUGIN = "sk-pluginkey-SECRET-0002"
CLIENT = "sk-client-SECRET-0003"
CONFIG = "cfgkey-SECRET-0004-abcdef"  # no sk- prefix: only the plugin's own knowledge hides it
BODY = "sk-body-SECRET-0005"
BEARER = "tok-meta-SECRET-0006"
GATEWAY = "gw-key-SECRET-0007"
VK_ID = "vk-hidden-openai"
SECRETS = [VIRTUAL, PLUGIN, CLIENT, CONFIG, BODY, BEARER, GATEWAY, VK_ID]


def test_secrets_never_appear(write_toml, fake_openai, serve, tmp_path):
    log_file = tmp_path / "requests.jsonl"
    path = write_toml(f"""
        [gateway]
        plugins = ["mock", "openai", "logging"]
        default_provider = "mock"
        [server]
        api_keys = ["{GATEWAY}"]
        [plugins.openai]
        base_url = "{fake_openai.url}"
        api_key = "{PLUGIN}"
        [virtual_keys.{VK_ID}]
        provider = "openai"
        api_key = "{VIRTUAL}"
        [plugins.logging]
        log_to = "{log_file}"
        log_bodies = true
        max_body_chars = 100000
        store = {{ path = "logs.db" }}
    """)
    gateway = Gateway.from_toml(path)
    hello = [{"role": "user", "content": "hello"}]
    with structlog.testing.capture_logs() as captured, serve(gateway) as server:
        base = {"x-portkey-api-key": GATEWAY}

        def post(headers: dict[str, str], messages=hello) -> httpx.Response:
            return httpx.post(
                f"{server.url}/v1/chat/completions",
                json={"model": "gpt-4o-mini", "messages": messages},
                headers={**base, **headers},
                timeout=10,
            )

        # the caller's own key, answered
        assert post(
            {"x-portkey-provider": "openai", "authorization": f"Bearer {CLIENT}"}
        ).is_success
        # a virtual key whose upstream echoes the key in its error, as OpenAI's 401 does
        fake_openai.script(
            Reply(401, json=openai_error(401, f"Incorrect API key provided: {VIRTUAL}"))
        )
        assert post({"x-portkey-virtual-key": VK_ID}).status_code == 401
        # a key inside the config header, echoed by a failing upstream
        fake_openai.script(Reply(500, json=openai_error(500, f"bad key {CONFIG}")))
        config = {"provider": "openai", "api_key": CONFIG}
        assert post({"x-portkey-config": json.dumps(config)}).status_code == 500
        # the plugin's default key, echoed
        fake_openai.script(Reply(403, json=openai_error(403, f"key {PLUGIN} is disabled")))
        assert post({"x-portkey-provider": "openai"}).status_code == 403
        # keys in the prompt and in metadata (bodies are logged here)
        assert post(
            {"x-portkey-metadata": json.dumps({"note": f"Bearer {BEARER}"})},
            messages=[{"role": "user", "content": f"my key is {BODY}"}],
        ).is_success
        assert server.thread.run(gateway.plugin("logging").flush())
    # the gateway is shut down: the writer has flushed and closed its connection

    lines = log_file.read_text().splitlines()
    assert len(lines) == 5
    assert {json.loads(line)["status"] for line in lines} == {200, 401, 500, 403}
    assert "[redacted]" in log_file.read_text()
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("logs.db*"))
    assert stored.count(b"gateway_request") == 0 and stored.count(b"trace_id") >= 5
    texts = {
        "log file": log_file.read_text(),
        "sqlite": stored.decode("utf-8", errors="replace"),
        "structlog events": repr(captured),
        "records' errors": " ".join(str(json.loads(line)["error_message"]) for line in lines),
    }
    for where, text in texts.items():
        for secret in SECRETS:
            assert secret not in text, f"{secret} leaked into the {where}"

"""Secret redaction helpers in hookgate.log, and the trace ids records are keyed by."""

from __future__ import annotations

import re
import time

import orjson
import pytest
from hookgate.context import new_trace_id
from hookgate.log import SECRET_FIELDS, may_hold_secret, redact, register_secret

CLEAN = {
    "trace_id": "01a21238cd801787352d5fe37375d0b0",
    "model": "gpt-4o-mini",
    "metadata": {"user": "u1", "team": "search"},
    "prompt_tokens": 9,
    "cached_tokens": 0,
    "cost_usd": 6.3e-6,
}


def rendered(**changes: object) -> str:
    return orjson.dumps({**CLEAN, **changes}).decode()


def test_a_record_without_secrets_is_clean():
    assert redact(CLEAN) == CLEAN
    assert not may_hold_secret(rendered())


@pytest.mark.parametrize("field", sorted(SECRET_FIELDS))
def test_every_secret_field_name_is_suspect_in_any_case(field):
    record = {"metadata": {field.upper(): "hunter2hunter2"}}
    assert redact(record) != record
    assert may_hold_secret(orjson.dumps(record).decode())


@pytest.mark.parametrize(
    "text",
    [
        "Bearer abcdefgh12345678",
        "bearer abcdefgh12345678",
        "upstream said: Incorrect API key provided: sk-proj-abcdefgh12345678",
        "sk_live_abcdefgh12345678",
    ],
)
def test_key_shapes_in_free_text_are_suspect(text):
    assert redact(text) != text
    assert may_hold_secret(rendered(error_message=text))


def test_a_registered_secret_is_found_even_where_json_escapes_it():
    secret = 'pa"ss\\word-from-plugins-toml'
    register_secret(secret)
    assert redact(f"x {secret} y") == "x [redacted] y"
    assert may_hold_secret(rendered(model=f"m-{secret}"))


def test_this_requests_keys_are_checked_as_given():
    assert not may_hold_secret(rendered())
    assert may_hold_secret(rendered(model="model-ABCD1234"), ["ABCD1234"])


def test_trace_ids_are_32_hex_digits_and_sort_by_time():
    first = new_trace_id()
    time.sleep(0.002)
    second = new_trace_id()
    assert re.fullmatch(r"[0-9a-f]{32}", first) and re.fullmatch(r"[0-9a-f]{32}", second)
    assert first < second
    assert len({new_trace_id() for _ in range(10_000)}) == 10_000

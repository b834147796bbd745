"""One request's log record, built once its response has gone out, from what
``post_response`` saw.

A record is a flat-ish dict of JSON values, and its JSON text: what the structured log line,
the SQLite store, the metrics and the OpenTelemetry span are all made from. It never holds a
``Target`` or the request's headers, and no secret survives in it: the rendered text is checked
for anything that could be one (:func:`hookgate.log.may_hold_secret`, one pass over one
string), and only then are the free-text fields redacted one by one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from hookgate.context import RequestContext
from hookgate.errors import GatewayError
from hookgate.log import REDACTED, may_hold_secret, redact
from hookgate.responses import Response, StreamResponse

from .prices import PriceTable, Usage

__all__ = ["Measured", "Seen", "build_record", "measure"]

CACHE_HITS = frozenset({"HIT", "SEMANTIC HIT"})


@dataclass(slots=True)
class Seen:
    """What ``post_response`` captured: the context, plus the fields a later observer could
    still change, copied at that moment."""

    ctx: RequestContext
    response: Response | StreamResponse | None
    status: int
    cache_status: str
    cache_similarity: float | None
    error: GatewayError | None
    completed: bool
    cache_reason: str | None = None
    """The semantic cache's explanation of its hit or refusal."""


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def usage_of(data: Any) -> Usage | None:
    """Token usage from an OpenAI (or Anthropic) ``usage`` object."""
    if not isinstance(data, dict):
        return None
    prompt = _int(data.get("prompt_tokens"))
    if prompt is None:
        prompt = _int(data.get("input_tokens"))
        if prompt is not None:  # Anthropic counts cache reads and writes apart from input
            prompt += (_int(data.get("cache_read_input_tokens")) or 0) + (
                _int(data.get("cache_creation_input_tokens")) or 0
            )
    completion = _int(data.get("completion_tokens"))
    if completion is None:
        completion = _int(data.get("output_tokens"))
    if prompt is None and completion is None:
        return None
    details = data.get("prompt_tokens_details")
    cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else None
    if cached is None:
        cached = _int(data.get("cache_read_input_tokens"))
    return Usage(prompt or 0, completion or 0, cached or 0)


def estimate_tokens(text: str) -> int:
    """About four characters per token: OpenAI's rule of thumb for English text."""
    return math.ceil(len(text) / 4) if text else 0


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def _prompt_text(body: dict[str, Any]) -> str:
    parts = [_text(message.get("content")) for message in body.get("messages") or []]
    if isinstance(body.get("system"), str):
        parts.append(body["system"])
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        parts.append(prompt)
    elif isinstance(prompt, list):
        parts.extend(p for p in prompt if isinstance(p, str))
    return "\n".join(parts)


def _stream_text(events: Iterable[Any]) -> str:
    out = []
    for event in events:
        data = event.data
        if not isinstance(data, dict):
            continue
        for choice in data.get("choices") or ():
            delta = choice.get("delta") or {}
            content = delta.get("content") if isinstance(delta, dict) else None
            if isinstance(content, str):
                out.append(content)
            elif isinstance(choice.get("text"), str):
                out.append(choice["text"])
        delta = data.get("delta")  # Anthropic content_block_delta
        if isinstance(delta, dict) and isinstance(delta.get("text"), str):
            out.append(delta["text"])
        elif isinstance(delta, str) and data.get("type") == "response.output_text.delta":
            out.append(delta)  # the Responses API
    return "".join(out)


def _stream_usage_and_model(events: list[Any]) -> tuple[Usage | None, str | None]:
    model = None
    usage = None
    anthropic_input = None
    for event in events:
        data = event.data
        if not isinstance(data, dict):
            continue
        if model is None and isinstance(data.get("model"), str):
            model = data["model"]
        response = data.get("response")
        if isinstance(response, dict):  # the Responses API's response.completed
            if isinstance(response.get("model"), str):
                model = model or response["model"]
            data = response
        message = data.get("message")
        if isinstance(message, dict):  # Anthropic message_start
            if model is None and isinstance(message.get("model"), str):
                model = message["model"]
            anthropic_input = usage_of(message.get("usage"))
        found = usage_of(data.get("usage"))
        if found is not None:
            usage = found
    if usage is not None and anthropic_input is not None and usage.prompt == 0:
        usage = Usage(anthropic_input.prompt, usage.completion, anthropic_input.cached)
    return usage, model


def _cap(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...[{len(text) - limit} more characters]"


def scrub(value: Any, secrets: frozenset[str]) -> Any:
    """:func:`hookgate.log.redact`, plus this request's own keys."""
    value = redact(value)
    if not secrets:
        return value
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {k: scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v, secrets) for v in value]
    return value


# Fields whose text comes from the client or an upstream: the only places a key can hide.
# Everything else in a record is a number, a flag, or a name hookgate itself chose.
_FREE_TEXT = (
    "trace_id",
    "metadata",
    "model",
    "model_sent",
    "model_answered",
    "config_id",
    "error_message",
    "request_body",
    "response_body",
)


def _rendered(secrets: frozenset[str]) -> list[str]:
    return [orjson.dumps(secret).decode()[1:-1] for secret in secrets]


def request_secrets(ctx: RequestContext) -> frozenset[str]:
    """Keys this request could carry: every target's key, and the key headers it came with."""
    found = {t.api_key for t in ctx.plan.leaves() if t.api_key}
    for name in ("authorization", "x-api-key", "x-portkey-api-key", "x-portkey-virtual-key"):
        value = ctx.headers.get(name)
        if value:
            found.add(value)
            if value.lower().startswith("bearer "):
                found.add(value[7:].strip())
    return frozenset(s for s in found if len(s) >= 4)


@dataclass(frozen=True, slots=True)
class Measured:
    """The tokens an answer used, where they were counted, and their price."""

    usage: Usage | None
    source: str | None
    """``response``, ``stream`` or ``estimated``; None when nothing could be counted."""
    model_answered: str | None
    sent_model: str | None
    cost: float | None


def measure(
    ctx: RequestContext, response: Response | StreamResponse | None, prices: PriceTable
) -> Measured:
    """Count the tokens of an answer (its ``usage``, a stream's last usage, or an estimate of
    a stream's text) and price them by the model that answered."""
    data: Any = None
    if isinstance(response, Response):
        try:
            data = response.json()
        except orjson.JSONDecodeError:
            data = None
    usage = None
    source = None
    model_answered = None
    if isinstance(data, dict):
        usage = usage_of(data.get("usage"))
        source = "response" if usage is not None else None
        if isinstance(data.get("model"), str):
            model_answered = data["model"]
    elif ctx.events:
        usage, model_answered = _stream_usage_and_model(ctx.events)
        source = "stream" if usage is not None else None
        if usage is None:
            usage = Usage(
                estimate_tokens(_prompt_text(ctx.body)),
                estimate_tokens(_stream_text(ctx.events)),
            )
            source = "estimated"
    requested = ctx.model
    sent_model = None
    target = ctx.target
    if target is not None:
        override = target.override_params.get("model")
        sent_model = override if isinstance(override, str) else requested
    priced_model = model_answered or sent_model or requested
    return Measured(
        usage, source, model_answered, sent_model, prices.cost(priced_model, usage)
    )


def build_record(
    seen: Seen,
    prices: PriceTable,
    *,
    log_bodies: bool = False,
    max_body_chars: int = 2048,
) -> tuple[dict[str, Any], str]:
    """The record for one finished request and its JSON text (see the module docstring)."""
    ctx = seen.ctx
    target = ctx.target
    response = seen.response
    attempts = ctx.attempts
    paths = []
    for attempt in attempts:
        if attempt.path not in paths:
            paths.append(attempt.path)

    measured = measure(ctx, response, prices)
    usage, usage_source = measured.usage, measured.source
    model_answered, sent_model = measured.model_answered, measured.sent_model
    requested = ctx.model
    hit = seen.cache_status in CACHE_HITS
    cost = measured.cost
    if hit:
        cost_saved, cost = cost, (0.0 if usage is not None else None)
    else:
        cost_saved = None

    upstream = sum(a.latency for a in attempts if a.latency is not None) if attempts else None
    ttft = None
    if ctx.stream and ctx.first_byte is not None and ctx.events:
        ttft = ctx.first_byte - ctx.started

    error = seen.error
    secrets = request_secrets(ctx)
    principal = ctx.principal
    record: dict[str, Any] = {
        "timestamp": datetime.fromtimestamp(ctx.created, UTC).isoformat(timespec="milliseconds"),
        "ts": ctx.created,
        "trace_id": ctx.trace_id,
        "endpoint": ctx.endpoint,
        "metadata": dict(ctx.metadata),
        "provider": target.provider if target is not None else None,
        "model": requested,
        "model_sent": sent_model,
        "model_answered": model_answered,
        "target": ctx.last_used_option,
        "config_id": ctx.plan.config_id,
        # The number (1, 2, ...) is what the stores index and filter on; the id pins it.
        "config_version": _version_number(ctx.plan),
        "config_version_id": ctx.plan.config_version,
        "workspace": principal.workspace if principal is not None else None,
        "api_key_id": principal.key_id if principal is not None else None,
        "status": seen.status,
        "stream": ctx.stream,
        "completed": seen.completed,
        "latency_ms": _ms(ctx.elapsed),
        "upstream_ms": _ms(upstream),
        "ttft_ms": _ms(ttft),
        "attempts": [
            {
                "path": a.path,
                "provider": a.provider,
                "retry": a.retry,
                "status": a.status,
                "error": a.error,
                "delay_ms": _ms(a.delay),
                "latency_ms": _ms(a.latency),
            }
            for a in attempts
        ],
        "retries": sum(1 for a in attempts if a.retry > 0),
        "fallbacks": max(len(paths) - 1, 0),
        "retry_attempt_count": ctx.retry_attempt_count,
        "cache_status": seen.cache_status,
        "cache_similarity": seen.cache_similarity,
        "cache_reason": seen.cache_reason,
        "prompt_tokens": usage.prompt if usage is not None else None,
        "completion_tokens": usage.completion if usage is not None else None,
        "total_tokens": usage.total if usage is not None else None,
        "cached_tokens": usage.cached if usage is not None else None,
        "usage_source": usage_source,
        "cost_usd": cost,
        "cost_saved_usd": cost_saved,
        "error_type": type(error).__name__ if error is not None else None,
        "error_code": error.code if error is not None else None,
        "error_message": error.message if error is not None else None,
    }
    if log_bodies:
        record["request_body"] = _cap(orjson.dumps(ctx.body).decode(), max_body_chars)
        if isinstance(response, Response):
            record["response_body"] = _cap(response.body.decode(errors="replace"), max_body_chars)
        elif ctx.events:
            record["response_body"] = _cap(_stream_text(ctx.events), max_body_chars)
    text = orjson.dumps(record, default=str).decode()
    if may_hold_secret(text, _rendered(secrets)):
        for key in _FREE_TEXT:
            value = record.get(key)
            if value:
                record[key] = scrub(value, secrets)
        text = orjson.dumps(record, default=str).decode()
    return record, text


def _version_number(plan: Any) -> int | None:
    """The stored config version's number; a store that does not count versions may still
    name them by number (``"3"``)."""
    if plan.config_number is not None:
        return int(plan.config_number)
    version = plan.config_version
    return int(version) if isinstance(version, str) and version.isdigit() else None

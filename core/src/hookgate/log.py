"""structlog set-up for the CLI and the server, with secrets redacted from every record.

Embedding apps keep their own logging set-up; hookgate never configures logging on import.
Any app can add :func:`redact_secrets` to its own processor chain.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import orjson
import structlog

__all__ = [
    "REDACTED",
    "configure_logging",
    "may_hold_secret",
    "redact",
    "redact_secrets",
    "register_secret",
]

REDACTED = "[redacted]"

# Field names whose values are secrets wherever they appear in a record.
SECRET_FIELDS = frozenset(
    {
        "api_key",
        "apikey",
        "api-key",
        "authorization",
        "x-api-key",
        "x-portkey-api-key",
        "x-portkey-virtual-key",
        "virtual_key",
        "password",
        "secret",
        "token",
        "access_token",
    }
)
# Bearer tokens and the key shapes providers use, inside free text.
_SECRET_TEXT = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}|\b(sk-|sk_)[A-Za-z0-9_-]{8,}")
_known: set[str] = set()
# What may_hold_secret looks for in lower-cased rendered JSON: a superset of what redact()
# replaces, as plain substring tests (a regex over the whole text is ten times slower). Every
# field name in SECRET_FIELDS ends in one of the last five, followed by the closing quote.
_SUSPECT = ("bearer", "sk-", "sk_", 'key"', 'authorization"', 'password"', 'secret"', 'token"')
_known_rendered: set[str] = set()


def register_secret(value: str | None) -> None:
    """Redact this exact value wherever it appears (keys read from plugins.toml)."""
    if value and len(value) >= 6:
        _known.add(value)
        _known_rendered.add(orjson.dumps(value).decode()[1:-1])


def may_hold_secret(text: str, extra: Iterable[str] = ()) -> bool:
    """A fast, conservative test of JSON rendered by orjson (a log record): False means that
    :func:`redact` would change nothing in the values it was rendered from, and that none of
    ``extra`` (keys of this request, as they appear rendered) occurs in it."""
    lowered = text.lower()
    for suspect in _SUSPECT:
        if suspect in lowered:
            return True
    return any(secret in text for secret in _known_rendered) or any(
        secret in text for secret in extra
    )


def redact(value: Any) -> Any:
    """A copy of ``value`` with secrets replaced by ``[redacted]``."""
    if isinstance(value, str):
        for secret in _known:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return _SECRET_TEXT.sub(lambda m: (m.group(1) or "") + REDACTED, value)
    if isinstance(value, dict):
        return {
            k: REDACTED if isinstance(k, str) and k.lower() in SECRET_FIELDS and v else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(redact(v) for v in value)
    return value


def redact_secrets(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: :func:`redact` every field."""
    for key, value in list(event_dict.items()):
        if key.lower() in SECRET_FIELDS and value:
            event_dict[key] = REDACTED
        elif isinstance(value, str | dict | list | tuple):
            event_dict[key] = redact(value)
    return event_dict


def configure_logging(level: str = "warning", json: bool | None = None) -> None:
    """Log to stderr: JSON lines, or a console renderer when stderr is a terminal."""
    if json is None:
        json = not sys.stderr.isatty()
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        # No cache_logger_on_first_use: a cached module-level logger would keep this
        # configuration for good, and an embedding app (or a test) could not change it later.
    )

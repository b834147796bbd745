"""Portkey's request headers in, Portkey's (and hookgate's) response headers out."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import orjson

from ..auth import OPERATOR, Principal
from ..context import RequestContext
from ..errors import AuthenticationError, BadRequestError
from ..gateway import CallOptions
from ..settings import ServerSettings

_REASON_SAFE = " !\"#$&'()*+,-./:;<=>?@[]^_`{|}~"

if TYPE_CHECKING:
    from ..plugins import Hooks

__all__ = [
    "SECRET_HEADERS",
    "authenticate",
    "request_options",
    "response_headers",
]

# The portkey-ai SDK drives an inner openai client whose key is this literal text when the
# caller gave no provider key: it is a placeholder, never a key to forward.
PORTKEY_PLACEHOLDER_KEYS = frozenset({"OPENAI_API_KEY", "PORTKEY_API_KEY", "dummy", ""})

# Headers that carry secrets: never kept on the request context, never forwarded.
SECRET_HEADERS = frozenset(
    {
        "authorization",
        "x-api-key",
        "api-key",
        "x-portkey-api-key",
        "x-portkey-virtual-key",
        "cookie",
        "proxy-authorization",
    }
)


def _bearer(headers: Mapping[str, str]) -> str | None:
    """The caller's provider key: ``Authorization: Bearer``, else ``x-api-key`` (Anthropic's)."""
    value = headers.get("authorization")
    if not value:
        key = headers.get("x-api-key")
        return None if key is None or key in PORTKEY_PLACEHOLDER_KEYS else key
    scheme, _, token = value.partition(" ")
    token = token.strip() if scheme.lower() == "bearer" else value.strip()
    return None if token in PORTKEY_PLACEHOLDER_KEYS else token


def _is_gateway_key(candidate: str | None, settings: ServerSettings) -> bool:
    if not candidate:
        return False
    encoded = candidate.encode("utf-8", "surrogateescape")  # compare_digest refuses non-ASCII str
    return any(hmac.compare_digest(encoded, key.encode()) for key in settings.api_keys)


def authenticate(
    headers: Mapping[str, str], settings: ServerSettings, hooks: Hooks
) -> tuple[Principal | None, str | None]:
    """Who sends this request, and the gateway key they sent (so it is never mistaken for a
    provider key). A key of ``[server] api_keys`` is the operator; any other is offered to
    the ``authenticate`` hook, whose plugin may refuse it. Raise 401 when keys are required
    and none matched; (None, None) when the deployment has no keys at all."""
    portkey = headers.get("x-portkey-api-key") or None
    bearer = _bearer(headers) if settings.api_key_in_authorization else None
    if settings.api_keys:
        if _is_gateway_key(portkey, settings):
            return OPERATOR, portkey
        if _is_gateway_key(bearer, settings):
            return OPERATOR, bearer
    token = portkey or bearer
    principal = hooks.authenticate(token, headers)
    if principal is not None:
        return principal, token
    if settings.api_keys:
        raise AuthenticationError("a valid gateway key is required in the x-portkey-api-key header")
    return None, None


def _flag(value: str | None) -> bool:
    return value is not None and value.strip().lower() in ("true", "1", "yes")


def request_options(
    headers: Mapping[str, str],
    settings: ServerSettings,
    gateway_key: str | None = None,
    principal: Principal | None = None,
) -> tuple[str | None, CallOptions]:
    """The config (JSON text or id, unparsed) and per-call options a request's headers carry.

    :param gateway_key: the key :func:`authenticate` accepted: never a provider key.
    :param principal: who sends the request, from :func:`authenticate`.
    """
    api_key = _bearer(headers)
    if (
        api_key is not None
        and settings.api_key_in_authorization
        and (api_key == gateway_key or _is_gateway_key(api_key, settings))
    ):
        api_key = None  # the gateway's own key, not a provider's
    metadata: dict[str, str] = {}
    raw_metadata = headers.get("x-portkey-metadata")
    if raw_metadata:
        try:
            parsed: Any = orjson.loads(raw_metadata)
        except orjson.JSONDecodeError as exc:
            raise BadRequestError(
                "x-portkey-metadata must be a JSON object", param="x-portkey-metadata"
            ) from exc
        if not isinstance(parsed, dict):
            raise BadRequestError(
                "x-portkey-metadata must be a JSON object", param="x-portkey-metadata"
            )
        metadata = {
            str(k): v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in parsed.items()
        }
    timeout = None
    raw_timeout = headers.get("x-portkey-request-timeout")
    if raw_timeout:
        try:
            timeout = float(raw_timeout) / 1000
        except ValueError:
            timeout = -1.0
        if not timeout > 0:
            raise BadRequestError(
                "x-portkey-request-timeout must be a positive number of milliseconds",
                param="x-portkey-request-timeout",
            )
    options = CallOptions(
        provider=headers.get("x-portkey-provider") or None,
        api_key=api_key,
        virtual_key=headers.get("x-portkey-virtual-key") or None,
        custom_host=headers.get("x-portkey-custom-host") or None,
        trace_id=headers.get("x-portkey-trace-id") or None,
        metadata=metadata,
        cache_force_refresh=_flag(headers.get("x-portkey-cache-force-refresh")),
        cache_namespace=headers.get("x-portkey-cache-namespace") or None,
        timeout=timeout,
        headers={k: v for k, v in headers.items() if k not in SECRET_HEADERS},
        principal=principal,
    )
    return headers.get("x-portkey-config") or None, options


def response_headers(ctx: RequestContext) -> dict[str, str]:
    """What happened, as Portkey names it (``x-portkey-*``) and under hookgate's own prefix."""
    values = {
        "trace-id": ctx.trace_id,
        "retry-attempt-count": str(ctx.retry_attempt_count),
        "cache-status": ctx.cache_status,
        "last-used-option-index": ctx.last_used_option,
        "provider": ctx.target.provider if ctx.target is not None else "",
    }
    headers = dict(ctx.response_headers) if ctx.response_headers else {}
    for name, value in values.items():
        headers[f"x-portkey-{name}"] = value
        headers[f"x-hookgate-{name}"] = value
    if ctx.cache_similarity is not None:
        headers["x-hookgate-cache-similarity"] = f"{ctx.cache_similarity:.4f}"
    if ctx.cache_reason is not None:
        # Header values are Latin-1: the reason's non-ASCII text (Chinese words) is %-encoded.
        headers["x-hookgate-cache-reason"] = quote(ctx.cache_reason[:300], safe=_REASON_SAFE)
    return headers

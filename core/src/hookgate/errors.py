"""Every error hookgate raises, and how each one looks on the wire.

The tree::

    HookgateError
    ├── SettingsError             plugins.toml or a plugin's settings are wrong (start-up)
    └── GatewayError              a request failed; carries HTTP status and OpenAI error type
        ├── BadRequestError       400  the client's request is wrong
        │   └── ConfigError       400  the per-request config, its id or a virtual key is wrong
        ├── AuthenticationError   401  missing or wrong gateway API key
        ├── PermissionDeniedError 403  the key is valid but its role does not allow this
        ├── NotFoundError         404  unknown route or resource
        ├── ConflictError         409  the change is based on a stale version, or clashes
        ├── RequestTimeoutError   408  the request's time budget ran out
        ├── PayloadTooLargeError  413  the request body is over the limit
        ├── RateLimitError        429  a rate limit or spend budget of the gateway's refused it
        ├── UnavailableError      503  a backend the gateway needs (a store) is unreachable
        └── ProviderError         the upstream answered with an error, or not at all
            ├── UpstreamConnectionError  502  connection refused, reset or dropped
            ├── UpstreamTimeoutError     504  the upstream did not answer in time
            └── UpstreamProtocolError    502  the upstream's answer could not be understood
                └── UpstreamRedirectError 502  the upstream redirected (never followed)

A ``ProviderError`` with a ``status`` keeps the upstream's status and body on the wire.
Messages never contain secrets: API keys travel in ``Target`` objects, never in errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "ConfigError",
    "ConflictError",
    "GatewayError",
    "HookgateError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "ProviderError",
    "RateLimitError",
    "RequestTimeoutError",
    "SettingsError",
    "UnavailableError",
    "UpstreamConnectionError",
    "UpstreamProtocolError",
    "UpstreamRedirectError",
    "UpstreamTimeoutError",
]


class HookgateError(Exception):
    """Base of every error hookgate raises on purpose."""


class SettingsError(HookgateError):
    """plugins.toml, an environment variable it names, or a plugin's settings are invalid.

    Raised at start-up, before any request is served; the message names the file,
    the plugin and the key.
    """


class GatewayError(HookgateError):
    """A request could not be answered. Rendered as ``{"error": {...}}`` with ``status``."""

    status: int = 500
    type: str = "api_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.param = param

    @property
    def http_status(self) -> int:
        """The status the gateway answers with."""
        return self.status

    def to_dict(self) -> dict[str, Any]:
        """The OpenAI-shaped error body."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())


class BadRequestError(GatewayError):
    status = 400
    type = "invalid_request_error"


class ConfigError(BadRequestError):
    """The request's config (inline, by id) or a virtual key it names is invalid."""

    code = "invalid_config"


class AuthenticationError(GatewayError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDeniedError(GatewayError):
    status = 403
    type = "permission_error"
    code = "permission_denied"


class NotFoundError(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ConflictError(GatewayError):
    status = 409
    type = "invalid_request_error"
    code = "conflict"


class RequestTimeoutError(GatewayError):
    status = 408
    type = "timeout_error"
    code = "request_timeout"


class PayloadTooLargeError(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "payload_too_large"


class RateLimitError(GatewayError):
    """The gateway's own limits refused the request; no upstream was called.

    ``retry_after`` is the number of seconds until the limit that refused it resets (the
    server sends it as ``retry-after``); None when it never resets on its own.
    """

    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        code: str | None = None,
        type: str | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after
        if type is not None:
            self.type = type


class UnavailableError(GatewayError):
    status = 503
    type = "api_error"
    code = "service_unavailable"


class ProviderError(GatewayError):
    """The upstream failed.

    ``status`` is the upstream's HTTP status, or None when no answer arrived (then the
    gateway answers 502/504). ``body`` is the upstream's error body, parsed when it was
    JSON. ``retry_after`` is the delay the upstream asked for, in seconds.
    """

    type = "api_error"

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        status: int | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        retry_after: float | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.provider = provider
        self.upstream_status = status
        self.body = body
        self.headers = dict(headers or {})
        self.retry_after = retry_after
        if status is not None:
            self.status = status

    @property
    def answered(self) -> bool:
        """True when the upstream answered with a status (as opposed to no answer at all)."""
        return self.upstream_status is not None

    def to_dict(self) -> dict[str, Any]:
        # Keep the upstream's own error object when it sent one, Portkey-style:
        # message prefixed with the provider, and a top-level "provider" field.
        upstream = self.body.get("error") if isinstance(self.body, dict) else None
        if isinstance(upstream, dict):
            error = dict(upstream)
            message = error.get("message")
            error["message"] = f"{self.provider} error: {message if message else self.message}"
            error.setdefault("type", self.type)
            error.setdefault("param", None)
            error.setdefault("code", self.code)
        else:
            error = {
                "message": f"{self.provider} error: {self.message}",
                "type": self.type,
                "param": None,
                "code": self.code,
            }
        return {"error": error, "provider": self.provider}


class UpstreamConnectionError(ProviderError):
    status = 502
    code = "upstream_connection_error"


class UpstreamTimeoutError(ProviderError):
    status = 504
    type = "timeout_error"
    code = "upstream_timeout"


class UpstreamProtocolError(ProviderError):
    status = 502
    code = "upstream_invalid_response"


class UpstreamRedirectError(UpstreamProtocolError):
    """The upstream answered 3xx. Redirects are never followed (they would take the request
    and its key to a host nobody allowed)."""

    code = "upstream_redirect"

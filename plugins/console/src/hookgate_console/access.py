"""Who is looking at the console, and what they may do.

A console user is a gateway key. It arrives one of two ways:

- typed into the login page once: the server then sets a session cookie (``HttpOnly``,
  ``SameSite=Strict``, ``Path=/console``, ``Secure`` over HTTPS) that holds the key sealed
  with AES-GCM under the console's secret, and an expiry. The key is checked again on every
  request, so a revoked key stops working at once, session or not;
- or sent as ``x-portkey-api-key`` on each request (scripts, curl).

The key becomes a :class:`Viewer`: a key of ``[server] api_keys`` is the operator (admin of
every workspace); any other key is offered to the control plane through the core's
``authenticate`` hook when one is installed. No key, no data: the pages ask to log in.

Forms carry a CSRF token bound to the session (an HMAC of the sealed cookie), checked on every
state-changing request along with the ``Origin`` header; the login form uses a double-submit
cookie. A request authenticated by the header carries no ambient credential and needs neither.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["COOKIE", "LOGIN_COOKIE", "Sessions", "Viewer"]

COOKIE = "hookgate_console"
LOGIN_COOKIE = "hookgate_console_login"

Role = Literal["admin", "member", "viewer"]


@dataclass(frozen=True, slots=True)
class Viewer:
    """A console user: the gateway key's name, role and workspace."""

    name: str
    role: Role
    workspace: str | None
    """The only workspace whose data this user sees; None: every workspace (an admin)."""
    key: str
    """The gateway key itself: sent on to the admin API so that it applies its own rules."""

    @property
    def can_edit(self) -> bool:
        return self.role in ("admin", "member")

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def __repr__(self) -> str:  # never the key
        return f"Viewer(name={self.name!r}, role={self.role!r}, workspace={self.workspace!r})"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Sessions:
    """Seals gateway keys into cookies and makes and checks CSRF tokens."""

    def __init__(self, secret: str | None, hours: float) -> None:
        # Without a configured secret, one per server start: made before `hookgate serve`
        # forks its workers, so every worker of one server opens every session.
        raw = secret.encode() if secret else os.urandom(32)
        self._key = hashlib.sha256(b"hookgate-console-session\0" + raw).digest()
        self._mac = hashlib.sha256(b"hookgate-console-csrf\0" + raw).digest()
        self._aead = AESGCM(self._key)
        self.max_age = int(hours * 3600)

    def seal(self, key: str) -> str:
        nonce = os.urandom(12)
        body = orjson.dumps({"k": key, "exp": int(time.time()) + self.max_age})
        return _b64(nonce + self._aead.encrypt(nonce, body, COOKIE.encode()))

    def open(self, cookie: str | None) -> str | None:
        """The gateway key a session cookie holds; None when it is absent, forged or old."""
        if not cookie or len(cookie) > 4096:
            return None
        try:
            raw = _unb64(cookie)
            body = orjson.loads(self._aead.decrypt(raw[:12], raw[12:], COOKIE.encode()))
        except (ValueError, InvalidTag, orjson.JSONDecodeError):
            return None
        if not isinstance(body, dict) or not isinstance(body.get("k"), str):
            return None
        if not isinstance(body.get("exp"), int) or body["exp"] < time.time():
            return None
        return body["k"]

    def csrf_for(self, session: str) -> str:
        return _b64(hmac.new(self._mac, session.encode(), hashlib.sha256).digest())

    def csrf_ok(self, session: str | None, token: str | None) -> bool:
        if not session or not token:
            return False
        return hmac.compare_digest(self.csrf_for(session), token)

    @staticmethod
    def login_token() -> str:
        return _b64(os.urandom(24))


def same_origin(headers: Mapping[str, str], scheme: str, host: str | None) -> bool:
    """A state-changing browser request must come from a page of this origin: ``Origin``
    (or, without it, ``Referer``) must name this host; a request with neither is refused."""
    origin = headers.get("origin")
    if origin is None:
        referer = headers.get("referer")
        if not referer:
            return False
        origin = "/".join(referer.split("/")[:3])
    if origin == "null" or not host:
        return False
    return origin in (f"{scheme}://{host}", f"http://{host}", f"https://{host}")


Authenticate = Callable[[str], "Viewer | None"]


def operator_keys(api_keys: list[str] | tuple[str, ...]) -> Authenticate:
    """Recognises ``[server] api_keys``: the operator, admin of every workspace."""
    keys = tuple(k.encode() for k in api_keys if k)

    def check(key: str) -> Viewer | None:
        encoded = key.encode("utf-8", "surrogateescape")
        for index, known in enumerate(keys):
            if hmac.compare_digest(encoded, known):
                return Viewer(f"server.api_keys[{index}]", "admin", None, key)
        return None

    return check


def viewer_from_principal(principal: Any, key: str) -> Viewer | None:
    """A :class:`Viewer` from a control plane's principal (``role``, ``workspace``, ``name``)."""
    if principal is None:
        return None
    found = getattr(principal, "role", None)
    role: Role = found if found in ("admin", "member") else "viewer"
    workspace = getattr(principal, "workspace", None)
    name = getattr(principal, "name", None) or getattr(principal, "key_id", None) or "key"
    return Viewer(str(name), role, None if role == "admin" else workspace, key)

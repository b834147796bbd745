"""The deployment secret: one random value per deployment, for keyed hashes.

Plugins that derive identifiers from secrets (the exact cache's tenant partitions, a store's
key fingerprints) hash them with this secret (HMAC), so that whoever can read the backend
cannot confirm a guessed provider key offline. Every process of a deployment must see the
same secret; it comes from, in order:

1. ``[gateway] secret`` in plugins.toml (e.g. ``secret = "${HOOKGATE_SECRET}"``);
2. the ``HOOKGATE_SECRET`` environment variable;
3. a store every instance shares, when a plugin keeps one (the control plane on PostgreSQL:
   the ``deployment_secret`` hook): generated once, by the first instance, and read by every
   other, so instances behind one load balancer derive the same cache keys;
4. ``hookgate.secret`` beside plugins.toml: generated on first start (32 random bytes, mode
   0600) and read on every later one, so the workers of a server and its restarts agree;
5. without a plugins.toml (settings from a dict), a random secret for this process only.

Several instances sharing one Redis must share the secret: set it (1 or 2) on each, or give
them a shared store (3). Step 3 needs :func:`resolve_deployment_secret` (async, through the
gateway's hooks): :func:`deployment_secret` alone knows only 1, 2, 4 and 5.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import stat
import time
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from .errors import SettingsError
from .settings import Settings

if TYPE_CHECKING:
    from .gateway import Gateway

__all__ = [
    "SECRET_ENV",
    "SECRET_FILE",
    "deployment_secret",
    "keyed_digest",
    "resolve_deployment_secret",
]

SECRET_ENV = "HOOKGATE_SECRET"
SECRET_FILE = "hookgate.secret"

log = structlog.get_logger("hookgate.secrets")

_PROCESS_SECRET = secrets.token_bytes(32)


def deployment_secret(settings: Settings) -> bytes:
    """This deployment's secret (see the module docstring); raises :class:`SettingsError`
    when the secret file exists but cannot be read or is empty."""
    if settings.gateway.secret:
        return settings.gateway.secret.encode()
    if env := os.environ.get(SECRET_ENV):
        return env.encode()
    source = Path(settings.source)
    if not source.is_file():
        return _PROCESS_SECRET
    return _kept_secret(source.parent / SECRET_FILE)


async def resolve_deployment_secret(gateway: Gateway) -> bytes:
    """This deployment's secret, asking a shared store (step 3) before the file beside
    plugins.toml; when the store cannot be reached, a secret of this process only (cache
    entries of this process are then not found by others, never served to another tenant)."""
    settings = gateway.settings
    if settings.gateway.secret or os.environ.get(SECRET_ENV):
        return deployment_secret(settings)
    try:
        kept = await gateway.hooks.deployment_secret(gateway)
    except Exception as exc:
        log.warning(
            "deployment_secret_unavailable",
            error=f"{type(exc).__name__}: {exc}",
            consequence="this process uses a secret of its own until restarted",
            advice=f"set {SECRET_ENV} alike on every instance",
        )
        return _PROCESS_SECRET
    if kept:
        return kept.encode()
    return deployment_secret(settings)


def _kept_secret(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass  # kept from an earlier start, or another worker just made it
    except OSError as exc:
        raise SettingsError(
            f"cannot create the deployment secret {path}: {exc.strerror}; set "
            f"{SECRET_ENV} or [gateway] secret instead"
        ) from exc
    else:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
        log.info("deployment_secret_created", path=str(path))
    for _ in range(50):  # a worker racing the one writing it may see it empty for a moment
        try:
            text = path.read_text(encoding="ascii").strip()
        except OSError as exc:
            raise SettingsError(
                f"cannot read the deployment secret {path}: {exc.strerror}"
            ) from exc
        except UnicodeDecodeError as exc:
            raise SettingsError(f"the deployment secret {path} is not text") from exc
        if text:
            break
        time.sleep(0.01)
    else:
        raise SettingsError(f"the deployment secret {path} is empty: delete it or fill it")
    with contextlib.suppress(OSError):
        if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning(
                "deployment_secret_readable_by_others",
                path=str(path),
                advice="chmod 600 it",
            )
    return text.encode()


def keyed_digest(secret: bytes, *parts: str | bytes, size: int = 16) -> str:
    """HMAC-SHA256 of ``parts`` (each length-prefixed, so parts cannot run together) under
    ``secret``, as ``2 * size`` hex digits."""
    mac = hmac.new(secret, digestmod=hashlib.sha256)
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        mac.update(len(data).to_bytes(8, "big"))
        mac.update(data)
    return mac.hexdigest()[: 2 * size]

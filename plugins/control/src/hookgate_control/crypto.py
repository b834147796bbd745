"""Provider keys at rest: AES-256-GCM under a master key the store never holds.

The master key comes from ``HOOKGATE_MASTER_KEY`` (32 bytes, URL-safe base64, as
``hookgate vkeys rotate-master-key`` prints one) or from a key file beside plugins.toml,
created on first start with mode 0600. Each secret is sealed with a fresh 96-bit nonce and
the virtual key's id as associated data, so a ciphertext copied onto another row does not
open. Rows remember which master key sealed them (the first 16 hex digits of its SHA-256), so
a worker notices a rotation and re-reads the key file.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["ENV_VAR", "MasterKey", "MasterKeyError", "MasterKeyMissing", "generate_key", "hint"]

ENV_VAR = "HOOKGATE_MASTER_KEY"
_NONCE = 12


class MasterKeyError(Exception):
    """The master key is missing, malformed, or not the one a secret was sealed with."""


class MasterKeyMissing(MasterKeyError):
    """A shared store without ``HOOKGATE_MASTER_KEY``: no key file stands in for it, since a
    key kept beside the data it seals (or on one instance's disk) protects nothing."""


def generate_key() -> str:
    """A new master key, as text for the environment or the key file."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def _decode(text: str, where: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text.strip().encode())
    except (binascii.Error, ValueError) as exc:
        raise MasterKeyError(f"{where} is not URL-safe base64") from exc
    if len(raw) != 32:
        raise MasterKeyError(f"{where} must hold 32 bytes (AES-256), not {len(raw)}")
    return raw


def hint(secret: str) -> str:
    """What a list may show of a secret: its last four characters."""
    if len(secret) <= 8:
        return "****"
    return f"{secret[:3]}...{secret[-4:]}"


class MasterKey:
    """The key that seals provider keys; ``id`` names it without revealing it."""

    def __init__(self, raw: bytes, source: str) -> None:
        self._aead = AESGCM(raw)
        self.id = hashlib.sha256(raw).hexdigest()[:16]
        self.source = source

    @classmethod
    def from_text(cls, text: str, source: str) -> MasterKey:
        return cls(_decode(text, source), source)

    @classmethod
    def from_env(cls, what: str) -> MasterKey:
        """From ``$HOOKGATE_MASTER_KEY`` only; :class:`MasterKeyMissing` names it when unset."""
        env = os.environ.get(ENV_VAR)
        if not env:
            raise MasterKeyMissing(
                f"{what} needs the master key from {ENV_VAR} (32 random bytes, URL-safe "
                f"base64), set alike on every instance: with a shared store no key file is "
                f"created, since a key kept beside the keys it seals protects nothing"
            )
        return cls.from_text(env, ENV_VAR)

    @classmethod
    def load(cls, key_file: Path, *, create: bool = True) -> MasterKey:
        """From ``$HOOKGATE_MASTER_KEY``, else ``key_file`` (created, 0600, if ``create``)."""
        env = os.environ.get(ENV_VAR)
        if env:
            return cls.from_text(env, ENV_VAR)
        try:
            return cls.from_text(key_file.read_text(encoding="ascii"), str(key_file))
        except FileNotFoundError:
            if not create:
                raise MasterKeyError(f"no master key: set {ENV_VAR} or create {key_file}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise MasterKeyError(f"cannot read the master key file {key_file}: {exc}") from exc
        key_file.parent.mkdir(parents=True, exist_ok=True)
        text = generate_key()
        try:
            # O_EXCL: when two workers start at once, one writes and the other reads its key.
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return cls.from_text(key_file.read_text(encoding="ascii"), str(key_file))
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(text + "\n")
        return cls.from_text(text, str(key_file))

    def seal(self, secret: str, row_id: str) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, secret.encode(), row_id.encode())

    def open(self, sealed: bytes, row_id: str) -> str:
        try:
            return self._aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], row_id.encode()).decode()
        except InvalidTag:
            raise MasterKeyError(
                "a virtual key could not be decrypted: not sealed with this master key"
            ) from None


def write_key_file(key_file: Path, text: str) -> None:
    """Replace ``key_file`` atomically with ``text`` (mode 0600 from the start)."""
    tmp = key_file.with_name(key_file.name + ".new")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(text + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, key_file)

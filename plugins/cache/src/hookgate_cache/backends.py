"""Where entries live: an in-process LRU (one machine) or Redis (several gateway processes).

Both answer ``get`` with an :class:`Entry` or None and never raise: a backend that fails or
is slow counts as a miss, so the cache never turns an answerable request into an error.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import structlog

from .entries import Entry, decode

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["Backend", "MemoryBackend", "RedisBackend"]

log = structlog.get_logger("hookgate_cache")


class Backend(Protocol):
    name: str

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def get(self, key: str) -> Entry | None: ...

    async def set(self, key: str, entry: Entry, ttl: float) -> None: ...


class MemoryBackend:
    """An LRU bounded by entry count and total bytes, with a time-to-live per entry."""

    name = "memory"

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, tuple[Entry, float]] = OrderedDict()
        self.size = 0
        """Bytes held (payload sizes plus a fixed allowance per entry)."""

    def __len__(self) -> int:
        return len(self._entries)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._entries.clear()
        self.size = 0

    async def get(self, key: str) -> Entry | None:
        item = self._entries.get(key)
        if item is None:
            return None
        entry, expires = item
        if expires <= time.monotonic():
            del self._entries[key]
            self.size -= entry.size
            return None
        self._entries.move_to_end(key)
        return entry

    async def set(self, key: str, entry: Entry, ttl: float) -> None:
        if entry.size > self.max_bytes:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.size -= old[0].size
        self._entries[key] = (entry, time.monotonic() + ttl)
        self.size += entry.size
        entries = self._entries
        while len(entries) > self.max_entries or self.size > self.max_bytes:
            _, (evicted, _) = entries.popitem(last=False)
            self.size -= evicted.size


class RedisBackend:
    """Entries in Redis under ``<key_prefix><partition>:<digest>``, expiring with ``PX``.

    Lookups wait at most ``lookup_timeout`` seconds, stores ``store_timeout``. After a failure
    the backend is left alone for ``backoff`` seconds (every lookup is a miss then, at no
    cost), and a warning is logged at most once per ``warn_interval``.
    """

    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str,
        lookup_timeout: float,
        store_timeout: float,
        connect_timeout: float,
        max_connections: int,
        backoff: float,
        warn_interval: float,
    ) -> None:
        self._url = url
        self.key_prefix = key_prefix
        self.lookup_timeout = lookup_timeout
        self.store_timeout = store_timeout
        self.connect_timeout = connect_timeout
        self.max_connections = max_connections
        self.backoff = backoff
        self.warn_interval = warn_interval
        self.address = _address(url)
        """Host and port (or socket path) for logs: never the URL, which may hold a password."""
        self._client: Redis | None = None
        self._errors: tuple[type[BaseException], ...] = (OSError, TimeoutError)
        self._skip_until = 0.0
        self._next_warning = 0.0
        self._suppressed = 0
        self._failing = False

    async def start(self) -> None:
        # Imported here, not at module import: listing plugins must stay cheap.
        from redis.asyncio import BlockingConnectionPool, Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import RedisError

        self._errors = (RedisError, OSError, TimeoutError)
        pool = BlockingConnectionPool.from_url(
            self._url,
            max_connections=self.max_connections,
            timeout=None,  # waiting for a free connection is bounded by the call's timeout
            socket_timeout=max(self.lookup_timeout, self.store_timeout),
            socket_connect_timeout=self.connect_timeout,
            retry=Retry(NoBackoff(), 0),  # no retries: a miss is cheaper than waiting
        )
        self._client = Redis(connection_pool=pool, retry=Retry(NoBackoff(), 0))

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose(close_connection_pool=True)

    async def problem(self) -> str | None:
        """Why Redis cannot serve now (for ``/ready``), or None: a PING within a second."""
        if self._client is None:
            return f"redis at {self.address}: not connected"
        try:
            await asyncio.wait_for(self._client.ping(), timeout=1.0)
        except (TimeoutError, *self._errors) as exc:  # type: ignore[misc]  # a starred tuple of exception types
            return f"redis at {self.address}: {_describe(exc)}"
        return None

    async def get(self, key: str) -> Entry | None:
        client = self._client
        if client is None or self._skip_until > time.monotonic():
            return None
        try:
            async with asyncio.timeout(self.lookup_timeout):
                blob: Any = await client.get(self.key_prefix + key)
        except self._errors as exc:
            self._failed("lookup", exc)
            return None
        self._succeeded()
        if blob is None:
            return None
        try:
            return decode(blob)
        except (ValueError, KeyError, TypeError):
            log.warning("cache_entry_unreadable", backend="redis", key=self.key_prefix + key)
            return None

    async def set(self, key: str, entry: Entry, ttl: float) -> None:
        client = self._client
        if client is None or self._skip_until > time.monotonic():
            return
        blob = entry.encode()
        try:
            async with asyncio.timeout(self.store_timeout):
                await client.set(self.key_prefix + key, blob, px=max(1, math.ceil(ttl * 1000)))
        except self._errors as exc:
            self._failed("store", exc)
            return
        self._succeeded()

    def _failed(self, operation: str, exc: BaseException) -> None:
        now = time.monotonic()
        self._skip_until = now + self.backoff
        self._failing = True
        if now < self._next_warning:
            self._suppressed += 1
            return
        log.warning(
            "cache_backend_unavailable",
            backend="redis",
            address=self.address,
            operation=operation,
            error=_describe(exc),
            answered_as="miss",
            suppressed_since_last_warning=self._suppressed,
            next_try_in_s=self.backoff,
        )
        self._suppressed = 0
        self._next_warning = now + self.warn_interval

    def _succeeded(self) -> None:
        if self._failing:
            self._failing = False
            log.info("cache_backend_recovered", backend="redis", address=self.address)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError) and not str(exc):
        return "TimeoutError: no answer in time"
    return f"{type(exc).__name__}: {exc}"


def _address(url: str) -> str:
    try:
        parts = urlsplit(url)
        if parts.scheme == "unix":
            return parts.path
        return f"{parts.hostname}:{parts.port or 6379}"
    except ValueError:
        return "redis"

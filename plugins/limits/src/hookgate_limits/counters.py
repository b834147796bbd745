"""Where the counts live: a table in a shared memory-mapped file (every process of one
machine) or Redis (every instance).

Both offer the same two operations, each atomic across every process that shares the counts:

- :meth:`Counters.reserve` checks a list of :class:`Charge` against their limits and, only if
  none would be exceeded, adds all of them; otherwise it adds nothing and says which one
  refused. This is what makes a burst unable to overshoot: the check and the add are one step.
- :meth:`Counters.add` adds amounts (negative ones too: a token reservation settled to the real
  usage, a reservation released) without a check.

A counter lives until its window ends (``expires``, Unix time) and then reads as zero.
"""

from __future__ import annotations

import asyncio
import fcntl
import math
import mmap
import os
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from hashlib import blake2b
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import structlog

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "BackendError",
    "Charge",
    "Counters",
    "FileCounters",
    "RedisCounters",
    "Verdict",
]

log = structlog.get_logger("hookgate_limits")

NEVER = 1e18
"""``expires`` of a counter that never resets (a budget without a period)."""


class BackendError(Exception):
    """The counters could not be read or written (Redis down, table full)."""


@dataclass(frozen=True, slots=True)
class Charge:
    """``amount`` more on counter ``key``, allowed while it stays within ``limit``.

    An ``amount`` of 0 checks that the counter is still below ``limit`` (a spend budget: the
    cost is only known afterwards)."""

    key: str
    amount: float
    limit: float
    expires: float


@dataclass(frozen=True, slots=True)
class Verdict:
    refused: int | None
    """Index of the first charge that would exceed its limit; None when all were added."""
    values: tuple[float, ...]
    """Each counter's value after the operation (before it, for a refusal)."""


def _over(value: float, charge: Charge) -> bool:
    if charge.amount > 0:
        return value + charge.amount > charge.limit + 1e-9
    return value >= charge.limit


class Counters(Protocol):
    name: str

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def reserve(self, charges: Sequence[Charge]) -> Verdict: ...

    async def add(self, charges: Sequence[Charge]) -> tuple[float, ...]: ...

    async def entries(self) -> list[tuple[str, float, float]]:
        """Every live counter as ``(key, value, expires)``, for ``hookgate limits show``."""
        ...

    async def problem(self) -> str | None: ...


# ---- one machine: a shared table in a memory-mapped file ----------------------------------

_MAGIC = b"HGLIMIT1"
_HEADER = struct.Struct("<8sII")  # magic, slots, slot size
_HEADER_SIZE = 64
_LABEL = 88
_SLOT = struct.Struct(f"<16sdd{_LABEL}s")  # key hash, expires, value, key (for listing)
_SLOT_SIZE = _SLOT.size
_NUMBERS = struct.Struct("<dd")  # expires, value: what an operation reads and writes
_EMPTY_HASH = bytes(16)
_PROBES = 64


class FileCounters:
    """An open-addressing hash table of counters in a file every process maps.

    Every worker of ``hookgate serve`` (and every ``hookgate`` command on the machine) opens
    the same file; an exclusive ``flock`` around each operation makes it atomic across them.
    An operation is a few microseconds of work on memory, so the lock is never held long and
    never across an ``await``. Slots are only ever overwritten, never emptied, so a probe
    chain never breaks; a counter whose window ended reads as zero and its slot is reused.
    """

    name = "memory"

    def __init__(self, path: Path, slots: int = 65_536) -> None:
        self.path = path
        self.slots = slots
        self._fd: int | None = None
        self._map: mmap.mmap | None = None
        self._pid = 0
        self._digests: dict[str, tuple[bytes, int]] = {}

    # The file is opened per process: a descriptor inherited across fork would share one
    # flock between parent and children, which would then not exclude each other.
    def _open(self) -> mmap.mmap:
        if self._map is not None and self._pid == os.getpid():
            return self._map
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        size = _HEADER_SIZE + self.slots * _SLOT.size
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            current = os.fstat(fd).st_size
            if current == 0:
                os.ftruncate(fd, size)
                os.pwrite(fd, _HEADER.pack(_MAGIC, self.slots, _SLOT.size), 0)
            else:
                magic, slots, slot_size = _HEADER.unpack(os.pread(fd, _HEADER.size, 0))
                if magic != _MAGIC or slot_size != _SLOT.size:
                    os.close(fd)
                    raise BackendError(f"{self.path} is not a hookgate limits table")
                self.slots = slots  # whoever created the file decided its size
                size = _HEADER_SIZE + slots * _SLOT.size
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
        self._fd = fd
        self._map = mmap.mmap(fd, size)
        self._pid = os.getpid()
        return self._map

    async def start(self) -> None:
        self._open()

    async def close(self) -> None:
        if self._map is not None and self._pid == os.getpid():
            self._map.close()
            assert self._fd is not None
            os.close(self._fd)
        self._map = None
        self._fd = None

    def _digest(self, key: str) -> tuple[bytes, int]:
        """The key's hash and first slot, remembered: the same keys recur all window long."""
        found = self._digests.get(key)
        if found is None:
            if len(self._digests) >= 4096:
                self._digests.clear()
            digest = blake2b(key.encode(), digest_size=16).digest()
            found = self._digests[key] = (digest, int.from_bytes(digest[:8], "little"))
        return found

    def _slot(self, table: mmap.mmap, key: str, now: float) -> tuple[int, float, bool]:
        """``(offset, value, found)`` of ``key``'s slot, or of the slot it would take."""
        digest, start = self._digest(key)
        slots = self.slots
        free = -1
        for probe in range(min(_PROBES, slots)):
            offset = _HEADER_SIZE + ((start + probe) % slots) * _SLOT_SIZE
            held = table[offset : offset + 16]
            if held == digest:
                expires, value = _NUMBERS.unpack_from(table, offset + 16)
                return offset, (value if expires > now else 0.0), True
            if held == _EMPTY_HASH:
                return (free if free >= 0 else offset), 0.0, False
            if free < 0 and _NUMBERS.unpack_from(table, offset + 16)[0] <= now:
                free = offset
        if free < 0:
            raise BackendError(f"the limits table {self.path} is full ({slots} slots)")
        return free, 0.0, False

    def _locked(self, charges: Sequence[Charge], check: bool) -> Verdict:
        table = self._open()
        fd = self._fd
        assert fd is not None
        now = time.time()
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            slots = [self._slot(table, charge.key, now) for charge in charges]
            if check:
                for index, charge in enumerate(charges):
                    if _over(slots[index][1], charge):
                        return Verdict(index, tuple(value for _, value, _ in slots))
            new = []
            for charge, (offset, value, found) in zip(charges, slots, strict=True):
                total = value + charge.amount
                if charge.amount:
                    if found:
                        _NUMBERS.pack_into(table, offset + 16, charge.expires, total)
                    else:
                        digest = self._digest(charge.key)[0]
                        label = charge.key.encode()[:_LABEL]
                        _SLOT.pack_into(table, offset, digest, charge.expires, total, label)
                new.append(total)
            return Verdict(None, tuple(new))
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    async def reserve(self, charges: Sequence[Charge]) -> Verdict:
        try:
            return self._locked(charges, check=True)
        except OSError as exc:
            raise BackendError(f"{self.path}: {exc}") from exc

    async def add(self, charges: Sequence[Charge]) -> tuple[float, ...]:
        try:
            return self._locked(charges, check=False).values
        except OSError as exc:
            raise BackendError(f"{self.path}: {exc}") from exc

    async def entries(self) -> list[tuple[str, float, float]]:
        table = self._open()
        now = time.time()
        found = []
        for index in range(self.slots):
            offset = _HEADER_SIZE + index * _SLOT.size
            if table[offset : offset + 16] == _EMPTY_HASH:
                continue
            _, expires, value, label = _SLOT.unpack_from(table, offset)
            if expires > now:
                found.append((label.rstrip(b"\0").decode(errors="replace"), value, expires))
        return found

    async def problem(self) -> str | None:
        try:
            self._open()
        except (OSError, BackendError) as exc:
            return f"limits table {self.path}: {exc}"
        return None


# ---- several instances: Redis ---------------------------------------------------------------

# KEYS: the counters. ARGV: n, then amount, limit, expires (Unix seconds) per key, then check
# (1 or 0) and now. Either every amount is added or none is; returns the refused index
# (0 for none) and every value as text.
_RESERVE = """
local n = tonumber(ARGV[1])
local check = tonumber(ARGV[3 * n + 2])
local now = tonumber(ARGV[3 * n + 3])
local values = {}
for i = 1, n do
  values[i] = tonumber(redis.call('GET', KEYS[i]) or '0')
end
if check == 1 then
  for i = 1, n do
    local amount = tonumber(ARGV[3 * i - 1])
    local limit = tonumber(ARGV[3 * i])
    local over
    if amount > 0 then over = values[i] + amount > limit + 1e-9 else over = values[i] >= limit end
    if over then
      local out = {i}
      for j = 1, n do out[j + 1] = tostring(values[j]) end
      return out
    end
  end
end
local out = {0}
for i = 1, n do
  local amount = tonumber(ARGV[3 * i - 1])
  local expires = tonumber(ARGV[3 * i + 1])
  local value = values[i]
  if amount ~= 0 then
    value = tonumber(redis.call('INCRBYFLOAT', KEYS[i], amount))
    if expires < 1e17 then
      redis.call('EXPIREAT', KEYS[i], math.ceil(expires) + 1)
    end
  end
  out[i + 1] = tostring(value)
end
return out
"""


class RedisCounters:
    """Counters in Redis, checked and added by one Lua script (atomic on the server)."""

    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = "hookgate:limits:",
        timeout: float = 0.25,
        connect_timeout: float = 0.25,
        max_connections: int = 64,
    ) -> None:
        self.url = url
        self.key_prefix = key_prefix
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_connections = max_connections
        self._redis: Redis | None = None
        self._script: object | None = None

    async def start(self) -> None:
        from redis.asyncio import Redis

        self._redis = Redis.from_url(
            self.url,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.connect_timeout,
            max_connections=self.max_connections,
            decode_responses=True,
        )
        self._script = self._redis.register_script(_RESERVE)

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def _run(self, charges: Sequence[Charge], check: bool) -> Verdict:
        if self._script is None:
            raise BackendError("the limits backend has not started")
        keys = [self.key_prefix + charge.key for charge in charges]
        args: list[float | int] = [len(charges)]
        for charge in charges:
            args += [charge.amount, charge.limit if math.isfinite(charge.limit) else 1e300]
            args.append(charge.expires)
        args += [1 if check else 0, time.time()]
        try:  # socket_timeout bounds the call: no task per operation for a timer
            out = await self._script(keys=keys, args=args)  # type: ignore[operator]
        except Exception as exc:  # redis-py's errors, timeouts, a closed pool
            raise BackendError(f"redis: {type(exc).__name__}: {exc}") from exc
        refused = int(out[0])
        return Verdict(refused - 1 if refused else None, tuple(float(v) for v in out[1:]))

    async def reserve(self, charges: Sequence[Charge]) -> Verdict:
        return await self._run(charges, check=True)

    async def add(self, charges: Sequence[Charge]) -> tuple[float, ...]:
        return (await self._run(charges, check=False)).values

    async def entries(self) -> list[tuple[str, float, float]]:
        if self._redis is None:
            raise BackendError("the limits backend has not started")
        found = []
        try:
            async for name in self._redis.scan_iter(match=self.key_prefix + "*", count=500):
                value, ttl = await self._redis.get(name), await self._redis.ttl(name)
                if value is None:
                    continue
                expires = time.time() + ttl if ttl and ttl > 0 else NEVER
                found.append((name[len(self.key_prefix) :], float(value), expires))
        except Exception as exc:
            raise BackendError(f"redis: {type(exc).__name__}: {exc}") from exc
        return found

    async def problem(self) -> str | None:
        if self._redis is None:
            return "redis: not started"
        try:
            await asyncio.wait_for(self._redis.ping(), 1.0)
        except Exception as exc:
            return f"redis: {type(exc).__name__}: {exc}"
        return None

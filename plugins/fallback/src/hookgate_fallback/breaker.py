"""The circuit breaker: per-target failure counts, in this process or shared through Redis.

A target's circuit is *closed* while it works. ``failure_threshold`` failures within
``window`` seconds *open* it: routing skips it for ``cooldown`` seconds. Then it is
*half-open*: one request at a time may make a trial call to it (it claims the trial; the others
keep skipping the target); the trial's success closes the circuit (and forgets the failures),
its failure opens it for another cooldown. Successes while closed do not
reset the count: it is failures per window, not consecutive failures.

State is keyed by a target identity (:func:`target_id`) that names what is called (provider,
host, model, options, a digest of the key) and never a secret, so the same upstream used from
different configs or gateway processes shares one circuit.
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import orjson
import structlog
from hookgate import Target

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["CircuitState", "MemoryBreaker", "RedisBreaker", "target_id"]

log = structlog.get_logger("hookgate_fallback.breaker")

State = Literal["closed", "open", "half_open"]


def target_id(target: Target) -> str:
    """A stable name for the upstream ``target`` calls, safe to log and to share."""
    key_digest = (
        hashlib.blake2b(target.api_key.encode(), digest_size=8, person=b"hookgate-cb").hexdigest()
        if target.api_key
        else ""
    )
    material = orjson.dumps(
        [
            target.provider,
            target.custom_host or "",
            target.virtual_key or "",
            target.override_params.get("model", ""),
            dict(target.options),
            key_digest,
        ],
        option=orjson.OPT_SORT_KEYS,
        default=str,
    )
    return f"{target.provider}:{hashlib.blake2b(material, digest_size=10).hexdigest()}"


@dataclass(frozen=True, slots=True)
class CircuitState:
    state: State
    last_failure: float
    """Wall-clock time of the last failure; 0 when none is remembered."""


CLOSED = CircuitState("closed", 0.0)


@dataclass(slots=True)
class _Circuit:
    failures: deque[float] = field(default_factory=deque)
    opened_at: float | None = None
    last_failure: float = 0.0
    trial_until: float = 0.0


def _state(opened_at: float | None, cooldown: float, now: float) -> State:
    if opened_at is None:
        return "closed"
    return "open" if now < opened_at + cooldown else "half_open"


class MemoryBreaker:
    """Circuits held in this process."""

    def __init__(self, failure_threshold: int, window: float, cooldown: float) -> None:
        self.failure_threshold = failure_threshold
        self.window = window
        self.cooldown = cooldown
        self._circuits: dict[str, _Circuit] = {}

    async def states(self, ids: Iterable[str]) -> dict[str, CircuitState]:
        return self.states_now(ids)

    def states_now(self, ids: Iterable[str]) -> dict[str, CircuitState]:
        now = time.time()
        result = {}
        for tid in ids:
            circuit = self._circuits.get(tid)
            if circuit is None:
                result[tid] = CLOSED
            else:
                state = _state(circuit.opened_at, self.cooldown, now)
                result[tid] = CircuitState(state, circuit.last_failure)
        return result

    async def claim(self, ids: Iterable[str], ttl: float) -> set[str]:
        return self.claim_now(ids, ttl)

    def claim_now(self, ids: Iterable[str], ttl: float) -> set[str]:
        """Reserve the trial call of each half-open target in ``ids`` that nobody holds."""
        now = time.time()
        claimed = set()
        for tid in ids:
            circuit = self._circuits.get(tid)
            if circuit is None or _state(circuit.opened_at, self.cooldown, now) != "half_open":
                continue
            if circuit.trial_until <= now:
                circuit.trial_until = now + ttl
                claimed.add(tid)
        return claimed

    async def release(self, ids: Iterable[str]) -> None:
        self.release_now(ids)

    def release_now(self, ids: Iterable[str]) -> None:
        """Give back trial claims that were not used (the request never called the target)."""
        for tid in ids:
            circuit = self._circuits.get(tid)
            if circuit is not None:
                circuit.trial_until = 0.0

    async def record(self, outcomes: list[tuple[str, bool]]) -> None:
        self.record_now(outcomes)

    def record_now(self, outcomes: list[tuple[str, bool]]) -> None:
        """Record ``(target id, failed)`` pairs, in the order the calls happened."""
        now = time.time()
        for tid, failed in outcomes:
            circuit = self._circuits.get(tid)
            if not failed:
                # Only a trial call's success closes the circuit; in a closed circuit failures
                # keep counting within the window whatever succeeded in between.
                if circuit is not None and (
                    _state(circuit.opened_at, self.cooldown, now) == "half_open"
                ):
                    log.info("circuit_closed", target=tid)
                    del self._circuits[tid]
                continue
            if circuit is None:
                circuit = self._circuits[tid] = _Circuit()
            circuit.last_failure = now
            failures = circuit.failures
            failures.append(now)
            while failures and failures[0] <= now - self.window:
                failures.popleft()
            state = _state(circuit.opened_at, self.cooldown, now)
            if state == "half_open" or (
                state == "closed" and len(failures) >= self.failure_threshold
            ):
                circuit.opened_at = now
                circuit.trial_until = 0.0
                failures.clear()
                log.warning("circuit_opened", target=tid, cooldown=self.cooldown)

    async def aclose(self) -> None:
        self._circuits.clear()


class RedisBreaker:
    """Circuits in Redis, shared by every gateway process pointing at it.

    Per target: ``<prefix><id>:f`` a sorted set of failure times (the window), ``:o`` the time
    the circuit opened, ``:l`` the last failure, ``:t`` a half-open circuit's trial claim.
    Keys expire on their own once idle.
    """

    def __init__(
        self,
        client: Redis,
        prefix: str,
        failure_threshold: int,
        window: float,
        cooldown: float,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.failure_threshold = failure_threshold
        self.window = window
        self.cooldown = cooldown
        # Idle keys go away after the longest period they matter for (and then some).
        self._ttl_ms = int(max(window, cooldown) * 1000 * 4) + 1000

    async def states(self, ids: Iterable[str]) -> dict[str, CircuitState]:
        ids = list(ids)
        keys: list[str] = []
        for tid in ids:
            keys += [f"{self.prefix}{tid}:o", f"{self.prefix}{tid}:l"]
        values = await self.client.mget(keys)
        now = time.time()
        result = {}
        for i, tid in enumerate(ids):
            opened, last = values[2 * i], values[2 * i + 1]
            state = _state(float(opened) if opened is not None else None, self.cooldown, now)
            result[tid] = CircuitState(state, float(last) if last is not None else 0.0)
        return result

    async def claim(self, ids: Iterable[str], ttl: float) -> set[str]:
        ids = list(ids)
        async with self.client.pipeline(transaction=False) as pipe:
            for tid in ids:
                pipe.set(f"{self.prefix}{tid}:t", "1", nx=True, px=max(1, int(ttl * 1000)))
            results = await pipe.execute()
        return {tid for tid, won in zip(ids, results, strict=True) if won}

    async def release(self, ids: Iterable[str]) -> None:
        keys = [f"{self.prefix}{tid}:t" for tid in ids]
        if keys:
            await self.client.delete(*keys)

    async def record(self, outcomes: list[tuple[str, bool]]) -> None:
        for tid, failed in outcomes:
            if failed:
                await self._failure(tid)
            else:
                await self._success(tid)

    async def _success(self, tid: str) -> None:
        base = f"{self.prefix}{tid}"
        opened = await self.client.get(f"{base}:o")
        if opened is None or _state(float(opened), self.cooldown, time.time()) != "half_open":
            return  # closed: failures keep counting; open: a call from before it opened
        await self.client.delete(f"{base}:o", f"{base}:f", f"{base}:t")
        log.info("circuit_closed", target=tid, shared=True)

    async def _failure(self, tid: str) -> None:
        base = f"{self.prefix}{tid}"
        now = time.time()
        member = f"{now:.6f}:{id(self)}:{time.perf_counter_ns()}"
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.zadd(f"{base}:f", {member: now})
            pipe.zremrangebyscore(f"{base}:f", "-inf", now - self.window)
            pipe.zcard(f"{base}:f")
            pipe.pexpire(f"{base}:f", self._ttl_ms)
            pipe.set(f"{base}:l", repr(now), px=self._ttl_ms)
            pipe.get(f"{base}:o")
            results: list[Any] = await pipe.execute()
        count, opened = int(results[2]), results[5]
        state = _state(float(opened) if opened is not None else None, self.cooldown, now)
        if state == "half_open" or (state == "closed" and count >= self.failure_threshold):
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.set(f"{base}:o", repr(now), px=self._ttl_ms)
                pipe.delete(f"{base}:f", f"{base}:t")
                await pipe.execute()
            log.warning("circuit_opened", target=tid, cooldown=self.cooldown, shared=True)

    async def aclose(self) -> None:
        await self.client.aclose()

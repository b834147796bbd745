"""The lookup and store pipeline, batched across concurrent requests.

One :class:`Engine` owns an embedder and a :class:`~.store.ChromaStore`. It runs in the
process that holds the store: the semantic-cache service that ``hookgate serve`` starts for
its workers (:mod:`.service`), or the gateway's own process in embedded use.

Requests queue; one pipeline drains the queue, so lookups that arrive while a batch is being
answered are answered together in the next one: one exact ``get`` for all of them, one
embedding call for the texts that need a vector, one nearest-neighbour query, one metadata
``get``, the guard, one payload ``get``. A lone request starts at once, so batching costs it
nothing. Writes are batched the same way in a pipeline of their own (an embedded Chroma's
commit takes milliseconds: lookups do not queue behind it); a write is acknowledged once it
is in the store, so a lookup that arrives after the acknowledgement sees it. Vectors of recent texts are kept (a miss's vector
is reused when its answer is stored). The model runs in its own thread, Chroma in another:
never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog

from .embedders import Embedder
from .store import Candidate, ChromaStore
from .verify import verify_batch

__all__ = ["Engine", "Found", "Lookup", "Put"]

log = structlog.get_logger("hookgate.semantic_cache")

T = TypeVar("T")

_MAX_BATCH = 64
_REMEMBERED = 4096
"""Vectors of this many recent texts are kept: storing a miss's answer embeds nothing."""


@dataclass(slots=True)
class Lookup:
    entry_id: str
    partition: str
    text: str
    max_age: float
    now: float
    embeddable: bool
    """Whether the text may be compared by meaning (not too long for the model)."""
    vector: list[float] | None = None
    """Given when the caller embeds itself (``embedder = "gateway"``)."""


@dataclass(slots=True)
class Found:
    """What a lookup found. ``error`` names the part that failed (``store``, ``embedder``)."""

    kind: str | None = None
    """``exact``, ``semantic`` or None (a miss)."""
    similarity: float | None = None
    best: float | None = None
    """The best similarity seen, hit or not (for the miss log)."""
    payload: str | None = None
    metadata: dict[str, Any] | None = None
    error: str | None = None
    message: str | None = None
    reason: str | None = None
    """Why the deciding candidate (the one served, else the nearest) was served or refused."""

    def dump(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "kind": self.kind,
            "similarity": self.similarity,
            "best": self.best,
            "payload": self.payload,
            "metadata": self.metadata,
            "error": self.error,
            "message": self.message,
        }

    @classmethod
    def load(cls, data: dict[str, Any]) -> Found:
        return cls(**data)


@dataclass(slots=True)
class Put:
    entry_id: str
    text: str
    payload: str
    metadata: dict[str, Any]
    max_age: float
    embeddable: bool
    vector: list[float] | None = None


@dataclass(slots=True)
class _Job:
    lookup: Lookup
    future: asyncio.Future[Found]
    found: Found = field(default_factory=Found)


class Engine:
    """Batched lookups and writes against one store with one embedder."""

    def __init__(
        self,
        store: ChromaStore,
        embedder: Embedder | None,
        *,
        guard: bool = True,
        threshold: float = 0.85,
        candidates: int = 8,
        lookup_timeout: float = 1.0,
        store_timeout: float = 10.0,
        dimensions: int | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        """None: callers send their vectors (an embedder that must run in the gateway)."""
        self.guard = guard
        self.threshold = threshold
        """With ``guard`` off, the similarity that decides alone."""
        self.candidates = candidates
        self.lookup_timeout = lookup_timeout
        self.store_timeout = store_timeout
        self._dimensions = dimensions
        self._lookups: list[_Job] = []
        self._puts: list[tuple[Put, asyncio.Future[None]]] = []
        self._unwritten: dict[str, tuple[Put, float, asyncio.Future[None]]] = {}
        """Writes received and not yet in the store, with when they came: lookups see them
        (a worker that asks again at once reads its own write without waiting for it)."""
        # Two pipelines: a slow write (an embedded Chroma commits to disk) never holds up
        # the lookups queued behind it.
        self._reading = _Drain(self._read)
        self._writing = _Drain(self._write_all)
        self._vectors: OrderedDict[str, list[float]] = OrderedDict()
        # Chroma's calls block. Several threads, so that a call stuck in a hanging Chroma
        # server (its client has no timeout) does not stall the ones after it for good.
        self._executor = ThreadPoolExecutor(4, thread_name_prefix="hookgate-chroma")
        self.batches = 0
        """Lookup batches run so far (the benchmark reports the mean batch size)."""
        self.batched = 0

    # ---- life cycle -------------------------------------------------------------------

    async def start(self) -> list[tuple[str, BaseException]]:
        """Open the store and load the model, together and off the loop, so that the first
        lookup pays for neither. Returns what failed (``store`` or ``embedder``, and why):
        those parts are retried, and reported, by the lookups."""

        async def open_store() -> None:
            loop = asyncio.get_running_loop()
            opening = loop.run_in_executor(self._executor, self.store.open)
            # A folder: generous, importing chromadb and opening it take seconds on a busy
            # host. A server: as long as any write may wait for it.
            local = self.store.url is None
            await asyncio.wait_for(
                opening, max(60.0, self.store_timeout) if local else self.store_timeout
            )

        # chromadb and onnxruntime both import numpy; numpy's first import is not safe from
        # two threads at once ("partially initialized module"), so it happens here first.
        await asyncio.get_running_loop().run_in_executor(self._executor, _import_numpy)
        parts: dict[str, Awaitable[None]] = {"store": open_store()}
        if self.embedder is not None:
            parts["embedder"] = self.embedder.start()
        results = await asyncio.gather(*parts.values(), return_exceptions=True)
        failed = [
            (part, result)
            for part, result in zip(parts, results, strict=True)
            if isinstance(result, BaseException)
        ]
        if any(part == "store" for part, _ in failed):
            self.store.reset()
        return failed

    async def aclose(self) -> None:
        # Answers seen are stored before the store closes: the writes queued and the one
        # in flight finish first (within ``store_timeout``).
        await self._writing.aclose(self.store_timeout)
        await self._reading.aclose(0)
        for job in self._lookups:
            job.future.cancel()
        self._lookups.clear()
        if self.embedder is not None:
            await self.embedder.aclose()
        self.store.close()
        self._executor.shutdown(wait=False, cancel_futures=True)

    # ---- requests ---------------------------------------------------------------------

    def lookup(self, lookup: Lookup) -> asyncio.Future[Found]:
        future: asyncio.Future[Found] = asyncio.get_running_loop().create_future()
        self._lookups.append(_Job(lookup, future))
        self._reading.kick()
        return future

    def put(self, put: Put) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._unwritten[put.entry_id] = (put, time.time(), future)
        self._puts.append((put, future))
        self._writing.kick()
        return future

    async def prune(self, now: float) -> int:
        return await self._in_thread(self.store_timeout, self.store.prune, now)

    async def count(self) -> int:
        return await self._in_thread(self.lookup_timeout, self.store.count)

    async def _read(self) -> None:
        while self._lookups:
            jobs = [j for j in self._lookups[:_MAX_BATCH] if not j.future.done()]
            del self._lookups[:_MAX_BATCH]
            if jobs:
                await self._answer(jobs)

    async def _write_all(self) -> None:
        while self._puts:
            puts, self._puts = self._puts[:_MAX_BATCH], self._puts[_MAX_BATCH:]
            await self._write([p for p, f in puts if not f.done()], puts)

    async def _in_thread(self, timeout: float, call: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await asyncio.wait_for(loop.run_in_executor(self._executor, call, *args), timeout)

    # ---- vectors ----------------------------------------------------------------------

    def _remember(self, text: str, vector: list[float]) -> None:
        self._vectors[text] = vector
        self._vectors.move_to_end(text)
        if len(self._vectors) > _REMEMBERED:
            self._vectors.popitem(last=False)

    async def _embed(self, texts: list[str]) -> dict[str, list[float]]:
        """Vectors of ``texts``: remembered ones, the rest in one call of the model."""
        vectors: dict[str, list[float]] = {}
        missing: list[str] = []
        for text in texts:
            known = self._vectors.get(text)
            if known is not None:
                vectors[text] = known
            elif text not in missing:
                missing.append(text)
        if missing:
            if self.embedder is None:
                raise RuntimeError("this store takes vectors from its callers only")
            rows = await self.embedder.embed(missing)
            for text, row in zip(missing, rows, strict=True):
                vector = [float(x) for x in row]
                vectors[text] = vector
                self._remember(text, vector)
        return vectors

    # ---- lookups ----------------------------------------------------------------------

    async def _answer(self, jobs: list[_Job]) -> None:
        self.batches += 1
        self.batched += len(jobs)
        if self._unwritten:
            await self._until_embedded(jobs)
        unwritten = self._unwritten_entries(time.time()) if self._unwritten else []
        try:
            exact, fits = await self._in_thread(self.lookup_timeout, self._exact, jobs)
        except Exception as exc:
            self.store.reset()
            self._fail(jobs, "store", exc)
            return
        exact.update({entry.id: entry for entry, _ in unwritten})
        pending: list[_Job] = []
        for job, fit in zip(jobs, fits, strict=True):
            entry = exact.get(job.lookup.entry_id)
            lookup = job.lookup
            if entry is not None and _fresh(entry.metadata, lookup.now, lookup.max_age):
                job.found = Found("exact", 1.0, 1.0, entry.payload, entry.metadata)
                _resolve(job)
            elif fit:
                pending.append(job)
            else:
                _resolve(job)  # not comparable by meaning: an exact miss is a miss
        if not pending:
            return
        try:
            vectors = await self._embed([j.lookup.text for j in pending if j.lookup.vector is None])
        except Exception as exc:
            self._fail(pending, "embedder", exc)
            return
        for job in pending:
            if job.lookup.vector is None:
                job.lookup.vector = vectors[job.lookup.text]
        try:
            await self._in_thread(self.lookup_timeout, self._select, pending, unwritten)
        except Exception as exc:
            self.store.reset()
            self._fail(pending, "store", exc)
            return
        for job in pending:
            _resolve(job)

    def _fits(self, texts: list[str]) -> list[bool]:
        """Whether the model reads each text whole (a truncated text would hide its tail)."""
        embedder = self.embedder
        if embedder is None:
            return [True] * len(texts)
        return [embedder.fits(text) for text in texts]

    def _exact(self, jobs: list[_Job]) -> tuple[dict[str, Candidate], list[bool]]:
        """In a Chroma thread: the stored entries of the jobs' ids, and which texts the
        model can compare (tokenising is CPU work too: it stays off the loop)."""
        exact = self.store.get_many([j.lookup.entry_id for j in jobs])
        comparable = [
            j.lookup.embeddable and (j.lookup.vector is not None or fit)
            for j, fit in zip(jobs, self._fits([j.lookup.text for j in jobs]), strict=True)
        ]
        return exact, comparable

    def _select(
        self, jobs: list[_Job], unwritten: list[tuple[Candidate, list[float] | None]]
    ) -> None:
        """In a Chroma thread: the nearest entries of every job, the decision on all their
        candidates at once, the payloads of those that answer."""
        store = self.store
        queries = [
            (j.lookup.vector, j.lookup.partition, j.lookup.now - j.lookup.max_age, j.lookup.now)
            for j in jobs
        ]
        results = store.query_many(queries, self.candidates)
        if unwritten:
            results = self._with_unwritten(jobs, results, unwritten)
        pairs: list[tuple[_Job, Candidate]] = []
        for job, (best, candidates) in zip(jobs, results, strict=True):
            job.found.best = best
            pairs += [(job, candidate) for candidate in candidates]
        if not pairs:
            return
        verdicts = self._decide(pairs)
        accepted: dict[int, list[tuple[Candidate, str]]] = {}
        for (job, candidate), (hit, reason) in zip(pairs, verdicts, strict=True):
            if job.found.reason is None:  # the nearest candidate's verdict, unless one hits
                job.found.similarity, job.found.reason = candidate.similarity, reason
            if hit:
                accepted.setdefault(id(job), []).append((candidate, reason))
        if not accepted:
            return
        pending = {entry.id: entry for entry, _ in unwritten}
        payloads = store.get_many(
            [found[0][0].id for found in accepted.values() if found[0][0].id not in pending]
        )
        payloads.update(pending)
        for job in jobs:
            for candidate, reason in accepted.get(id(job), ()):
                stored = payloads.get(candidate.id) or store.get(candidate.id)
                if stored is None:  # pruned or replaced meanwhile
                    continue
                job.found = Found(
                    "semantic", candidate.similarity, job.found.best, stored.payload,
                    candidate.metadata, reason=reason,
                )  # fmt: skip
                break

    def _with_unwritten(
        self,
        jobs: list[_Job],
        results: list[tuple[float | None, list[Candidate]]],
        unwritten: list[tuple[Candidate, list[float] | None]],
    ) -> list[tuple[float | None, list[Candidate]]]:
        """The store's answers with the writes it has not committed yet, compared the same
        way (cosine of unit vectors, the store's floor, the partition and the entry's age)."""
        import numpy as np

        from .store import _live

        comparable = [(entry, vector) for entry, vector in unwritten if vector is not None]
        if not comparable:
            return results
        matrix = np.asarray([vector for _, vector in comparable], dtype=np.float32)
        matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        merged = []
        for job, (best, candidates) in zip(jobs, results, strict=True):
            lookup = job.lookup
            query = np.asarray(lookup.vector, dtype=np.float32)
            similarities = matrix @ (query / max(float(np.linalg.norm(query)), 1e-12))
            seen = {c.id for c in candidates}
            extra = []
            for (entry, _), similarity in zip(comparable, similarities, strict=True):
                similarity = float(similarity)
                best = similarity if best is None else max(best, similarity)
                found = Candidate(entry.id, similarity, entry.metadata)
                if (
                    entry.id not in seen
                    and similarity >= self.store.floor
                    and _live(found, lookup.partition, lookup.now - lookup.max_age, lookup.now)
                ):
                    extra.append(found)
            ordered = sorted(candidates + extra, key=lambda c: c.similarity, reverse=True)
            merged.append((best, ordered[: self.candidates]))
        return merged

    def _decide(self, pairs: list[tuple[_Job, Candidate]]) -> list[tuple[bool, str]]:
        """Whether each candidate (above the store's floor) answers its job's question, and
        why: every candidate of a batch in one call, so that the verifier (or a model in its
        place) runs once per batch, in this thread, never on the event loop."""
        if not self.guard:
            threshold = self.threshold
            return [
                (True, "ok: guard off")
                if c.similarity >= threshold
                else (False, f"similarity: {c.similarity:.3f} < {threshold:.2f}")
                for _, c in pairs
            ]
        checked = [
            (job.lookup.text, str(c.metadata["question"]), c.similarity)
            for job, c in pairs
            if isinstance(c.metadata.get("question"), str)
        ]
        verdicts = iter(verify_batch(checked))
        # Entries written before the verifier carry no question to compare: never served.
        old = (False, "unverifiable: the entry was stored without its question")
        answers: list[tuple[bool, str]] = []
        for _, c in pairs:
            if isinstance(c.metadata.get("question"), str):
                verdict = next(verdicts)
                answers.append((verdict.hit, verdict.reason))
            else:
                answers.append(old)
        return answers

    @staticmethod
    def _fail(jobs: list[_Job], part: str, exc: BaseException) -> None:
        for job in jobs:
            job.found = Found(error=part, message=f"{type(exc).__name__}: {exc}")
            _resolve(job)

    # ---- writes -----------------------------------------------------------------------

    async def _write(
        self, puts: list[Put], futures: list[tuple[Put, asyncio.Future[None]]]
    ) -> None:
        try:
            await self._write_batch(puts)
        except Exception as exc:
            self._written(p for p, _ in futures)
            self.store.reset()
            for _, future in futures:
                if not future.done():
                    future.set_exception(exc)
            return
        self._written(p for p, _ in futures)
        for _, future in futures:
            if not future.done():
                future.set_result(None)

    def _written(self, puts: Iterable[Put]) -> None:
        for put in puts:
            if self._unwritten.get(put.entry_id, (None,))[0] is put:
                del self._unwritten[put.entry_id]

    async def _until_embedded(self, jobs: list[_Job]) -> None:
        """Wait for the writes in the jobs' partitions whose vector is not known yet (the
        store's pipeline embeds them): without one a write cannot be compared by meaning."""
        partitions = {job.lookup.partition for job in jobs}
        waiting = [
            future
            for put, _, future in self._unwritten.values()
            if put.embeddable
            and put.vector is None
            and put.text not in self._vectors
            and put.metadata.get("partition") in partitions
            and not future.done()
        ]
        if waiting:
            await asyncio.wait(waiting, timeout=self.store_timeout)

    def _unwritten_entries(self, now: float) -> list[tuple[Candidate, list[float] | None]]:
        """The writes not yet in the store, as the store would hold them (with vectors)."""
        entries = []
        for put, created, _ in self._unwritten.values():
            vector = put.vector if put.vector is not None else self._vectors.get(put.text)
            metadata = {
                **put.metadata,
                "semantic": put.embeddable and vector is not None,
                "created": created,
                "expires": created + put.max_age,
            }
            entries.append((Candidate(put.entry_id, 1.0, metadata, put.payload), vector))
        return entries

    async def _write_batch(self, puts: list[Put]) -> None:
        if not puts:
            return
        candidates = [p.text for p in puts if p.vector is None and p.embeddable]
        fits = await self._in_thread(self.store_timeout, self._fits, candidates)
        texts = [text for text, fit in zip(candidates, fits, strict=True) if fit]
        vectors: dict[str, list[float]] = {}
        if texts:
            try:
                vectors = await self._embed(texts)
            except Exception as exc:  # stored for exact matches only, and say so
                log.info(
                    "semantic_cache_embedder_unavailable", error=f"{type(exc).__name__}: {exc}"
                )
        ids, rows, payloads, metadatas = [], [], [], []
        now = time.time()
        for put in puts:
            vector = put.vector if put.vector is not None else vectors.get(put.text)
            if not put.embeddable:
                vector = None
            if vector is not None:
                self._dimensions = len(vector)
            elif self._dimensions is None:
                continue  # no vector yet of this space to shape a placeholder on
            # Without a vector (too long, embedder down) the entry serves exact matches
            # only: it is marked so, and semantic queries pass it over.
            metadata = {
                **put.metadata,
                "semantic": vector is not None,
                "created": now,
                "expires": now + put.max_age,
            }
            ids.append(put.entry_id)
            rows.append(vector or [1.0] + [0.0] * (self._dimensions - 1))
            payloads.append(put.payload)
            metadatas.append(metadata)
        if ids:
            await self._in_thread(
                self.store_timeout, self.store.put_many, ids, rows, payloads, metadatas
            )


class _Drain:
    """Runs ``drain`` whenever kicked, one run at a time; a kick during a run means one
    more run after it. What queues meanwhile is taken together: that is the batching."""

    def __init__(self, drain: Callable[[], Awaitable[None]]) -> None:
        self._drain = drain
        self._task: asyncio.Task[None] | None = None
        self._again = False

    def kick(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        else:
            self._again = True

    async def _run(self) -> None:
        while True:
            self._again = False
            await self._drain()
            if not self._again:
                return

    async def aclose(self, wait: float) -> None:
        """Let the run in progress finish for up to ``wait`` seconds, then stop it."""
        if self._task is not None:
            if wait > 0 and not self._task.done():
                with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(self._task), wait)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def _resolve(job: _Job) -> None:
    if not job.future.done():
        job.future.set_result(job.found)


def _fresh(metadata: dict[str, Any], now: float, max_age: float) -> bool:
    created = float(metadata.get("created", 0.0))
    expires = float(metadata.get("expires", 0.0))
    return created >= now - max_age and expires > now


def _import_numpy() -> None:
    import numpy  # noqa: F401

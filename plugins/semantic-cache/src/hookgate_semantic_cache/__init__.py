"""hookgate plugin: semantic response cache on Chroma with a local embedding model.

A request whose config asks for ``cache: {mode: "semantic"}`` is answered from an earlier
answer when its last user message means the same as an earlier one (cosine similarity of
their embeddings at or above ``threshold``) and everything else that shapes the answer is
identical: endpoint, model and parameters, routing plan, system prompt and earlier turns,
namespace and the caller's keys. Those go into an exact partition key; only the last user
message is compared by meaning. The verifier (:mod:`.verify`) then compares the two
questions word by word and refuses a candidate that changes a number, a negation, a time,
an action into its opposite, the order of two things, a name, a unit or the audience.

Order with exact-match caches (the ``cache`` plugin, or any other): the core asks them first,
because this plugin declares ``cache_match = "similar"``. It checks an exact match itself
(so it also works alone), then the semantic one; the core reports ``HIT`` for an exact
answer, ``SEMANTIC HIT`` for a semantic one, else ``SEMANTIC MISS``. Either way
``ctx.cache_similarity`` is the nearest candidate's similarity and ``ctx.cache_reason``
says why it was served or refused. A broken store or embedder is a miss and a warning,
never an error.

Where the store lives: in this process (embedded use), or, under ``hookgate serve``, in
one semantic-cache service that the server's parent runs for all its workers
(:mod:`.service`); either way the :class:`~.engine.Engine` batches concurrent lookups.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
import structlog
from hookgate import (
    Gateway,
    GatewayError,
    RequestContext,
    Response,
    Service,
    SettingsError,
    SSEEvent,
    StreamResponse,
    hookimpl,
)
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .embedders import (
    Embedder,
    GatewayEmbedder,
    MiniLMEmbedder,
    OpenAIEmbedder,
)
from .engine import Engine, Found, Lookup, Put
from .service import ENV as SERVICE_ENV
from .service import ServiceClient, socket_path
from .store import ChromaStore, FolderLock
from .verify import MIN_SIMILARITY

__all__ = ["Plugin", "SemanticCacheSettings", "Settings"]

log = structlog.get_logger("hookgate.semantic_cache")

NAME = "semantic-cache"
_CACHEABLE = ("chat.completions", "completions")
# Fields that do not change the answer, or that this plugin handles itself.
_NOT_IN_PARTITION = frozenset(
    {"messages", "prompt", "stream", "stream_options", "user", "metadata", "store"}
)


class SemanticCacheSettings(BaseModel):
    """``[plugins.semantic-cache]`` in plugins.toml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = ".hookgate/semantic-cache"
    """Folder of the embedded Chroma store (one process only)."""
    chroma_url: str | None = None
    """A Chroma server shared by every worker (``http://127.0.0.1:8000``); replaces ``path``."""
    on_folder_in_use: Literal["error", "disable"] = "error"
    """When another process holds ``path``: ``error`` stops start-up; ``disable`` runs this
    process without the semantic cache (a warning says so), e.g. extra ``hookgate serve``
    workers of a deployment that has no Chroma server."""
    collection_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{2,40}$")] = (
        "hookgate-semantic"
    )
    threshold: Annotated[float, Field(gt=0, le=1)] = 0.85
    """With ``guard = false``: the cosine similarity from which a stored question counts as
    the same question. With the verifier on, its own thresholds (per language and per
    kind of difference, :data:`.verify.THRESHOLDS`) decide."""
    guard: bool = True
    """The verifier: compare the two questions and refuse a candidate whose answer would
    not answer this one (numbers, negation, time, opposites, order, names, units...)."""
    default_mode: Literal["semantic"] | None = None
    """Cache requests whose config has no ``cache`` block too. None (Portkey's behaviour):
    only requests that ask are cached."""
    default_max_age: Annotated[float, Field(gt=0)] = 3600.0
    """Seconds an entry lives when the request's ``cache`` block gives no ``max_age``."""
    max_chars: Annotated[int, Field(ge=1)] = 1000
    """Longer last messages are only cached exactly, as are those the local model would
    truncate (it reads 256 tokens): a difference past that point would go unseen."""
    candidates: Annotated[int, Field(ge=1, le=50)] = 8
    """Nearest entries checked by the verifier, best first."""
    prune_interval: Annotated[float, Field(ge=0)] = 60.0
    """Seconds between deletions of expired entries (0: only at start-up)."""
    embedder: Literal["local", "gateway", "openai"] = "local"
    """``local``: all-MiniLM-L6-v2 int8 on the CPU; ``gateway``: the gateway's own
    ``embeddings`` endpoint; ``openai``: any OpenAI-compatible ``/embeddings`` URL."""
    threads: Annotated[int, Field(ge=1, le=16)] = 1
    """onnxruntime threads of the local model."""
    embedding_model: str | None = None
    embedding_provider: str | None = None
    """``gateway``: the provider to embed with (else the gateway's default provider)."""
    embedding_config: dict[str, Any] | str | None = None
    """``gateway``: a config (or config id) for the embedding requests (retries, targets)."""
    embedding_base_url: str | None = None
    """``openai``: base URL including the version path, ``http://127.0.0.1:8000/v1``."""
    embedding_api_key: str | None = Field(default=None, repr=False)
    embedding_timeout: Annotated[float, Field(gt=0)] = 10.0
    lookup_timeout: Annotated[float, Field(gt=0)] = 1.0
    """Seconds a lookup may wait for Chroma before it counts as a miss."""
    store_timeout: Annotated[float, Field(gt=0)] = 10.0
    """Seconds a (background) write may wait for Chroma."""
    warn_interval: Annotated[float, Field(ge=0)] = 60.0
    """At most one warning per kind of failure (store, embedder) per interval, in seconds."""

    @model_validator(mode="after")
    def _embedder_fields(self) -> SemanticCacheSettings:
        if self.embedder in ("gateway", "openai") and not self.embedding_model:
            raise ValueError(f"embedder = {self.embedder!r} needs embedding_model")
        if self.embedder == "openai" and not self.embedding_base_url:
            raise ValueError("embedder = 'openai' needs embedding_base_url")
        return self


def _make_embedder(settings: SemanticCacheSettings) -> Embedder:
    if settings.embedder == "gateway":
        assert settings.embedding_model is not None
        return GatewayEmbedder(
            settings.embedding_model, settings.embedding_provider, settings.embedding_config
        )
    if settings.embedder == "openai":
        assert settings.embedding_model is not None and settings.embedding_base_url is not None
        return OpenAIEmbedder(
            settings.embedding_base_url,
            settings.embedding_model,
            settings.embedding_api_key,
            settings.embedding_timeout,
        )
    return MiniLMEmbedder(settings.threads)


def _make_engine(settings: Settings, embedder: Embedder | None = None) -> Engine:
    """The store and its pipeline, for the process that holds them."""
    embedder = embedder or _make_embedder(settings)
    path = None if settings.chroma_url else Path(settings.path).expanduser().resolve()
    store = ChromaStore(
        path=path,
        url=settings.chroma_url,
        collection=ChromaStore.collection_for(settings.collection_prefix, embedder.id),
        floor=MIN_SIMILARITY if settings.guard else settings.threshold,
    )
    return Engine(
        store,
        # An embedder that goes through the gateway runs in the gateway's processes,
        # which send their vectors.
        None if isinstance(embedder, GatewayEmbedder) else embedder,
        guard=settings.guard,
        threshold=settings.threshold,
        candidates=settings.candidates,
        lookup_timeout=settings.lookup_timeout,
        store_timeout=settings.store_timeout,
        dimensions=getattr(embedder, "dimensions", None),
    )


def _text(content: Any) -> str | None:
    """The text of a message's content; None when it holds anything but text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                return None
            parts.append(str(part.get("text", "")))
        return "\n".join(parts)
    return None


def _chat_view(ctx: RequestContext) -> dict[str, Any] | None:
    """The request as this cache reads it: chat completions and completions as they are; a
    declared endpoint marked cacheable that is bridged through chat (the Responses API) as
    its chat request; None for anything else."""
    if ctx.endpoint in _CACHEABLE:
        return ctx.body
    spec = ctx.spec
    bridge = spec.bridge if spec is not None and spec.cacheable else None
    if bridge is None or bridge.via != "chat.completions":
        return None
    try:
        return bridge.request(ctx.body)
    except GatewayError:
        return None  # untranslatable: the call will fail with that 400 anyway


def _question(ctx: RequestContext, body: dict[str, Any]) -> tuple[str, Any] | None:
    """The compared text and the rest of the conversation; None if not cacheable."""
    if ctx.endpoint == "completions":
        prompt = body.get("prompt")
        return (prompt, None) if isinstance(prompt, str) else None
    messages = body.get("messages")
    if not isinstance(messages, list):
        return None
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if isinstance(message, dict) and message.get("role") == "user":
            text = _text(message.get("content"))
            if text is None:
                return None
            rest = [*messages[:index], {**message, "content": None}, *messages[index + 1 :]]
            return text, rest
    return None


def _tenant(ctx: RequestContext) -> str:
    """A hash of the keys the plan calls with: answers never cross callers' accounts."""
    digest = hashlib.sha256()
    for target in ctx.plan.leaves():
        digest.update(f"{target.provider}\0{target.api_key or ''}\0".encode())
        digest.update(f"{target.virtual_key or ''}\0".encode())
    return digest.hexdigest()


def _partition(ctx: RequestContext, body: dict[str, Any], rest: Any) -> str:
    params = {k: v for k, v in body.items() if k not in _NOT_IN_PARTITION}
    key = {
        "endpoint": ctx.endpoint,
        "stream": ctx.stream,
        "params": params,
        "conversation": rest,
        "plan": ctx.plan.describe(),
        "namespace": ctx.cache_namespace,
        "tenant": _tenant(ctx),
    }
    return hashlib.sha256(orjson.dumps(key, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _entry_id(partition: str, text: str) -> str:
    return hashlib.sha256(f"{partition}\0{text.strip()}".encode()).hexdigest()


async def _replay(events: list[dict[str, Any]]) -> AsyncIterator[SSEEvent]:
    for event in events:
        yield SSEEvent(event["data"], event.get("event"))


class _Request:
    """What a lookup leaves for ``post_response`` in ``ctx.state["semantic-cache"]``."""

    __slots__ = ("entry_id", "max_age", "partition", "text", "vector")

    def __init__(self, partition: str, text: str, max_age: float) -> None:
        self.partition = partition
        self.text = text
        self.max_age = max_age
        self.entry_id = _entry_id(partition, text)
        self.vector: list[float] | None = None


Settings = SemanticCacheSettings
"""The name the loader and older code use."""


class Plugin:
    """The ``semantic-cache`` plugin."""

    Settings = SemanticCacheSettings
    cache_modes = ("semantic",)
    cache_match = "similar"

    def __init__(self, settings: SemanticCacheSettings | None = None) -> None:
        self.settings = settings or SemanticCacheSettings()
        self.embedder: Embedder = _make_embedder(self.settings)
        self.engine: Engine | None = None
        """The store, in this process (embedded use)."""
        self.service: ServiceClient | None = None
        """The store, in the semantic-cache service (``hookgate serve``'s workers)."""
        self._socket: Path | None = None
        """Set in ``hookgate serve``'s parent, before the workers are forked from it."""
        self._lock: FolderLock | None = None
        self._pruner: asyncio.Task[None] | None = None
        self._warned: dict[str, float] = {}
        self._storing: dict[str, set[asyncio.Task[None]]] = {}
        self._sending: dict[str, set[asyncio.Future[None]]] = {}
        """Per partition, writes not yet handed to the store (a lookup waits for those)."""
        """Stores still running, by partition: a lookup in that partition waits for them."""

    @property
    def store(self) -> ChromaStore | None:
        """The Chroma store when this process holds it (embedded use), else None."""
        return None if self.engine is None else self.engine.store

    @property
    def _active(self) -> bool:
        return self.engine is not None or self.service is not None

    # ---- life cycle -------------------------------------------------------------------

    @hookimpl
    def server_services(self, gateway: Gateway) -> list[Service]:
        """Under ``hookgate serve``: one service holds the store and the model for every
        worker. An embedded folder that another server's service holds is refused."""
        settings = self.settings
        folder = Path(settings.path).expanduser().resolve()
        if settings.chroma_url is None:
            lock = FolderLock(folder)
            try:
                lock.acquire()
            except SettingsError:
                raise SettingsError(
                    f"semantic-cache: the folder {str(folder)!r} is in use by process "
                    f"{lock.holder()} (the store of another `hookgate serve`, or an app that "
                    "embeds it). Give this server its own [plugins.semantic-cache] path, or "
                    'let several servers share a Chroma server: chroma_url = "http://host:port".'
                ) from None
            lock.release()
            self._socket = socket_path(folder)
        else:  # no folder to name it after: this server's own
            self._socket = Path(tempfile.gettempdir()) / f"hookgate-semantic-{os.getpid()}.sock"
        config = {
            "settings": settings.model_copy(update={"path": str(folder)}).model_dump(mode="json"),
            "parent": os.getpid(),
            "socket": str(self._socket),
        }
        return [
            Service(
                name=NAME,
                argv=[
                    sys.executable,
                    "-c",
                    "from hookgate_semantic_cache.service import main; main()",
                ],
                env={SERVICE_ENV: orjson.dumps(config).decode()},
            )
        ]

    @hookimpl
    async def startup(self, gateway: Gateway) -> None:
        settings = self.settings
        if isinstance(self.embedder, GatewayEmbedder):  # embeds here, in every process
            self.embedder.bind(gateway)
        if self._socket is not None:  # a worker of `hookgate serve`: the service has it all
            self.service = ServiceClient(self._socket)
            if isinstance(self.embedder, GatewayEmbedder):
                await self.embedder.start()
            return
        if settings.chroma_url is None:
            path = Path(settings.path).expanduser().resolve()
            lock = FolderLock(path)
            try:
                lock.acquire()
            except SettingsError as exc:
                served = socket_path(path)
                if served.exists():  # a running server's service holds it: use that
                    self.service = ServiceClient(served)
                    log.info("semantic_cache_served", socket=str(served), pid=os.getpid())
                    return
                if settings.on_folder_in_use == "error":
                    raise
                log.warning("semantic_cache_disabled", reason=str(exc), pid=os.getpid())
                return
            self._lock = lock
        self.engine = _make_engine(settings, self.embedder)
        failed = await self.engine.start()
        for part, failure in failed:
            self._warn(f"semantic_cache_{part}_unavailable", failure)
        if not any(part == "store" for part, _ in failed):
            await self._prune()
        if settings.prune_interval > 0:
            self._pruner = asyncio.create_task(self._prune_every(settings.prune_interval))

    @hookimpl
    def backend_addresses(self, gateway: Gateway) -> list[str]:
        return [self.settings.chroma_url] if self.settings.chroma_url else []

    @hookimpl
    async def ready(self, gateway: Gateway) -> list[str]:
        """Not ready while the store does not answer: the semantic-cache service (not up
        yet, or restarting) or a Chroma server; the embedded store is this process's own."""
        timeout = self.settings.lookup_timeout
        if self.service is not None:
            try:
                await self.service.call("ping", timeout)
            except Exception as exc:
                return [f"semantic-cache service at {self.service.path}: {type(exc).__name__}"]
            return []
        if self.engine is None or self.settings.chroma_url is None:
            return []
        try:
            await self.engine.count()
        except Exception as exc:  # unreachable, hung or failing: all mean "not ready"
            self.engine.store.reset()
            return [f"chroma at {self.settings.chroma_url}: {type(exc).__name__}"]
        return []

    @hookimpl
    async def shutdown(self, gateway: Gateway) -> None:
        if self._pruner is not None:
            self._pruner.cancel()
            self._pruner = None
        await asyncio.wait_for(self.flush(), timeout=10)
        await self.embedder.aclose()
        if self.engine is not None:
            await self.engine.aclose()
            self.engine = None
        if self.service is not None:
            await self.service.aclose()
            self.service = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    async def _prune_every(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self._prune()

    async def _prune(self) -> None:
        engine = self.engine
        if engine is None:
            return
        try:
            removed = await engine.prune(time.time())
        except Exception as exc:
            engine.store.reset()
            self._warn("semantic_cache_store_unavailable", exc)
            return
        if removed:
            log.info("semantic_cache_pruned", entries=removed)

    def _warn(self, event: str, exc: BaseException | str, trace_id: str | None = None) -> None:
        """A warning, at most once per ``warn_interval`` per event; info-level in between."""
        now = time.monotonic()
        last = self._warned.get(event)
        level = log.info
        if last is None or now - last >= self.settings.warn_interval:
            self._warned[event] = now
            level = log.warning
        error = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        level(event, trace_id=trace_id, error=error)

    # ---- lookup -----------------------------------------------------------------------

    def _max_age(self, ctx: RequestContext) -> float | None:
        """The request's max_age when it asks for semantic caching, else None."""
        block = ctx.plan.root.cache
        if block is None:
            default = self.settings.default_mode is not None
            return self.settings.default_max_age if default else None
        if block.mode != "semantic":
            return None
        return block.max_age if block.max_age is not None else self.settings.default_max_age

    def _embeddable(self, text: str) -> bool:
        """Worth comparing by meaning; whether the model reads all of it, the store's
        process checks (it has the tokenizer)."""
        return bool(text.strip()) and len(text) <= self.settings.max_chars

    async def _own_vector(self, text: str) -> list[float] | None:
        """The vector, when this process embeds (``embedder = "gateway"``); else None."""
        if not isinstance(self.embedder, GatewayEmbedder) or not self._embeddable(text):
            return None
        vectors = await self.embedder.embed([text])
        return [float(x) for x in vectors[0]]

    async def _find(self, lookup: Lookup) -> Found:
        timeout = self.settings.lookup_timeout
        try:
            if self.service is not None:
                found = Found.load(
                    await self.service.call("lookup", timeout, lookup=asdict(lookup))
                )
            else:
                assert self.engine is not None
                found = await asyncio.wait_for(self.engine.lookup(lookup), timeout)
        except Exception as exc:
            return Found(error="store", message=f"{type(exc).__name__}: {exc}")
        return found

    @hookimpl
    async def cache_lookup(self, ctx: RequestContext) -> Response | StreamResponse | None:
        # The core asks exact-match caches first (this plugin's cache_match is "similar")
        # and turns cache_consulted() and cache_similarity into the status it reports.
        body = _chat_view(ctx)
        if body is None:
            return None
        max_age = self._max_age(ctx)
        if max_age is None:
            return None
        ctx.cache_consulted()
        if not self._active:
            # Asked for, but this process runs without a store (on_folder_in_use = "disable"):
            # a miss, as when Chroma is down.
            return None
        question = _question(ctx, body)
        if question is None:
            return None
        text, rest = question
        request = _Request(_partition(ctx, body, rest), text, max_age)
        ctx.state[NAME] = request
        if ctx.cache_force_refresh:
            return None
        sending = self._sending.get(request.partition)
        if sending:  # read your own writes: this process's answers in this partition
            # Handed to the store is enough: it answers lookups from the writes it has
            # received, before they are committed (which takes milliseconds more).
            await asyncio.wait(set(sending), timeout=5)
        try:
            request.vector = await self._own_vector(text)
        except Exception as exc:
            self._warn("semantic_cache_embedder_unavailable", exc, ctx.trace_id)
        # One trip to the store's process: exact first (an exact hit costs no embedding),
        # then the embedding, the nearest entries and the guard, batched with whatever
        # other lookups are in flight.
        found = await self._find(
            Lookup(
                entry_id=request.entry_id,
                partition=request.partition,
                text=text,
                max_age=max_age,
                now=time.time(),
                embeddable=self._embeddable(text) and not self._embeds_here_and_failed(request),
                vector=request.vector,
            )
        )
        if found.error is not None:
            self._warn(
                f"semantic_cache_{found.error}_unavailable", found.message or "", ctx.trace_id
            )
            return None
        metadata = found.metadata or {}
        if found.kind == "exact":
            ctx.cache_reason = "exact: the same question"
            log.info("semantic_cache_hit", trace_id=ctx.trace_id, exact=True)
            return _answer(found.payload or "", metadata)
        if found.reason is not None:  # the candidate that decided: served, or the nearest refused
            ctx.cache_similarity = round(float(found.similarity or 0.0), 4)
            ctx.cache_reason = found.reason
        elif found.best is not None:
            ctx.cache_reason = f"no candidate: nearest similarity {found.best:.3f}"
        else:
            ctx.cache_reason = "no candidate: nothing stored"
        if found.kind is None:
            log.debug(
                "semantic_cache_miss",
                trace_id=ctx.trace_id,
                nearest_similarity=None if found.best is None else round(found.best, 4),
                reason=ctx.cache_reason,
            )
            return None
        ctx.cache_similarity = round(float(found.similarity or 0.0), 4)  # the core: SEMANTIC HIT
        log.info(
            "semantic_cache_hit",
            trace_id=ctx.trace_id,
            similarity=round(float(found.similarity or 0.0), 4),
            reason=ctx.cache_reason,
        )
        return _answer(found.payload or "", metadata)

    def _embeds_here_and_failed(self, request: _Request) -> bool:
        return isinstance(self.embedder, GatewayEmbedder) and request.vector is None

    # ---- store ------------------------------------------------------------------------

    @hookimpl
    async def post_response(
        self, ctx: RequestContext, response: Response | StreamResponse | None
    ) -> None:
        request = ctx.state.get(NAME)
        if (
            not isinstance(request, _Request)
            or not self._active
            or response is None
            or not ctx.completed
            or ctx.error is not None
            or ctx.target is None  # answered from a cache, not by a provider
            or response.status != 200
        ):
            return
        if isinstance(response, StreamResponse):
            if _stream_failed(ctx.events):
                return
            payload = orjson.dumps([{"data": e.data, "event": e.event} for e in ctx.events])
            kind, done_marker = "stream", response.done_marker
        else:
            payload, kind, done_marker = response.body, "json", True
        metadata = {
            "partition": request.partition,
            "question": request.text,
            "kind": kind,
            "status": response.status,
            "done_marker": done_marker,
        }
        # The client is not kept waiting for the store: the entry is written in the
        # background (lookups in the same partition wait for it, so this process reads its
        # own writes; other processes see it once the store has it, milliseconds later).
        sent: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        sending = self._sending.setdefault(request.partition, set())
        sending.add(sent)
        sent.add_done_callback(lambda done: self._sent(request.partition, done))
        task = asyncio.create_task(
            self._store(request, payload.decode(), metadata, ctx.trace_id, sent)
        )
        tasks = self._storing.setdefault(request.partition, set())
        tasks.add(task)
        task.add_done_callback(lambda done: self._stored(request.partition, done))

    async def flush(self) -> None:
        """Wait until every answer seen so far is written to the store."""
        pending = {task for tasks in self._storing.values() for task in tasks}
        if pending:
            await asyncio.wait(pending)

    def _sent(self, partition: str, sent: asyncio.Future[None]) -> None:
        waiting = self._sending.get(partition)
        if waiting is not None:
            waiting.discard(sent)
            if not waiting:
                del self._sending[partition]

    def _stored(self, partition: str, task: asyncio.Task[None]) -> None:
        tasks = self._storing.get(partition)
        if tasks is not None:
            tasks.discard(task)
            if not tasks:
                del self._storing[partition]

    async def _store(
        self,
        request: _Request,
        payload: str,
        metadata: dict[str, Any],
        trace_id: str,
        sent: asyncio.Future[None],
    ) -> None:
        try:
            await self._put(request, payload, metadata, trace_id, sent)
        finally:
            if not sent.done():
                sent.set_result(None)

    async def _put(
        self,
        request: _Request,
        payload: str,
        metadata: dict[str, Any],
        trace_id: str,
        sent: asyncio.Future[None],
    ) -> None:
        if request.vector is None and isinstance(self.embedder, GatewayEmbedder):
            try:
                request.vector = await self._own_vector(request.text)
            except Exception as exc:
                self._warn("semantic_cache_embedder_unavailable", exc, trace_id)
        put = Put(
            entry_id=request.entry_id,
            text=request.text,
            payload=payload,
            metadata=metadata,
            max_age=request.max_age,
            embeddable=self._embeddable(request.text) and not self._embeds_here_and_failed(request),
            vector=request.vector,
        )
        timeout = self.settings.store_timeout
        try:
            if self.service is not None:
                await self.service.call("put", timeout, sent=sent, put=asdict(put))
            elif self.engine is not None:
                written = self.engine.put(put)  # from now on its lookups see it
                sent.set_result(None)
                await asyncio.wait_for(written, timeout)
        except Exception as exc:
            self._warn("semantic_cache_store_unavailable", exc, trace_id)
            return
        log.debug("semantic_cache_stored", trace_id=trace_id, kind=metadata["kind"])


def _answer(payload: str, metadata: dict[str, Any]) -> Response | StreamResponse:
    if metadata.get("kind") == "stream":
        return StreamResponse(
            events=_replay(orjson.loads(payload)),
            done_marker=bool(metadata.get("done_marker", True)),
        )
    return Response(payload.encode(), int(metadata.get("status", 200)))


def _stream_failed(events: list[SSEEvent]) -> bool:
    """A stream that carried an error event is never stored."""
    for event in events:
        data = event.data
        if event.event == "error" or (isinstance(data, dict) and data.get("error") is not None):
            return True
    return False

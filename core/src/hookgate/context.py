"""What a request carries through the pipeline, and what plugins write back onto it."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from random import getrandbits
from typing import Any, Literal

from .auth import Principal
from .config import Config
from .endpoints import EndpointSpec, Upload
from .errors import GatewayError
from .responses import Response, SSEEvent, StreamResponse
from .routing import Plan, Target

__all__ = ["Attempt", "Decision", "Endpoint", "Outcome", "RequestContext", "new_trace_id"]

Endpoint = str
"""An endpoint's name: a core one (``chat.completions``, ``completions``, ``embeddings``,
``models``) or one a plugin declares (see :mod:`hookgate.endpoints`)."""


def new_trace_id() -> str:
    """32 hex digits, the milliseconds since the epoch first (as in UUIDv7), then 80 random
    bits: ids sort by time, so an index on them (the log store's) grows at its end instead of
    splitting pages at random. Unique, not secret: no system call (os.urandom costs one)."""
    return f"{time.time_ns() // 1_000_000:012x}{getrandbits(80):020x}"


@dataclass(slots=True)
class Attempt:
    """One call to one target."""

    path: str
    """Where the target sits in the plan: ``config.targets[1]``."""
    provider: str
    retry: int
    """0 for the first call to this target, 1 for its first retry, ..."""
    delay: float
    """Seconds waited before this call."""
    started: float
    """``time.perf_counter()`` when the call began."""
    latency: float | None = None
    """Seconds until the answer (its first event, for a stream) or the failure."""
    status: int | None = None
    """The upstream's status; None when no answer came."""
    error: str | None = None
    """The error's code (``upstream_timeout``, ...) when the call failed."""
    last_retry: bool = False
    """This call was the last retry the ``on_error`` decision before it allowed
    (``Decision.retry(..., last=True)``): if it failed, the target's retries are exhausted."""
    decision: Decision | None = None
    """What ``on_error`` decided after this call failed (None: nobody decided, or it did not
    fail)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to a request, as the embedded API reports it (the response headers' twin)."""

    trace_id: str
    provider: str | None
    """The provider that answered (or failed last); None for a cache hit."""
    last_used_option: str
    """``config`` or ``config.targets[1]``, as in ``x-portkey-last-used-option-index``."""
    retry_attempt_count: int
    """Retries on the last target; -1 when the retries were exhausted."""
    cache_status: str
    cache_similarity: float | None
    """Similarity of the nearest stored question a semantic cache looked at (hit or not)."""
    cache_reason: str | None
    """Why a semantic cache served that question, or why it refused it."""
    attempts: tuple[Attempt, ...]
    timings: dict[str, float]
    """Seconds per phase: pre_request, cache_lookup, upstream, post_response."""


@dataclass(frozen=True, slots=True)
class Decision:
    """What ``on_error`` wants done after a failed call."""

    action: Literal["retry", "fallback", "stop"]
    delay: float = 0.0
    """Seconds to wait before the retry."""
    reason: str = ""
    last: bool = False
    """For ``retry``: this is the last retry the target is allowed. The core marks the call
    it makes (:attr:`Attempt.last_retry`); when that call fails too the target's retries are
    exhausted (``x-portkey-retry-attempt-count: -1``)."""
    group: str | None = None
    """For ``fallback``: the path of the group that moves on to its next child. The core
    skips what is left of every group inside it. None: the next target of the walk."""

    @classmethod
    def retry(cls, delay: float = 0.0, reason: str = "", *, last: bool = False) -> Decision:
        """Call the same target again after ``delay`` seconds."""
        return cls("retry", max(0.0, delay), reason, last=last)

    @classmethod
    def fallback(cls, reason: str = "", *, group: str | None = None) -> Decision:
        """Move on: to the next target of the walk, or to the next child of ``group``."""
        return cls("fallback", 0.0, reason, group=group)

    @classmethod
    def stop(cls, reason: str = "") -> Decision:
        return cls("stop", 0.0, reason)


@dataclass(slots=True, eq=False)
class RequestContext:
    """One request, from the moment it arrives until its last observer ran.

    Plugins read the request (``body``, ``plan``, ``metadata``) and steer it: a strategy
    writes ``route_order`` in ``pre_request``, a cache calls :meth:`cache_consulted`, any
    plugin keeps its own scratch in ``state[its name]``. The core records what happened:
    ``attempts`` (with the decision after each failure), ``target``, ``cache_status``,
    ``response``/``error`` and ``timings``.
    """

    endpoint: Endpoint
    body: dict[str, Any]
    """The request as the client sent it (OpenAI's JSON, or a declared endpoint's own)."""
    plan: Plan
    config: Config | None = None
    trace_id: str = field(default_factory=new_trace_id)
    metadata: dict[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    """Incoming headers a target may forward (``forward_headers``); lower-case names."""
    principal: Principal | None = None
    """Who called: the gateway key's workspace and role; None when the deployment has no keys."""
    spec: EndpointSpec | None = None
    """The declaration of a plugin's endpoint (None for the core's own)."""
    params: Mapping[str, str] = field(default_factory=dict)
    """The path parameters of a declared endpoint (``{"response_id": "resp_1"}``)."""
    query: str = ""
    """The raw query string of a declared endpoint without a body (``limit=10``)."""
    uploads: Mapping[str, Upload] = field(default_factory=dict)
    """The files of a multipart request, by form field; its other fields are in ``body``."""
    cache_force_refresh: bool = False
    cache_namespace: str | None = None
    timeout: float = 600.0
    """Seconds the request may take until its answer starts."""

    route_order: dict[str, Sequence[int]] = field(default_factory=dict)
    """Group path -> indices of its children, in the order to try them. A strategy plugin
    writes its groups' orders in ``pre_request`` (a load-balance pick, targets a circuit
    breaker skips); a group without one is tried in config order (a ``single`` group: its
    first child with a non-zero weight). The core reads them once routing starts and stores
    them back as tuples: after ``pre_request`` they are read-only, and pruning the walk is a
    :class:`Decision`, never an edit of this list."""
    cache_status: str = "DISABLED"
    """Set by the core after ``cache_lookup``: ``HIT``, ``SEMANTIC HIT``, ``MISS``,
    ``SEMANTIC MISS``, ``REFRESH`` or ``DISABLED`` (see :meth:`cache_consulted`)."""
    cache_similarity: float | None = None
    """A similarity cache's hit sets it (the core then reports ``SEMANTIC HIT``)."""
    cache_reason: str | None = None
    """A semantic cache's explanation of its decision (``x-hookgate-cache-reason``)."""
    attempts: list[Attempt] = field(default_factory=list)
    target: Target | None = None
    """The target that answered (or failed last)."""
    response: Response | StreamResponse | None = None
    error: GatewayError | None = None
    completed: bool = False
    """True once the whole answer went out (for a stream: its last event)."""
    events: list[SSEEvent] = field(default_factory=list)
    """A stream's events as they went to the client, for observers."""
    state: dict[str, Any] = field(default_factory=dict)
    """Scratch space for plugins, keyed by plugin name."""
    response_headers: dict[str, str] = field(default_factory=dict)
    """Headers plugins add to the answer, success or error (``x-ratelimit-*``, ...);
    lower-case names. The server sends them; the core's own ``x-portkey-*`` win a clash."""

    created: float = field(default_factory=time.time)
    """Wall-clock time the request arrived."""
    started: float = field(default_factory=time.perf_counter)
    first_byte: float | None = None
    """``perf_counter()`` when the answer (or a stream's first event) was ready."""
    finished: float | None = None
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds spent per phase: pre_request, cache_lookup, upstream, post_response."""
    _cache_consulted: bool = field(default=False, init=False, repr=False)

    def cache_consulted(self) -> None:
        """Tell the core that this request is one your cache serves.

        Call it from ``cache_lookup`` whenever you look the request up, and also when
        ``cache_force_refresh`` makes you skip the read (you will still store the answer).
        Do not call it for requests your cache does not serve. The core derives
        ``cache_status`` from it, the same way for every cache plugin: an answer from an
        exact-match cache is ``HIT``, from a similarity cache (``cache_match = "similar"``)
        ``SEMANTIC HIT`` when it set ``cache_similarity``; no answer is ``REFRESH`` on a
        forced refresh, else ``SEMANTIC MISS`` when a similarity cache was consulted, else
        ``MISS``; ``DISABLED`` when no cache was consulted.
        """
        self._cache_consulted = True

    @property
    def retries_exhausted(self) -> bool:
        """The last call failed and was the last retry its target was allowed."""
        if not self.attempts:
            return False
        last = self.attempts[-1]
        return last.last_retry and last.error is not None

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    @property
    def model(self) -> str | None:
        model = self.body.get("model")
        return model if isinstance(model, str) else None

    def request_for(self, target: Target) -> dict[str, Any]:
        """The body to send to ``target``: the request with its ``override_params``."""
        if not target.override_params:
            return self.body
        return {**self.body, **target.override_params}

    def forwarded_headers(self, target: Target) -> dict[str, str]:
        """The incoming headers ``target`` forwards upstream (its ``forward_headers``)."""
        headers = self.headers
        return {name: headers[name] for name in target.forward_headers if name in headers}

    @property
    def retry_attempt_count(self) -> int:
        """Retries on the last target tried; -1 when its retries were exhausted."""
        if self.retries_exhausted:
            return -1
        if not self.attempts:
            return 0
        return self.attempts[-1].retry

    @property
    def last_used_option(self) -> str:
        """Portkey's ``x-portkey-last-used-option-index``: the path of the last target tried."""
        if self.target is not None:
            return self.target.path
        return self.plan.root.path

    @property
    def status(self) -> int:
        """The status the client gets (so far)."""
        if self.error is not None:
            return self.error.http_status
        return self.response.status if self.response is not None else 200

    def outcome(self) -> Outcome:
        return Outcome(
            trace_id=self.trace_id,
            provider=self.target.provider if self.target is not None else None,
            last_used_option=self.last_used_option,
            retry_attempt_count=self.retry_attempt_count,
            cache_status=self.cache_status,
            cache_similarity=self.cache_similarity,
            cache_reason=self.cache_reason,
            attempts=tuple(self.attempts),
            timings=dict(self.timings),
        )

    @property
    def elapsed(self) -> float:
        end = self.finished if self.finished is not None else time.perf_counter()
        return end - self.started

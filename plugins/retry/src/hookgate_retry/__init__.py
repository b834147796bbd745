"""hookgate plugin: transparent retries with exponential backoff and Retry-After.

The core owns the retry loop (it sleeps, counts attempts, stops at the request's time budget
and never retries a stream that has sent its first event); this plugin only decides, in
``on_error``, whether a failed call is tried again and after how long.

A request is retried when its config carries a ``retry`` block (top level or on the target,
the target's own block winning), or when ``every_request = true`` in plugins.toml. Portkey's
semantics: ``attempts`` counts retries after the first call. Delays come from tenacity's wait
strategies (exponential, optionally with full jitter); a ``Retry-After`` the upstream sent
replaces the computed delay.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import structlog
from hookgate import Decision, ProviderError, RequestContext, Target, hookimpl
from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from hookgate.config import RetryConfig

__all__ = ["Plugin", "RetrySettings", "Settings"]

log = structlog.get_logger("hookgate_retry")

StatusCode = Annotated[int, Field(ge=100, le=599)]
Seconds = Annotated[float, Field(ge=0)]


class RetrySettings(BaseModel):
    """``[plugins.retry]`` in plugins.toml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    every_request: bool = False
    """Retry requests whose config has no ``retry`` block too (Portkey: only when asked)."""
    attempts: Annotated[int, Field(ge=0)] = 3
    """Retries after the first call, for a block without ``attempts`` (and ``every_request``)."""
    max_attempts: Annotated[int, Field(ge=0)] = 5
    """Cap on ``attempts`` whatever a config asks (Portkey caps at 5)."""
    # Portkey's defaults plus 529, Anthropic's "overloaded": a busy upstream, worth retrying.
    on_status_codes: list[StatusCode] = Field(
        default_factory=lambda: [429, 500, 502, 503, 504, 529]
    )
    """Upstream statuses worth another call, for a block that lists none."""
    retry_connection_errors: bool = True
    """Retry when no answer came: refused or dropped connections, timeouts (and the 408 of a
    target's ``request_timeout``)."""
    initial_delay: Seconds = 1.0
    """The first retry's delay (its upper bound with jitter)."""
    multiplier: Annotated[float, Field(ge=1)] = 2.0
    """Each further retry waits this many times longer: 1 s, 2 s, 4 s, ..."""
    max_delay: Seconds = 30.0
    """Cap on a computed delay."""
    jitter: bool = True
    """Full jitter: wait a uniform random time up to the computed delay, so that clients
    failing together do not retry together. Off: exactly 1 s, 2 s, 4 s, ..."""
    use_retry_after: bool = True
    """Wait what the upstream asked (``retry-after-ms``, ``x-ms-retry-after-ms``,
    ``Retry-After``) instead of the computed delay; a config's ``use_retry_after_header``
    overrides this."""
    max_retry_after: Seconds = 60.0
    """Cap on a delay the upstream asked for."""
    budget: Annotated[float, Field(gt=0)] = 120.0
    """Seconds a request may spend from its arrival until a retry starts: a retry that would
    begin later is not made (the request's own timeout also applies)."""

    @model_validator(mode="after")
    def _attempts_within_cap(self) -> RetrySettings:
        if self.attempts > self.max_attempts:
            raise ValueError(
                f"attempts ({self.attempts}) exceeds max_attempts ({self.max_attempts})"
            )
        return self


Settings = RetrySettings
"""The name the loader and older code use."""


class Plugin:
    """The ``retry`` plugin."""

    Settings = RetrySettings

    def __init__(self, settings: RetrySettings | None = None) -> None:
        # tenacity only computes delays here; the core does the waiting.
        from tenacity import RetryCallState, wait_exponential, wait_random_exponential

        self.settings = settings = settings or RetrySettings()
        wait_kind = wait_random_exponential if settings.jitter else wait_exponential
        self._wait = wait_kind(
            multiplier=settings.initial_delay,
            exp_base=settings.multiplier,
            max=settings.max_delay,
        )
        self._call_state = RetryCallState

    @hookimpl(tryfirst=True)
    def on_error(
        self, ctx: RequestContext, target: Target, error: ProviderError
    ) -> Decision | None:
        block: RetryConfig | None = target.inherited("retry")
        if block is None and not self.settings.every_request:
            return None
        if not self.retryable(block, error):
            return None
        attempts = self.attempts(block)
        done = ctx.attempts[-1].retry if ctx.attempts else 0
        if done >= attempts:
            # The core already knows: the previous decision said that retry was the last.
            log.info(
                "retries_exhausted",
                trace_id=ctx.trace_id,
                target=target.path,
                status=error.upstream_status,
                retries=done,
            )
            return None
        delay, source = self.delay(block, error, done + 1)
        budget = min(self.settings.budget, ctx.timeout)
        if ctx.elapsed + delay >= budget:
            log.info(
                "retry_budget_spent",
                trace_id=ctx.trace_id,
                target=target.path,
                delay=round(delay, 3),
                elapsed=round(ctx.elapsed, 3),
                budget=budget,
            )
            return None
        log.info(
            "retry_scheduled",
            trace_id=ctx.trace_id,
            target=target.path,
            status=error.upstream_status,
            error=error.code,
            retry=done + 1,
            of=attempts,
            delay=round(delay, 3),
            delay_from=source,
        )
        return Decision.retry(
            delay,
            reason=f"{source} delay before retry {done + 1}/{attempts}",
            last=done + 1 >= attempts,
        )

    def attempts(self, block: RetryConfig | None) -> int:
        wanted = (
            self.settings.attempts if block is None or block.attempts is None else block.attempts
        )
        return min(wanted, self.settings.max_attempts)

    def retryable(self, block: RetryConfig | None, error: ProviderError) -> bool:
        status = error.upstream_status
        if status is None or status == 408:
            # No answer (connection refused/dropped, read timeout) or the core's per-target
            # timeout: the request never reached a verdict, so another call may succeed.
            return self.settings.retry_connection_errors
        codes = (
            block.on_status_codes
            if block is not None and block.on_status_codes is not None
            else self.settings.on_status_codes
        )
        return status in codes

    def delay(
        self, block: RetryConfig | None, error: ProviderError, retry: int
    ) -> tuple[float, str]:
        """Seconds before retry number ``retry`` (1-based), and where the figure came from."""
        use_header = self.settings.use_retry_after
        if block is not None and block.use_retry_after_header is not None:
            use_header = block.use_retry_after_header
        if use_header and error.retry_after is not None:
            return min(max(error.retry_after, 0.0), self.settings.max_retry_after), "retry-after"
        state: Any = self._call_state(None, None, (), {})  # type: ignore[arg-type]
        state.attempt_number = retry
        return float(self._wait(state)), "backoff"

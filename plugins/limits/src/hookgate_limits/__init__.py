"""hookgate-limits: rate limits and spend budgets, per gateway key, workspace, virtual key,
provider, model or metadata value, shared by every worker and instance.

Before a request is routed (``pre_request``) every limit that applies to it is **reserved** in
one atomic step: a request, and the tokens it may use (its ``max_tokens`` or
``default_completion_tokens``, plus an estimate of its prompt). Either all reservations fit or
none is taken and the request is refused with a 429, before any upstream is called. After the
answer (``post_response``) the token reservations are **settled** to the real usage and the
cost (from the plugin that keeps prices, through the ``request_usage`` hook) is added to the
spend budgets. So a burst of concurrent requests cannot overshoot a limit by more than the
difference between what they reserved and what they used.

Counts live in a memory-mapped table every process of the machine shares (``backend =
"memory"``: exact across the workers of one ``hookgate serve``, no server needed) or in Redis
(``backend = "redis"``: every instance), updated by one Lua script per operation.

::

    [plugins.limits]
    backend = "memory"                # "redis" with url = "redis://..." for several instances
    on_backend_error = "open"         # "closed": refuse (503) while the counters are unreachable

    [[plugins.limits.rules]]          # 5 requests a minute and $10 a month per end user
    scope = "metadata._user"
    rate_limits = [{ type = "requests", unit = "rpm", value = 5 }]
    usage_limits = { credit_limit = 10.0, periodic_reset = "monthly", alert_threshold = 8.0 }

Gateway keys from the control plane carry their own ``rate_limits`` and ``usage_limits``
(Portkey's ``api_keys.create(...)`` fields); they apply as a ``gateway_key`` rule of their own.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import orjson
import structlog
from hookgate import (
    GatewayError,
    Gauge,
    Group,
    RateLimitError,
    RequestContext,
    Response,
    StreamResponse,
    Target,
    hookimpl,
)
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .counters import NEVER, BackendError, Charge, Counters, FileCounters, RedisCounters
from .rules import RateLimit, Rule, UsageLimit
from .windows import format_reset, period_bounds, window_bounds

if TYPE_CHECKING:
    import click
    from hookgate import Gateway

__all__ = ["LimitsSettings", "Plugin", "RateLimit", "Rule", "Settings", "UsageLimit"]

log = structlog.get_logger("hookgate_limits")

STATE = "limits"
"""``ctx.state`` key: what this request holds (settled in ``post_response``)."""


class LimitsSettings(BaseModel):
    """``[plugins.limits]`` in plugins.toml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["memory", "redis"] = "memory"
    """``memory``: a table in a file every process of this machine maps (exact across the
    workers of one ``hookgate serve``); ``redis``: shared by every instance."""
    path: str = ".hookgate/limits.table"
    """The memory backend's table; a relative path is relative to the plugins.toml."""
    slots: Annotated[int, Field(ge=1024, le=16_777_216)] = 65_536
    """Counters the memory table holds at once (128 bytes each)."""
    url: str = Field(default="redis://127.0.0.1:6379/0", repr=False)
    key_prefix: str = "hookgate:limits:"
    timeout_ms: Annotated[float, Field(gt=0)] = 250.0
    """A Redis operation slower than this counts as a backend failure."""
    on_backend_error: Literal["open", "closed"] = "open"
    """``open``: serve the request unlimited, with a warning and a metric; ``closed``:
    refuse it with a 503 until the counters are reachable again."""
    key_limits: bool = True
    """Enforce the ``rate_limits`` / ``usage_limits`` gateway keys carry (control plane)."""
    default_completion_tokens: Annotated[int, Field(ge=0)] = 1024
    """Tokens reserved for the answer of a request that sets no ``max_tokens``."""
    alert_webhook: str | None = None
    """POSTed a JSON body when spending crosses a budget's ``alert_threshold``."""
    warn_interval_s: Annotated[float, Field(ge=0)] = 60.0
    """At most one warning about unreachable counters per interval."""
    rules: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _distinct_labels(self) -> LimitsSettings:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.label in seen:
                raise ValueError(
                    f"two rules are named {rule.label!r}: give each rule on the same scope a "
                    "distinct name (counts are kept per name)"
                )
            seen.add(rule.label)
        return self


Settings = LimitsSettings


@dataclass(slots=True)
class Held:
    """One limit a request holds a reservation on."""

    charge: Charge
    kind: Literal["requests", "tokens", "cost", "token_budget"]
    what: str
    """Whose limit, for messages: ``gateway key 'ci'``, ``metadata._user 'alice'``."""
    unit: str
    """``rpm``... for a rate limit, the period for a budget."""
    alert: float | None = None
    leaf: Target | None = None
    """The target it belongs to (target scopes); None for the request's own limits."""
    value: float | None = None
    """The counter's value once reserved (for the ``x-ratelimit-remaining-*`` headers)."""


@dataclass(slots=True)
class Holding:
    held: list[Held]
    tokens: float
    """Tokens each token limit reserved for this request."""


class _Refused(Exception):
    def __init__(self, held: Held, value: float) -> None:
        self.held = held
        self.value = value


class Plugin:
    """The ``limits`` plugin."""

    Settings = LimitsSettings

    def __init__(self, settings: LimitsSettings | None = None) -> None:
        self.settings = settings = settings or LimitsSettings()
        self.counters: Counters | None = None
        self.gateway: Gateway | None = None
        self._request_rules = [r for r in settings.rules if not r.on_targets]
        self._target_rules = [r for r in settings.rules if r.on_targets]
        self._key_rules: dict[str, tuple[object, object, Rule | None]] = {}
        self._failures = 0
        self._last_warning = 0.0
        self._alerts: set[asyncio.Task[None]] = set()
        self._session: Any = None

    # ---- life cycle -----------------------------------------------------------------------

    def _counters(self, source: str) -> Counters:
        settings = self.settings
        if settings.backend == "redis":
            return RedisCounters(
                settings.url,
                key_prefix=settings.key_prefix,
                timeout=settings.timeout_ms / 1000,
                connect_timeout=settings.timeout_ms / 1000,
            )
        return FileCounters(table_path(settings.path, source), settings.slots)

    @hookimpl
    async def startup(self, gateway: Gateway) -> None:
        self.gateway = gateway
        if self.counters is None:
            self.counters = self._counters(gateway.settings.source)
            await self.counters.start()

    @hookimpl
    async def shutdown(self, gateway: Gateway) -> None:
        for task in list(self._alerts):
            task.cancel()
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self.counters is not None:
            await self.counters.close()
            self.counters = None

    @hookimpl
    async def ready(self, gateway: Gateway) -> list[str]:
        if self.counters is None:
            return []
        problem = await self.counters.problem()
        return [problem] if problem else []

    # ---- which limits apply ---------------------------------------------------------------

    def _key_rule(self, principal: Any) -> Rule | None:
        """The rule a gateway key's own limits make (parsed once per version of the key)."""
        if principal is None or not self.settings.key_limits:
            return None
        rate, usage = getattr(principal, "rate_limits", ()), getattr(principal, "usage_limits", {})
        if not rate and not usage:
            return None
        key_id = principal.key_id
        cached = self._key_rules.get(key_id)
        if cached is not None and cached[0] is rate and cached[1] is usage:
            return cached[2]
        try:
            rule: Rule | None = Rule(
                name=f"key:{key_id}",
                scope="gateway_key",
                match=key_id,
                rate_limits=[RateLimit.model_validate(dict(item)) for item in rate or ()],
                usage_limits=UsageLimit.model_validate(dict(usage)) if usage else None,
            )
        except ValidationError as exc:
            log.warning("key_limits_invalid", key_id=key_id, error=str(exc).splitlines()[0])
            rule = None
        self._key_rules[key_id] = (rate, usage, rule)
        return rule

    def _scope_value(self, rule: Rule, ctx: RequestContext, leaf: Target | None) -> str | None:
        scope = rule.scope
        if scope == "global":
            return "all"
        if scope in ("gateway_key", "workspace"):
            principal = getattr(ctx, "principal", None)
            if principal is None:
                return None
            return principal.key_id if scope == "gateway_key" else principal.workspace
        if scope.startswith("metadata."):
            return ctx.metadata.get(scope[len("metadata.") :])
        assert leaf is not None
        if scope == "provider":
            return leaf.provider
        if scope == "virtual_key":
            return leaf.virtual_key
        model = leaf.override_params.get("model", ctx.body.get("model"))
        return model if isinstance(model, str) else None

    def _charges(
        self,
        rule: Rule,
        value: str,
        now: float,
        tokens: float,
        leaf: Target | None,
    ) -> list[Held]:
        what = _describe(rule, value)
        base = f"{rule.label}={value}"
        held = []
        for limit in rule.rate_limits:
            window, ends = window_bounds(limit.unit, now)
            amount = 1.0 if limit.type == "requests" else tokens
            charge = Charge(f"{base}|{limit.type}|{limit.unit}|{window}", amount, limit.value, ends)
            held.append(Held(charge, limit.type, what, limit.unit, None, leaf))
        budget = rule.usage_limits
        if budget is not None:
            start, ends = period_bounds(budget.periodic_reset, now)
            period = budget.periodic_reset or "total"
            if budget.type == "cost":
                charge = Charge(f"{base}|usd|{period}|{start}", 0.0, budget.credit_limit, ends)
                held.append(Held(charge, "cost", what, period, budget.alert_threshold, leaf))
            else:
                charge = Charge(
                    f"{base}|budget_tokens|{period}|{start}", tokens, budget.credit_limit, ends
                )
                held.append(
                    Held(charge, "token_budget", what, period, budget.alert_threshold, leaf)
                )
        return held

    def _tokens(self, ctx: RequestContext) -> float:
        """What a request may use: its prompt (about 4 characters a token) and its answer."""
        body = ctx.body
        answer = None
        for name in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
            value = body.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                answer = value
                break
        if answer is None:
            answer = self.settings.default_completion_tokens
        return float(math.ceil(_prompt_chars(body) / 4) + answer)

    # ---- the request path -----------------------------------------------------------------

    @hookimpl
    async def pre_request(self, ctx: RequestContext) -> None:
        principal = getattr(ctx, "principal", None)
        key_rule = self._key_rule(principal)
        if not self._request_rules and not self._target_rules and key_rule is None:
            return
        counters = self.counters
        if counters is None:
            return
        now = time.time()
        tokens = self._tokens(ctx)
        own: list[Held] = []
        rules: Iterable[Rule] = self._request_rules
        if key_rule is not None:
            rules = [key_rule, *self._request_rules]
        for rule in rules:
            value = self._scope_value(rule, ctx, None)
            if value is not None and rule.matches(value):
                own += self._charges(rule, value, now, tokens, None)
        per_leaf: list[tuple[Target, list[Held], bool]] = []
        if self._target_rules:
            for leaf in ctx.plan.leaves():
                held: list[Held] = []
                skip = False
                for rule in self._target_rules:
                    value = self._scope_value(rule, ctx, leaf)
                    if value is not None and rule.matches(value):
                        held += self._charges(rule, value, now, tokens, leaf)
                        skip = skip or rule.on_limit == "skip"
                if held:
                    per_leaf.append((leaf, held, skip))
        if not own and not per_leaf:
            return

        taken: list[Held] = []
        try:
            if own:
                await self._reserve(counters, own)
                taken += own
            refusal: _Refused | None = None
            pruned: list[Target] = []
            for leaf, held, skip in per_leaf:
                try:
                    await self._reserve(counters, held)
                    taken += held
                except _Refused as refused:
                    if not skip:
                        raise
                    refusal = refusal or refused
                    pruned.append(leaf)
            if pruned and not _prune(ctx, pruned):
                assert refusal is not None
                raise refusal
        except _Refused as refused:
            await self._release(counters, taken)
            raise self._refusal(ctx, refused, now) from None
        except BackendError as exc:
            await self._release(counters, taken)
            self._backend_failed(exc)
            if self.settings.on_backend_error == "closed":
                raise GatewayError(
                    "the gateway's rate-limit counters are unreachable; try again shortly",
                    status=503,
                    code="limits_unavailable",
                ) from None
            return
        ctx.state[STATE] = Holding(taken, tokens)
        ctx.response_headers.update(_headers(taken, now))

    async def _reserve(self, counters: Counters, held: list[Held]) -> None:
        verdict = await counters.reserve([h.charge for h in held])
        if verdict.refused is not None:
            raise _Refused(held[verdict.refused], verdict.values[verdict.refused])
        for item, value in zip(held, verdict.values, strict=True):
            item.value = value

    async def _release(self, counters: Counters, held: list[Held]) -> None:
        back = [_undo(h) for h in held if h.charge.amount]
        if not back:
            return
        try:
            await counters.add(back)
        except BackendError as exc:
            self._backend_failed(exc)

    def _refusal(self, ctx: RequestContext, refused: _Refused, now: float) -> RateLimitError:
        held = refused.held
        charge = held.charge
        wait = charge.expires - now if charge.expires < NEVER else None
        held.value = refused.value
        headers = _headers([held], now)
        if wait is not None:
            headers["retry-after"] = str(max(1, math.ceil(wait)))
        ctx.response_headers.update(headers)
        if held.kind in ("cost", "token_budget"):
            spent = (
                f"${refused.value:.4f} of ${charge.limit:.2f}"
                if held.kind == "cost"
                else f"{refused.value:.0f} of {charge.limit:.0f} tokens"
            )
            resets = "it does not reset" if wait is None else f"it resets at {_iso(charge.expires)}"
            period = "" if held.unit == "total" else f" ({held.unit})"
            return RateLimitError(
                f"the budget{period} of {held.what} is spent: {spent}; {resets}",
                retry_after=wait,
                code="budget_exceeded",
                type="insufficient_quota",
            )
        per = {"rps": "second", "rpm": "minute", "rph": "hour", "rpd": "day"}[held.unit]
        if held.kind == "tokens" and charge.amount > charge.limit:
            return RateLimitError(
                f"the request may use {charge.amount:.0f} tokens, more than the limit of "
                f"{charge.limit:.0f} tokens per {per} of {held.what}; lower max_tokens",
                retry_after=None,
                code="rate_limit_exceeded",
                type="tokens",
            )
        return RateLimitError(
            f"rate limit of {charge.limit:g} {held.kind} per {per} reached for {held.what}; "
            f"retry in {format_reset(wait or 0)}",
            retry_after=wait,
            code="rate_limit_exceeded",
            type=held.kind,
        )

    @hookimpl
    async def post_response(
        self, ctx: RequestContext, response: Response | StreamResponse | None
    ) -> None:
        holding: Holding | None = ctx.state.pop(STATE, None)
        counters = self.counters
        if holding is None or counters is None:
            return
        answered = ctx.target  # None: a cache answered, or nothing did
        used = None
        if answered is not None and response is not None and self.gateway is not None:
            used = self.gateway.hooks.request_usage(ctx, response)
        tokens = float(used.total_tokens) if used is not None else 0.0
        cost = used.cost if used is not None and used.cost is not None else 0.0
        adds: list[Held] = []
        amounts: list[float] = []
        for held in holding.held:
            mine = held.leaf is None or held.leaf is answered
            if held.kind == "requests":
                if not mine:  # a target the request held but never used
                    adds.append(held)
                    amounts.append(-1.0)
            elif held.kind in ("tokens", "token_budget"):
                amount = (tokens if mine else 0.0) - holding.tokens
                if amount:
                    adds.append(held)
                    amounts.append(amount)
            elif mine and cost > 0:
                adds.append(held)
                amounts.append(cost)
        if not adds:
            return
        charges = [
            Charge(h.charge.key, amount, h.charge.limit, h.charge.expires)
            for h, amount in zip(adds, amounts, strict=True)
        ]
        try:
            values = await counters.add(charges)
        except BackendError as exc:
            self._backend_failed(exc)
            return
        for held, amount, value in zip(adds, amounts, values, strict=True):
            threshold = held.alert
            if threshold is not None and amount > 0 and value - amount < threshold <= value:
                self._alert(held, value, threshold)

    # ---- failures and alerts ---------------------------------------------------------------

    def _backend_failed(self, exc: BackendError) -> None:
        self._failures += 1
        now = time.monotonic()
        if now - self._last_warning >= self.settings.warn_interval_s or not self._last_warning:
            self._last_warning = now
            log.warning(
                "limits_backend_unavailable",
                backend=self.settings.backend,
                error=str(exc),
                failing=self.settings.on_backend_error,
            )

    def _alert(self, held: Held, value: float, threshold: float) -> None:
        budget = {
            "event": "budget_alert",
            "budget": held.what,
            "kind": "usd" if held.kind == "cost" else "tokens",
            "period": held.unit,
            "spent": round(value, 6),
            "alert_threshold": threshold,
            "limit": held.charge.limit,
            "resets_at": _iso(held.charge.expires) if held.charge.expires < NEVER else None,
        }
        log.warning("budget_alert", **{k: v for k, v in budget.items() if k != "event"})
        if self.settings.alert_webhook:
            task = asyncio.get_running_loop().create_task(self._post_alert(budget))
            self._alerts.add(task)
            task.add_done_callback(self._alerts.discard)

    async def _post_alert(self, body: dict[str, Any]) -> None:
        import aiohttp

        url = self.settings.alert_webhook
        assert url is not None
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        try:
            async with self._session.post(
                url, data=orjson.dumps(body), headers={"content-type": "application/json"}
            ) as answer:
                if answer.status >= 400:
                    log.warning("budget_alert_webhook_failed", status=answer.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("budget_alert_webhook_failed", error=f"{type(exc).__name__}: {exc}")

    # ---- what it reports ------------------------------------------------------------------

    @hookimpl
    def metrics(self, gateway: Gateway) -> list[Gauge]:
        entries = read_entries_sync(self.settings, gateway.settings.source)
        used: list[tuple[Mapping[str, str], float]] = []
        for key, value, _ in entries[:1000]:
            labels = parse_key(key)
            if labels is not None:
                used.append((labels, value))
        return [
            Gauge(
                "hookgate_limit_used",
                "What each limit's current window or period has used (requests, tokens, USD).",
                used,
            ),
            Gauge(
                "hookgate_limit_backend_failures",
                "Counter operations that failed in this worker since it started.",
                [({}, float(self._failures))],
            ),
        ]

    @hookimpl
    def register_commands(self, cli: click.Group) -> None:
        from .cli import add_commands

        add_commands(cli)


# ---- helpers ----------------------------------------------------------------------------------


def table_path(path: str, source: str) -> Path:
    found = Path(path).expanduser()
    if found.is_absolute() or source.startswith("<"):
        return found
    return Path(source).resolve().parent / found


def parse_key(key: str) -> dict[str, str] | None:
    """``rule=value|kind|unit|window`` as labels, for metrics and ``hookgate limits show``."""
    parts = key.rsplit("|", 3)
    if len(parts) != 4 or "=" not in parts[0]:
        return None
    rule, _, value = parts[0].partition("=")
    return {"rule": rule, "value": value, "kind": parts[1], "unit": parts[2]}


def read_entries_sync(settings: LimitsSettings, source: str) -> list[tuple[str, float, float]]:
    """Every live counter, read without an event loop (``/metrics`` runs in a thread)."""
    if settings.backend == "memory":
        table = FileCounters(table_path(settings.path, source), settings.slots)
        try:
            return asyncio.run(table.entries())
        except (OSError, BackendError):
            return []
        finally:
            asyncio.run(table.close())
    import redis

    client = redis.Redis.from_url(
        settings.url, socket_timeout=1.0, socket_connect_timeout=1.0, decode_responses=True
    )
    found: list[tuple[str, float, float]] = []
    try:
        for name in client.scan_iter(match=settings.key_prefix + "*", count=500):
            value = client.get(name)
            if value is None:
                continue
            ttl = client.ttl(name)
            expires = time.time() + ttl if isinstance(ttl, int) and ttl > 0 else NEVER
            found.append((name[len(settings.key_prefix) :], float(value), expires))
            if len(found) >= 10_000:
                break
    except redis.RedisError:
        return found
    finally:
        client.close()
    return found


def _describe(rule: Rule, value: str) -> str:
    if rule.name and rule.name.startswith("key:"):
        return f"gateway key {value!r}"
    if rule.scope == "global":
        return f"rule {rule.label!r}" if rule.name else "the gateway"
    named = f" (rule {rule.name!r})" if rule.name else ""
    scope = rule.scope if rule.scope.startswith("metadata.") else rule.scope.replace("_", " ")
    return f"{scope} {value!r}{named}"


def _prompt_chars(body: Mapping[str, Any]) -> int:
    total = 0
    for name in ("messages", "input", "prompt", "system", "instructions"):
        value = body.get(name)
        if value is not None:
            total += len(value) if isinstance(value, str) else len(orjson.dumps(value))
    return total


def _undo(held: Held) -> Charge:
    charge = held.charge
    return Charge(charge.key, -charge.amount, charge.limit, charge.expires)


def _headers(held: Sequence[Held], now: float) -> dict[str, str]:
    """OpenAI's ``x-ratelimit-*`` headers for the tightest request and token limits."""
    headers: dict[str, str] = {}
    for kind in ("requests", "tokens"):
        tightest: tuple[float, Held] | None = None
        for item in held:
            if item.kind != kind:
                continue
            value = item.value
            if value is None:
                continue
            remaining = item.charge.limit - value
            if tightest is None or remaining < tightest[0]:
                tightest = (remaining, item)
        if tightest is None:
            continue
        remaining, item = tightest
        headers[f"x-ratelimit-limit-{kind}"] = f"{item.charge.limit:.0f}"
        headers[f"x-ratelimit-remaining-{kind}"] = f"{max(0.0, remaining):.0f}"
        headers[f"x-ratelimit-reset-{kind}"] = format_reset(max(0.0, item.charge.expires - now))
    return headers


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _prune(ctx: RequestContext, pruned: Sequence[Target]) -> bool:
    """Take ``pruned`` targets out of their groups' route order; False when the request has
    no target left."""
    out = {id(leaf) for leaf in pruned}

    def usable(node: Target | Group) -> bool:
        if isinstance(node, Target):
            return id(node) not in out
        return any(usable(child) for child in node.targets)

    root = ctx.plan.root
    if not usable(root):
        return False
    for group in ctx.plan.groups():
        children = group.targets
        order = ctx.route_order.get(group.path)
        if group.mode == "fallback":
            base = order if order is not None else list(range(len(children)))
            kept = [i for i in base if usable(children[i])]
        else:
            first = next((i for i, child in enumerate(children) if child.weight > 0), 0)
            base = order if order is not None else [first]
            kept = [i for i in base if usable(children[i])]
            if not kept:  # the pick is limited: pick again among the rest, by weight
                rest = [i for i, c in enumerate(children) if c.weight > 0 and usable(c)]
                if rest:
                    kept = [random.choices(rest, [children[i].weight for i in rest])[0]]
        ctx.route_order[group.path] = kept
    return True

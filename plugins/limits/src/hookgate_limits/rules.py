"""What is limited: rules from plugins.toml and the limits a gateway key carries, in Portkey's
shapes (``rate_limits`` and ``usage_limits`` of its ``api_keys``).

A rule names a **scope** (what is counted) and, with ``match``, which of its values:

========================  =======================================================
scope                     counted per
========================  =======================================================
``global``                the whole gateway
``gateway_key``           gateway key (the control plane's key id)
``workspace``             workspace of the calling key
``metadata.<name>``       value of ``x-portkey-metadata`` field ``<name>`` (``_user``)
``provider``              target provider (``openai``, ``anthropic``, ...)
``virtual_key``           target virtual key
``model``                 model sent to the target
========================  =======================================================

The last three are **target scopes**: they are checked for every target a request may use,
and with ``on_limit = "skip"`` a limited target is taken out of its fallback or load-balance
group instead of refusing the request.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .windows import CALENDAR, RATE_UNITS, duration

__all__ = ["REQUEST_SCOPES", "TARGET_SCOPES", "RateLimit", "Rule", "UsageLimit"]

REQUEST_SCOPES = ("global", "gateway_key", "workspace")
TARGET_SCOPES = ("provider", "virtual_key", "model")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RateLimit(_Model):
    """Portkey's ``{"type": "requests", "unit": "rpm", "value": 100}``."""

    type: Literal["requests", "tokens"] = "requests"
    unit: Literal["rps", "rpm", "rph", "rpd"] = "rpm"
    value: Annotated[float, Field(ge=0)]
    """Requests (or tokens) per window; 0 refuses every request."""

    @property
    def window(self) -> int:
        return RATE_UNITS[self.unit]


class UsageLimit(_Model):
    """Portkey's ``{"credit_limit": 10, "periodic_reset": "monthly", "alert_threshold": 8}``."""

    credit_limit: Annotated[float, Field(ge=0)]
    """US dollars (``type = "cost"``) or tokens (``type = "tokens"``) per period."""
    type: Literal["cost", "tokens"] = "cost"
    periodic_reset: str | None = None
    """``daily``, ``weekly`` (from Monday), ``monthly`` (UTC), a length such as ``"6h"``, or
    None: the budget never resets."""
    alert_threshold: Annotated[float, Field(ge=0)] | None = None
    """In the budget's unit: once spending crosses it, a warning is logged and the alert
    webhook called, once per period."""

    @field_validator("periodic_reset")
    @classmethod
    def _period(cls, value: str | None) -> str | None:
        if value is None or value in CALENDAR or duration(value) is not None:
            return value
        raise ValueError("must be daily, weekly, monthly or a length such as '30s', '6h', '14d'")


class Rule(_Model):
    """``[[plugins.limits.rules]]``."""

    name: str | None = None
    """Shown in refusals, ``hookgate limits show`` and metrics; defaults to the scope."""
    scope: str
    match: str | list[str] = "*"
    """``"*"``: every value counted on its own; else only these values are limited."""
    rate_limits: list[RateLimit] = Field(default_factory=list)
    usage_limits: UsageLimit | None = None
    on_limit: Literal["refuse", "skip"] = "refuse"
    """Target scopes only: ``skip`` takes a limited target out of its group; a request with
    no target left is refused."""

    @field_validator("scope")
    @classmethod
    def _scope(cls, value: str) -> str:
        if value in REQUEST_SCOPES or value in TARGET_SCOPES:
            return value
        if value.startswith("metadata.") and len(value) > len("metadata."):
            return value
        raise ValueError(
            "must be global, gateway_key, workspace, metadata.<name>, provider, virtual_key "
            "or model"
        )

    @property
    def label(self) -> str:
        return self.name or self.scope

    @property
    def on_targets(self) -> bool:
        return self.scope in TARGET_SCOPES

    def matches(self, value: str) -> bool:
        if self.match == "*":
            return True
        if isinstance(self.match, str):
            return value == self.match
        return value in self.match

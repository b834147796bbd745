"""Token prices and what a request cost.

The shipped table (``prices.json``, beside this module) holds public list prices in US dollars
per million tokens, with the date they were checked. plugins.toml may add models or replace
entries. A model that is not in the table has no cost (None): hookgate never guesses a price
from a similar name. The one liberty taken is a dated snapshot name (``gpt-4o-mini-2024-07-18``,
``claude-3-haiku-20240307``): when the snapshot itself is not listed it is priced as its base
model, which is how providers name the same model at a point in time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import orjson

__all__ = ["Price", "PriceTable", "Usage"]

_SNAPSHOT = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8})$")


@dataclass(frozen=True, slots=True)
class Price:
    """Dollars per token."""

    input: float
    output: float
    cached_input: float | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    prompt: int
    completion: int
    cached: int = 0
    """Prompt tokens served from the provider's prompt cache (part of ``prompt``)."""

    @property
    def total(self) -> int:
        return self.prompt + self.completion


class PriceTable:
    """Model name -> :class:`Price`."""

    def __init__(self, prices: Mapping[str, Price], as_of: str | None = None) -> None:
        self._prices = dict(prices)
        self.as_of = as_of

    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        overrides: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> PriceTable:
        """The shipped table (or the one at ``path``) with ``overrides`` applied; both are in
        dollars per million tokens."""
        raw = (
            Path(path).read_bytes()
            if path is not None
            else files(__package__).joinpath("prices.json").read_bytes()
        )
        data = orjson.loads(raw)
        unit = float(data.get("unit_tokens", 1_000_000))
        prices = {name: _price(entry, unit) for name, entry in data["models"].items()}
        for name, entry in (overrides or {}).items():
            prices[name] = _price(entry, 1_000_000)
        return cls(prices, data.get("as_of"))

    def __contains__(self, model: str) -> bool:
        return self.price(model) is not None

    def price(self, model: str | None) -> Price | None:
        if not model:
            return None
        found = self._prices.get(model)
        if found is None:
            base = _SNAPSHOT.sub("", model)
            if base != model:
                found = self._prices.get(base)
        return found

    def cost(self, model: str | None, usage: Usage | None) -> float | None:
        """Dollars for ``usage`` on ``model``; None when either is unknown."""
        price = self.price(model)
        if price is None or usage is None:
            return None
        cached = min(max(usage.cached, 0), usage.prompt)
        cached_rate = price.cached_input if price.cached_input is not None else price.input
        return (
            (usage.prompt - cached) * price.input
            + cached * cached_rate
            + usage.completion * price.output
        )


def _price(entry: Mapping[str, Any], unit: float) -> Price:
    cached = entry.get("cached_input")
    return Price(
        input=float(entry["input"]) / unit,
        output=float(entry.get("output", 0.0)) / unit,
        cached_input=None if cached is None else float(cached) / unit,
    )

"""What plugins tell each other about a request's cost and the gateway's state.

The plugin that keeps prices answers ``request_usage`` with a :class:`Usage`; a plugin whose
state any worker can read for the whole process group (shared counters) reports it with
``metrics`` as :class:`Gauge` values, and the plugin serving ``/metrics`` exposes them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Gauge", "Usage"]


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens a request used and what they cost."""

    prompt_tokens: int
    completion_tokens: int
    cost: float | None = None
    """US dollars; None when the model has no known price."""
    estimated: bool = False
    """True when the upstream reported no usage and the tokens were counted from the text."""

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Gauge:
    """One Prometheus gauge family: ``name{labels} value`` for each of ``values``."""

    name: str
    help: str
    values: Sequence[tuple[Mapping[str, str], float]]

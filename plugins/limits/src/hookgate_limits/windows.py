"""Time windows: when a rate-limit window or a budget period starts and ends.

Rate-limit windows are fixed and aligned to the clock (a minute starts at :00), so every
process and instance agrees on them without talking. Budget periods are calendar periods in
UTC (a day, a week from Monday, a month from its first day), or any fixed length
(``"30s"``, ``"6h"``, ``"14d"``) aligned to the Unix epoch.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

__all__ = ["RATE_UNITS", "duration", "format_reset", "period_bounds", "window_bounds"]

RATE_UNITS = {"rps": 1, "rpm": 60, "rph": 3600, "rpd": 86400}
"""Portkey's units (requests or tokens per minute, hour, day), and per second."""

_LENGTH = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d)$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
CALENDAR = ("daily", "weekly", "monthly")


def duration(text: str) -> float | None:
    """Seconds in ``"30s"``, ``"15m"``, ``"6h"``, ``"14d"``; None if ``text`` is not one."""
    found = _LENGTH.match(text.strip())
    if found is None:
        return None
    return float(found.group(1)) * _SECONDS[found.group(2)]


def window_bounds(unit: str, now: float) -> tuple[int, float]:
    """The window of a rate limit in ``unit``: its number and its end (Unix seconds)."""
    length = RATE_UNITS[unit]
    index = int(now // length)
    return index, float((index + 1) * length)


def period_bounds(period: str | None, now: float) -> tuple[int, float]:
    """A budget period's start (its id) and end; a budget without a period never resets."""
    if period is None:
        return 0, 1e18
    if period in CALENDAR:
        moment = datetime.fromtimestamp(now, UTC)
        day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        if period == "daily":
            start, end = day, day + timedelta(days=1)
        elif period == "weekly":
            start = day - timedelta(days=day.weekday())
            end = start + timedelta(days=7)
        else:
            start = day.replace(day=1)
            end = (start + timedelta(days=32)).replace(day=1)
        return int(start.timestamp()), end.timestamp()
    length = duration(period)
    if length is None:
        raise ValueError(f"unknown period {period!r}")
    index = int(now // length)
    return int(index * length), (index + 1) * length


def format_reset(seconds: float) -> str:
    """OpenAI's ``x-ratelimit-reset-*`` format: ``"20ms"``, ``"6s"``, ``"1m30s"``, ``"2h0m0s"``."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"

"""``hookgate stats``: what the monitoring page shows, computed from the log store.

Percentiles use the nearest-rank method: p50 of n latencies is the ``ceil(0.5 * n)``-th
smallest. The cache hit rate is hits (``HIT``, ``SEMANTIC HIT``) over requests that went
through a cache (any status but ``DISABLED``).
"""

from __future__ import annotations

import math
import sqlite3
from typing import Any

from hookgate.logquery import LogFilter

from .sql import POSTGRES, SQLITE, record_filters, where

__all__ = ["HISTOGRAM_EDGES_MS", "compute_stats", "render_stats"]

HISTOGRAM_EDGES_MS = (10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)
PERCENTILES = (50, 90, 99)


def _percentile(ordered: list[float], p: float) -> float | None:
    if not ordered:
        return None
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def compute_stats(
    conn: sqlite3.Connection | Any,
    *,
    since: float | None = None,
    until: float | None = None,
    by_metadata: str | None = None,
    postgres: bool = False,
) -> dict[str, Any]:
    """The numbers, from a SQLite connection, or a psycopg one with ``postgres=True``."""
    d = POSTGRES if postgres else SQLITE
    clauses, params = record_filters(d, LogFilter(since=since, until=until))
    where_ = d.sql(where(clauses))
    table = d.requests

    def rows(sql: str, extra: list[Any] | None = None) -> list[tuple[Any, ...]]:
        return conn.execute(sql, [*(extra or []), *params]).fetchall()

    count, errors = rows(
        "SELECT COUNT(*), CAST(COALESCE(SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), 0) "
        f"AS BIGINT) FROM {table}{where_}"
    )[0]
    latencies = [
        r[0]
        for r in rows(
            f"SELECT latency_ms FROM {table}{where_}"
            f"{' AND' if where_ else ' WHERE'} latency_ms IS NOT NULL ORDER BY latency_ms"
        )
    ]
    histogram = []
    lower = 0.0
    for edge in (*HISTOGRAM_EDGES_MS, math.inf):
        n = sum(1 for value in latencies if lower <= value < edge)
        histogram.append({"from_ms": lower, "to_ms": None if edge == math.inf else edge, "n": n})
        lower = edge
    hits, lookups = rows(
        "SELECT CAST(COALESCE(SUM(CASE WHEN cache_status IN ('HIT', 'SEMANTIC HIT') THEN 1 "
        "ELSE 0 END), 0) AS BIGINT), CAST(COALESCE(SUM(CASE WHEN cache_status != 'DISABLED' "
        f"THEN 1 ELSE 0 END), 0) AS BIGINT) FROM {table}{where_}"
    )[0]
    error_types = [
        {"error_type": t, "error_code": c, "status": s, "n": n}
        for t, c, s, n in rows(
            f"SELECT error_type, error_code, status, COUNT(*) FROM {table}"
            f"{where_}{' AND' if where_ else ' WHERE'} error_type IS NOT NULL "
            "GROUP BY error_type, error_code, status ORDER BY COUNT(*) DESC, error_type"
        )
    ]
    usage_columns = (
        "COUNT(*), CAST(COALESCE(SUM(prompt_tokens), 0) AS BIGINT), "
        "CAST(COALESCE(SUM(completion_tokens), 0) AS BIGINT), "
        "CAST(COALESCE(SUM(total_tokens), 0) AS BIGINT), SUM(cost_usd), SUM(cost_saved_usd)"
    )

    def usage(key: str, rows_: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
        return [
            {
                key: row[0],
                "requests": row[1],
                "prompt_tokens": row[2],
                "completion_tokens": row[3],
                "total_tokens": row[4],
                "cost_usd": row[5],
                "cost_saved_usd": row[6],
            }
            for row in rows_
        ]

    by_model = usage(
        "model",
        rows(
            f"SELECT COALESCE(model_answered, model) AS m, {usage_columns} FROM {table}{where_} "
            "GROUP BY m ORDER BY COUNT(*) DESC, m"
        ),
    )
    result: dict[str, Any] = {
        "since": since,
        "until": until,
        "requests": count,
        "errors": errors,
        "latency_ms": {f"p{p}": _percentile(latencies, p) for p in PERCENTILES},
        "latency_histogram": histogram,
        "cache": {
            "lookups": lookups,
            "hits": hits,
            "hit_rate": hits / lookups if lookups else None,
        },
        "error_types": error_types,
        "by_model": by_model,
    }
    if by_metadata is not None:
        if postgres:
            pick, key = "metadata ->> %s", by_metadata
        else:
            pick, key = "json_extract(metadata, ?)", '$."' + by_metadata.replace('"', "") + '"'
        result["by_metadata"] = {
            "key": by_metadata,
            "groups": usage(
                "value",
                rows(
                    f"SELECT {pick} AS v, {usage_columns} FROM {table}"
                    f"{where_} GROUP BY v ORDER BY COUNT(*) DESC, v",
                    [key],
                ),
            ),
        }
    return result


def _money(value: float | None) -> str:
    return "-" if value is None else f"${value:.6f}"


def _num(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:.1f}{unit}"


def render_stats(stats: dict[str, Any], width: int = 40) -> str:
    """The text ``hookgate stats`` prints."""
    lines = [
        f"requests: {stats['requests']}   errors: {stats['errors']}",
        "latency: " + "  ".join(f"{k} {_num(v, ' ms')}" for k, v in stats["latency_ms"].items()),
        "",
        "latency histogram:",
    ]
    peak = max((b["n"] for b in stats["latency_histogram"]), default=0) or 1
    for bucket in stats["latency_histogram"]:
        upper = bucket["to_ms"]
        label = (
            f"{bucket['from_ms']:g}-{upper:g} ms"
            if upper is not None
            else f">= {bucket['from_ms']:g} ms"
        )
        bar = "#" * math.ceil(bucket["n"] / peak * width) if bucket["n"] else ""
        lines.append(f"  {label:>16} | {bar} {bucket['n']}")
    cache = stats["cache"]
    rate = "-" if cache["hit_rate"] is None else f"{cache['hit_rate'] * 100:.1f}%"
    lines += ["", f"cache: {cache['hits']} hits of {cache['lookups']} lookups ({rate})", ""]
    lines.append("errors by type:")
    if not stats["error_types"]:
        lines.append("  none")
    for e in stats["error_types"]:
        code = f" ({e['error_code']})" if e["error_code"] else ""
        lines.append(f"  {e['n']:>6}  {e['status']}  {e['error_type']}{code}")
    groups = [("model", stats["by_model"], "model")]
    if "by_metadata" in stats:
        groups.append(
            (f"metadata {stats['by_metadata']['key']}", stats["by_metadata"]["groups"], "value")
        )
    for title, entries, key in groups:
        lines += ["", f"by {title}:"]
        lines.append(
            f"  {'':<28} {'requests':>8} {'prompt':>9} {'completion':>10} {'cost':>12} {'saved':>12}"
        )
        for entry in entries:
            name = "(none)" if entry[key] is None else str(entry[key])
            lines.append(
                f"  {name:<28} {entry['requests']:>8} {entry['prompt_tokens']:>9} "
                f"{entry['completion_tokens']:>10} {_money(entry['cost_usd']):>12} "
                f"{_money(entry['cost_saved_usd']):>12}"
            )
    return "\n".join(lines)

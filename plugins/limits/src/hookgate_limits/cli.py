"""``hookgate limits show``: what every limit has used in its current window or period."""

from __future__ import annotations

import time
from typing import Any

import click
import orjson

__all__ = ["add_commands"]


def _settings(config_path: str | None) -> tuple[object, str]:
    from hookgate.errors import HookgateError
    from hookgate.settings import load_settings

    from . import Settings

    try:
        settings = load_settings(config_path)
    except HookgateError as exc:
        raise click.ClickException(str(exc)) from exc
    table = dict(settings.plugins.get("limits", {}))
    table.pop("use", None)
    try:
        return Settings.model_validate(table), settings.source
    except ValueError as exc:
        raise click.ClickException(f"{settings.source}: [plugins.limits] {exc}") from exc


def _limits_of(settings: object) -> dict[tuple[str, str, str], float]:
    """``(rule, kind, unit) -> limit`` for the rules plugins.toml declares."""
    from . import Settings

    assert isinstance(settings, Settings)
    known: dict[tuple[str, str, str], float] = {}
    for rule in settings.rules:
        for limit in rule.rate_limits:
            known[(rule.label, limit.type, limit.unit)] = limit.value
        budget = rule.usage_limits
        if budget is not None:
            kind = "usd" if budget.type == "cost" else "budget_tokens"
            known[(rule.label, kind, budget.periodic_reset or "total")] = budget.credit_limit
    return known


def add_commands(cli: click.Group) -> None:
    @cli.group("limits")
    def limits() -> None:
        """Rate limits and spend budgets (hookgate-limits)."""

    @limits.command("show")
    @click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        default=None,
        help="plugins.toml (default: $HOOKGATE_CONFIG or ./plugins.toml)",
    )
    @click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
    def show(config_path: str | None, as_json: bool) -> None:
        """Current usage of every limit, from the counters the gateway shares."""
        from . import parse_key, read_entries_sync

        settings, source = _settings(config_path)
        known = _limits_of(settings)
        now = time.time()
        rows: list[dict[str, Any]] = []
        for key, value, expires in read_entries_sync(settings, source):  # type: ignore[arg-type]
            labels = parse_key(key)
            if labels is None:
                continue
            known_limit = known.get((labels["rule"], labels["kind"], labels["unit"]))
            rows.append(
                {
                    **labels,
                    "used": round(value, 6),
                    "limit": known_limit,
                    "resets_in_s": None if expires >= 1e17 else round(expires - now, 1),
                }
            )
        rows.sort(key=lambda r: (r["rule"], r["value"], r["kind"], r["unit"]))
        if as_json:
            click.echo(orjson.dumps({"object": "list", "data": rows}).decode())
            return
        if not rows:
            click.echo("no limit has been used in its current window", err=True)
            return
        head = (
            f"{'rule':<24} {'value':<20} {'kind':<14} {'unit':<8} {'used':>12} {'limit':>12} resets"
        )
        click.echo(head)
        for r in rows:
            shown_limit = "" if r["limit"] is None else f"{r['limit']:g}"
            resets = "never" if r["resets_in_s"] is None else f"{r['resets_in_s']:g}s"
            click.echo(
                f"{r['rule'][:24]:<24} {r['value'][:20]:<20} {r['kind']:<14} {r['unit']:<8} "
                f"{r['used']:>12g} {shown_limit:>12} {resets}"
            )

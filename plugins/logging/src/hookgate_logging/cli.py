"""``hookgate logs`` and ``hookgate stats``: read the log store that plugins.toml names."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import orjson

__all__ = ["add_commands", "parse_time"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(value: str | None, now: float | None = None) -> float | None:
    """``30m``/``2h``/``7d`` ago, an ISO 8601 time (UTC unless it says), or epoch seconds."""
    if value is None:
        return None
    now = time.time() if now is None else now
    if match := _DURATION.match(value):
        return now - float(match.group(1)) * _UNITS[match.group(2)]
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a duration (30m, 2h, 7d), an ISO time or epoch seconds"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _store_path(config_path: str | None, db: str | None) -> Path | str:
    """The SQLite file, or the ``postgresql://`` URL, of the store plugins.toml names."""
    from hookgate.errors import HookgateError
    from hookgate.settings import load_settings

    from . import Settings, _resolve

    if db is not None:
        return db if db.startswith(("postgresql://", "postgres://")) else Path(db)
    try:
        settings = load_settings(config_path)
    except HookgateError as exc:
        raise click.ClickException(str(exc)) from exc
    table = dict(settings.plugins.get("logging", {}))
    table.pop("use", None)
    try:
        plugin_settings = Settings.model_validate(table)
    except ValueError as exc:
        raise click.ClickException(f"{settings.source}: [plugins.logging] {exc}") from exc
    if not plugin_settings.store.enabled:
        raise click.ClickException(f"{settings.source}: [plugins.logging.store] is disabled")
    if plugin_settings.store.url:
        return plugin_settings.store.url
    return _resolve(plugin_settings.store.path, settings.source)


def _open(config_path: str | None, db: str | None) -> Any:
    from .store import LogStore

    path = _store_path(config_path, db)
    if isinstance(path, str):
        from .pgstore import PostgresLogStore, register_url_secrets

        register_url_secrets(path)
        return PostgresLogStore(path)
    if not path.exists():
        raise click.ClickException(f"no log store at {path} (no request was logged yet?)")
    return LogStore(path)


_CONFIG = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="plugins.toml naming the store (default: $HOOKGATE_CONFIG, then ./plugins.toml).",
)
_DB = click.option(
    "--db", default=None, help="Read this SQLite file (or postgresql:// URL) instead."
)
_SINCE = click.option("--since", default=None, help="From: 30m, 2h, 7d ago, ISO time or epoch.")
_UNTIL = click.option("--until", default=None, help="Until (same forms as --since).")


def _reading(read: Any) -> Any:
    """``read`` with a database that cannot be reached as a clear error, not a traceback."""

    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return read(*args, **kwargs)
        except Exception as exc:
            if type(exc).__module__.startswith("psycopg"):
                from hookgate.log import redact

                raise click.ClickException(
                    f"cannot read the log store: {redact(str(exc)).strip()}"
                ) from exc
            raise

    return run


def _cell(value: Any, fmt: str = "{}") -> str:
    return "-" if value is None else fmt.format(value)


def add_commands(cli: click.Group) -> None:
    """Add ``logs`` and ``stats`` to the ``hookgate`` command."""

    @cli.command()
    @_CONFIG
    @_DB
    @_SINCE
    @_UNTIL
    @click.option("--model", default=None, help="Requested or answering model.")
    @click.option("--status", type=int, default=None, help="HTTP status the client got.")
    @click.option("--trace-id", default=None)
    @click.option("--limit", type=int, default=50, show_default=True)
    @click.option("--json", "as_json", is_flag=True, help="One JSON record per line.")
    def logs(
        config_path: str | None,
        db: str | None,
        since: str | None,
        until: str | None,
        model: str | None,
        status: int | None,
        trace_id: str | None,
        limit: int,
        as_json: bool,
    ) -> None:
        """Show logged requests, newest first."""
        from hookgate.logquery import LogFilter

        from .query import read_records

        store = _open(config_path, db)
        wanted = LogFilter(
            since=parse_time(since),
            until=parse_time(until),
            model=model,
            status=status,
            trace_id=trace_id,
        )

        def read() -> list[dict[str, Any]]:
            with store.reading() as conn:
                return read_records(conn, store.dialect, wanted, limit)

        records = _reading(read)()
        if as_json:
            for record in records:
                click.echo(orjson.dumps(record).decode())
            return
        header = (
            "time",
            "trace_id",
            "status",
            "provider",
            "model",
            "ms",
            "tokens",
            "cost $",
            "cache",
            "error",
        )
        rows = [
            (
                record["timestamp"],
                record["trace_id"],
                str(record["status"]),
                _cell(record["provider"]),
                _cell(record["model_answered"] or record["model"]),
                _cell(record["latency_ms"], "{:.1f}"),
                _cell(record["total_tokens"]),
                _cell(record["cost_usd"], "{:.6f}"),
                record["cache_status"],
                _cell(record["error_code"] or record["error_type"]),
            )
            for record in records
        ]
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())

    @cli.command("logs-copy")
    @click.option("--from", "source", required=True, help="The SQLite log store file.")
    @click.option("--to", "target", required=True, help="The PostgreSQL store's URL.")
    def logs_copy(source: str, target: str) -> None:
        """Copy a SQLite log store's records into PostgreSQL (again: only what is missing)."""
        from .pgstore import PostgresLogStore, is_postgres_url, register_url_secrets
        from .store import LogStore

        if not is_postgres_url(target):
            raise click.BadParameter("must be a postgresql:// URL", param_hint="--to")
        register_url_secrets(target)
        if not Path(source).exists():
            raise click.ClickException(f"no log store at {source}")
        sqlite_store = LogStore(source)
        pg = PostgresLogStore(target)
        copied = seen = 0

        def run() -> None:
            nonlocal copied, seen
            with sqlite_store.reading() as conn:
                rows = conn.execute("SELECT record FROM requests ORDER BY id")
                while batch := rows.fetchmany(5000):
                    items = [(orjson.loads(text), text) for (text,) in batch]
                    seen += len(items)
                    copied += pg.write_now(items)

        try:
            _reading(run)()
        finally:
            pg.close(0)
        click.echo(f"copied {copied} of {seen} records ({seen - copied} were already there)")

    @cli.command()
    @_CONFIG
    @_DB
    @click.option(
        "--since", default="24h", show_default=True, help="From: 30m, 2h, 7d ago, ISO or epoch."
    )
    @_UNTIL
    @click.option("--by", "by_metadata", default=None, help="Also group by this metadata key.")
    @click.option("--json", "as_json", is_flag=True, help="Print the numbers as JSON.")
    def stats(
        config_path: str | None,
        db: str | None,
        since: str,
        until: str | None,
        by_metadata: str | None,
        as_json: bool,
    ) -> None:
        """Latency percentiles and histogram, cache hit rate, errors, tokens and cost."""
        from .stats import compute_stats, render_stats
        from .store import LogStore

        store = _open(config_path, db)

        def compute() -> dict[str, Any]:
            with store.reading() as conn:
                return compute_stats(
                    conn,
                    since=parse_time(since),
                    until=parse_time(until),
                    by_metadata=by_metadata,
                    postgres=not isinstance(store, LogStore),
                )

        result = _reading(compute)()
        if as_json:
            click.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
        else:
            click.echo(render_stats(result))

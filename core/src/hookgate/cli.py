"""The ``hookgate`` command: inspect, check and try a deployment, and serve it.

Plugins add subcommands through the ``register_commands`` hook (``hookgate logs`` comes from
the logging plugin).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from typing import Any

import click

from .errors import GatewayError, HookgateError
from .log import configure_logging
from .settings import find_settings_file, load_settings

__all__ = ["cli", "main"]

_CONFIG = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="plugins.toml to use (default: $HOOKGATE_CONFIG, then ./plugins.toml).",
)


def _gateway(config_path: str | None) -> Any:
    from .gateway import Gateway

    try:
        return Gateway.from_toml(config_path)
    except HookgateError as exc:
        raise click.ClickException(str(exc)) from exc


class _PluginCommands(click.Group):
    """Loads plugin subcommands lazily, so a broken plugins.toml never breaks ``check``."""

    _loaded = False

    def _load_plugin_commands(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        try:
            from .plugins import Hooks, load_plugins

            pm, _ = load_plugins(load_settings(_config_in(sys.argv[1:])))
        except HookgateError:
            return  # `hookgate check` explains the problem
        Hooks(pm).register_commands(self)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugin_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None:
            self._load_plugin_commands()
            command = super().get_command(ctx, cmd_name)
        return command


def _config_in(args: list[str]) -> str | None:
    """The ``--config`` a command line names: it decides which plugins add commands."""
    for i, arg in enumerate(args):
        if arg == "--config" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--config="):
            return arg.partition("=")[2]
    return None


@click.group(cls=_PluginCommands)
@click.version_option(package_name="hookgate")
@click.option(
    "--log-level", default="warning", show_default=True, help="debug, info, warning, error."
)
def cli(log_level: str) -> None:
    """hookgate: an OpenAI-compatible AI gateway built from plugins."""
    configure_logging(log_level)


@cli.command()
@_CONFIG
def plugins(config_path: str | None) -> None:
    """List installed plugins, which are enabled, and the hooks each implements."""
    from .plugins import installed_plugins

    installed = installed_plugins()
    enabled: dict[str, Any] = {}
    problem = None
    try:
        gateway = _gateway(config_path)
        enabled = {p.name: p for p in gateway.plugins}
    except click.ClickException as exc:
        problem = exc.message
    rows = []
    for name in sorted(set(installed) | set(enabled)):
        loaded = enabled.get(name)
        entry = installed.get(name)
        source = (
            loaded.source
            if loaded
            else (f"{entry.dist.name} {entry.dist.version}" if entry and entry.dist else "?")
        )
        hooks = ", ".join(loaded.hooks) if loaded else "-"
        rows.append((name, "yes" if loaded else "no", source, hooks))
    _table(("plugin", "enabled", "from", "hooks"), rows)
    if problem:
        click.echo(f"\nplugins.toml problem: {problem}", err=True)
        sys.exit(1)


@cli.command()
@_CONFIG
def check(config_path: str | None) -> None:
    """Validate plugins.toml, every enabled plugin's settings, and what requests would use:
    virtual keys, named configs and settings of plugins that are not enabled."""
    found = find_settings_file(config_path)
    gateway = _gateway(config_path)
    problems = gateway.problems()
    if problems:
        where = found if found is not None else "plugins.toml"
        raise click.ClickException(
            f"{where}: {len(problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in problems)
        )
    where = found if found is not None else "built-in defaults (no plugins.toml found)"
    click.echo(f"ok: {where}")
    click.echo(f"  plugins (hook order): {', '.join(p.name for p in gateway.plugins) or 'none'}")
    click.echo(f"  providers: {', '.join(sorted(gateway.providers)) or 'none'}")
    click.echo(f"  strategies: single{''.join(', ' + s for s in sorted(gateway.strategies))}")
    click.echo(f"  cache modes: {', '.join(sorted(gateway.cache_modes)) or 'none'}")
    click.echo(f"  named configs: {', '.join(sorted(gateway.settings.configs)) or 'none'}")
    click.echo(f"  virtual keys: {', '.join(sorted(gateway.settings.virtual_keys)) or 'none'}")


@cli.command()
@_CONFIG
def providers(config_path: str | None) -> None:
    """List provider names (Portkey slugs and aliases), their plugins and base URLs.

    A provider plugin may declare ``presets`` (name -> base URL) and ``aliases``
    (alias -> name) beside ``providers``; an enabled plugin shows what its settings made of them.
    """
    from .plugins import installed_plugins

    enabled: dict[str, Any] = {}
    problem = None
    try:
        enabled = {p.name: p.plugin for p in _gateway(config_path).plugins}
    except click.ClickException as exc:
        problem = exc.message
    plugins: dict[str, tuple[object, bool]] = {}
    broken = []
    for name, entry in installed_plugins().items():
        if name not in enabled:
            try:
                plugins[name] = (entry.load(), False)
            except Exception as exc:
                broken.append(f"{name} ({type(exc).__name__}: {exc})")
    plugins.update({name: (plugin, True) for name, plugin in enabled.items()})
    rows = []
    for name, (plugin, on) in sorted(plugins.items()):
        presets = getattr(plugin, "presets", None) or {}
        aliases = getattr(plugin, "aliases", None) or {}
        for provider in getattr(plugin, "providers", ()):
            where = f"alias of {aliases[provider]}" if provider in aliases else "-"
            rows.append(
                (provider.lower(), name, "yes" if on else "no", presets.get(provider, where))
            )
    _table(("provider", "plugin", "enabled", "base url"), sorted(rows))
    import textwrap

    from .routing import MODEL_ROUTING_RULE

    click.echo("\n" + textwrap.fill(MODEL_ROUTING_RULE[0].upper() + MODEL_ROUTING_RULE[1:], 88))
    if broken:
        click.echo(f"\ninstalled but not importable: {'; '.join(broken)}", err=True)
    if problem:
        click.echo(f"\nplugins.toml problem: {problem}", err=True)
        sys.exit(1)


@cli.command()
@_CONFIG
@click.argument("message")
@click.option("--model", default="gpt-4o-mini", show_default=True)
@click.option(
    "--provider", default=None, help="Provider to call (default: [gateway] default_provider)."
)
@click.option(
    "--gateway-config",
    "request_config",
    default=None,
    help="A config: JSON or an id from plugins.toml.",
)
@click.option("--stream/--no-stream", default=False)
def chat(
    config_path: str | None,
    message: str,
    model: str,
    provider: str | None,
    request_config: str | None,
    stream: bool,
) -> None:
    """Send one chat message through the gateway and print the answer."""
    from .gateway import CallOptions

    gateway = _gateway(config_path)

    async def run() -> None:
        async with gateway:
            answer = await gateway.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": message}],
                stream=stream,
                config=request_config,
                options=CallOptions(provider=provider),
            )
            if stream:
                async for chunk in answer:
                    if chunk.choices and chunk.choices[0].delta.content:
                        click.echo(chunk.choices[0].delta.content, nl=False)
                click.echo()
            else:
                click.echo(answer.choices[0].message.content)
            outcome = answer.hookgate
            click.echo(
                f"[{outcome.provider} via {outcome.last_used_option}, cache {outcome.cache_status}, "
                f"retries {outcome.retry_attempt_count}, trace {outcome.trace_id}]",
                err=True,
            )

    try:
        asyncio.run(run())
    except GatewayError as exc:
        raise click.ClickException(
            f"{exc.http_status}: {exc.to_dict()['error']['message']}"
        ) from exc


@cli.command()
@_CONFIG
def demo(config_path: str | None) -> None:
    """Run requests through the enabled plugins with the mock provider, showing every hook."""
    from .demo import run_demo

    gateway = _gateway(config_path)
    try:
        asyncio.run(run_demo(gateway, click.echo))
    except GatewayError as exc:
        raise click.ClickException(f"{exc.http_status}: {exc.message}") from exc


@cli.command()
@_CONFIG
@click.option("--host", default=None, help="Address to bind (default: [server] host, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default: [server] port, 8787).")
@click.option("--workers", type=int, default=None, help="Worker processes (default: one per core).")
@click.pass_context
def serve(
    ctx: click.Context,
    config_path: str | None,
    host: str | None,
    port: int | None,
    workers: int | None,
) -> None:
    """Serve the OpenAI-compatible API (/v1/chat/completions, ...) until SIGTERM."""
    try:
        from .server import serve as run_server
    except ImportError as exc:
        raise click.ClickException(
            f"the server needs the 'server' extra: pip install 'hookgate[server]' ({exc})"
        ) from exc
    try:
        run_server(config_path, host=host, port=port, workers=workers)
    except HookgateError as exc:  # a bad plugins.toml: the reason, once, before any worker
        raise click.ClickException(str(exc)) from exc


@cli.command("new-plugin")
@click.argument("name")
@click.option(
    "--dir",
    "parent",
    type=click.Path(file_okay=False),
    default=".",
    help="Folder to create hookgate-NAME/ in (default: the current one).",
)
def new_plugin(name: str, parent: str) -> None:
    """Write a plugin package hookgate-NAME/ with a hook, settings and a passing test."""
    from pathlib import Path

    from .scaffold import new_plugin as scaffold

    try:
        root = scaffold(name, Path(parent))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"created {root}")
    click.echo(f"  test it:   cd {root} && uv run pytest")
    click.echo(
        f"  enable it: pip install -e {root}, then plugins = [..., {name!r}] in plugins.toml"
    )


def _table(header: tuple[str, ...], rows: Sequence[tuple[object, ...]]) -> None:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo(
            "  ".join(
                str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)
            ).rstrip()
        )


def main() -> None:
    cli()

"""``hookgate workspaces|keys|configs|vkeys|audit``: the control plane from the command line.

The commands open the store of the plugins.toml named by ``--config`` directly (no server
needed) and act as an admin: whoever can run them can read the store's file anyway. With
``--json`` stdout holds exactly one JSON object; notices go to stderr.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import orjson
from hookgate.auth import Principal
from hookgate.errors import GatewayError, HookgateError

from .crypto import ENV_VAR, MasterKeyError, MasterKeyMissing
from .snapshot import Snapshot
from .store import StoreUnavailable

if TYPE_CHECKING:
    from .service import ControlPlane

__all__ = ["register"]

_CONFIG = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="plugins.toml whose store to use (default: $HOOKGATE_CONFIG, then ./plugins.toml).",
)
_JSON = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
_WORKSPACE = click.option("--workspace", default=None, help="Workspace slug (default: default).")


def _cli_principal() -> Principal:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return Principal(key_id="cli", name=f"cli:{user}", role="admin", source="cli")


def _plane(config_path: str | None) -> ControlPlane:
    from hookgate import Gateway
    from hookgate.settings import load_settings

    from . import Plugin, _as_member

    try:
        settings = load_settings(config_path)
        gateway = Gateway(settings)
    except HookgateError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        plugin = gateway.plugin("control")
    except KeyError:
        raise click.ClickException(
            f"{settings.source}: the 'control' plugin is not enabled in [gateway] plugins"
        ) from None
    assert isinstance(plugin, Plugin)

    def validate(config: dict[str, Any], workspace: str) -> None:
        gateway.check_config(config, _as_member(workspace))

    try:
        plane = plugin.bind(
            settings.source, list(settings.configs), list(settings.virtual_keys), validate
        )
    except HookgateError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        plane.store.migrate()
        with contextlib.suppress(MasterKeyMissing):  # writes of provider keys refuse later
            plugin.master = plane.master_key()
        # Validation resolves the virtual keys a config names from the snapshot.
        plugin.snapshot = Snapshot().apply(plane.store.changes_since(0), plugin.master)
    except (StoreUnavailable, OSError) as exc:
        plane.store.close()
        raise click.ClickException(f"the control store is unavailable: {exc}") from exc
    except (HookgateError, MasterKeyError) as exc:
        plane.store.close()
        raise click.ClickException(str(exc)) from exc
    return plane


def _run(action: Callable[[ControlPlane, Principal], Any], config_path: str | None) -> Any:
    plane = _plane(config_path)
    try:
        return action(plane, _cli_principal())
    except GatewayError as exc:
        raise click.ClickException(f"{exc.http_status}: {exc.message}") from exc
    finally:
        plane.store.close()


def _print(value: Any, as_json: bool, text: Callable[[], None]) -> None:
    if as_json:
        sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        text()


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    cells = [tuple("" if c is None else str(c) for c in row) for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _read_config(file: str | None, text: str | None) -> dict[str, Any]:
    if (file is None) == (text is None):
        raise click.UsageError("give the config with --file PATH or --config-json TEXT")
    raw = Path(file).read_bytes() if file is not None else (text or "").encode()
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise click.ClickException(f"the config is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise click.ClickException("the config must be a JSON object")
    return value


def register(cli: click.Group) -> None:
    # ---- workspaces ---------------------------------------------------------------------

    @cli.group()
    def workspaces() -> None:
        """Workspaces: who sees which configs, virtual keys and logs."""

    @workspaces.command("create")
    @_CONFIG
    @click.argument("name")
    @click.option("--description", default=None)
    @_JSON
    def workspaces_create(
        config_path: str | None, name: str, description: str | None, as_json: bool
    ) -> None:
        """Create workspace NAME (its slug, what --workspace takes)."""
        found = _run(
            lambda p, who: p.create_workspace(
                who, {"name": name, "slug": name, "description": description}
            ),
            config_path,
        )
        _print(found, as_json, lambda: click.echo(f"created workspace {found['slug']}"))

    @workspaces.command("list")
    @_CONFIG
    @_JSON
    def workspaces_list(config_path: str | None, as_json: bool) -> None:
        """List workspaces."""
        found = _run(lambda p, who: p.list_workspaces(who), config_path)
        _print(
            {"object": "list", "data": found},
            as_json,
            lambda: _table(
                ("slug", "name", "created"),
                [(w["slug"], w["name"], w["created_at"]) for w in found],
            ),
        )

    # ---- keys ---------------------------------------------------------------------------

    @cli.group()
    def keys() -> None:
        """Gateway keys: random, shown once, stored as a hash."""

    @keys.command("create")
    @_CONFIG
    @click.option("--name", required=True)
    @click.option("--role", type=click.Choice(["admin", "member", "viewer"]), required=True)
    @_WORKSPACE
    @click.option("--scopes", default=None, help="Comma-separated Portkey scopes.")
    @click.option("--expires-at", default=None, help="ISO 8601 time, e.g. 2030-01-31T00:00:00Z.")
    @click.option("--description", default=None)
    @_JSON
    def keys_create(
        config_path: str | None,
        name: str,
        role: str,
        workspace: str | None,
        scopes: str | None,
        expires_at: str | None,
        description: str | None,
        as_json: bool,
    ) -> None:
        """Create a gateway key (the first one opens the admin API). It is shown only now."""
        fields: dict[str, Any] = {
            "name": name,
            "role": role,
            "workspace_id": workspace,
            "description": description,
            "expires_at": expires_at,
        }
        if role == "admin":
            fields["type"] = "organisation"
        if scopes is not None:
            fields["scopes"] = [s.strip() for s in scopes.split(",") if s.strip()]
        view, token = _run(lambda p, who: p.create_key(who, fields), config_path)
        click.echo("store the key now: it is not shown again", err=True)
        _print(
            {**view, "key": token},
            as_json,
            lambda: click.echo(
                f"{token}\n  id {view['id']}, {view['role']} of {view['workspace_id']}"
            ),
        )

    @keys.command("list")
    @_CONFIG
    @_WORKSPACE
    @_JSON
    def keys_list(config_path: str | None, workspace: str | None, as_json: bool) -> None:
        """List gateway keys (hints only, never the keys)."""
        found = _run(lambda p, who: p.list_keys(who, workspace), config_path)
        _print(
            {"object": "list", "data": found},
            as_json,
            lambda: _table(
                ("id", "name", "role", "workspace", "status", "hint", "expires"),
                [
                    (
                        k["id"],
                        k["name"],
                        k["role"],
                        k["workspace_id"],
                        k["status"],
                        k["key"],
                        k["expires_at"] or "-",
                    )
                    for k in found
                ],
            ),
        )

    @keys.command("revoke")
    @_CONFIG
    @click.argument("key_id")
    @_JSON
    def keys_revoke(config_path: str | None, key_id: str, as_json: bool) -> None:
        """Revoke key KEY_ID: refused by every worker within a second."""
        found = _run(lambda p, who: p.revoke_key(who, key_id), config_path)
        _print(found, as_json, lambda: click.echo(f"revoked {key_id}"))

    # ---- configs ------------------------------------------------------------------------

    @cli.group()
    def configs() -> None:
        """Stored configs: every change a version, rollback by a new version."""

    @configs.command("list")
    @_CONFIG
    @_WORKSPACE
    @_JSON
    def configs_list(config_path: str | None, workspace: str | None, as_json: bool) -> None:
        """List stored configs and their current versions."""
        found = _run(lambda p, who: p.list_configs(who, workspace), config_path)
        _print(
            {"object": "list", "data": found},
            as_json,
            lambda: _table(
                ("slug", "name", "workspace", "version", "updated"),
                [
                    (c["slug"], c["name"], c["workspace_id"], c["version"], c["last_updated_at"])
                    for c in found
                ],
            ),
        )

    @configs.command("show")
    @_CONFIG
    @click.argument("slug")
    @click.option("--version", "version", default=None, help="A version id or number.")
    @_JSON
    def configs_show(
        config_path: str | None, slug: str, version: str | None, as_json: bool
    ) -> None:
        """Show config SLUG (its current version, or --version)."""
        found = _run(
            lambda p, who: (
                p.get_version(who, slug, version) if version else p.get_config(who, slug)
            ),
            config_path,
        )
        _print(
            found,
            as_json,
            lambda: click.echo(orjson.dumps(found, option=orjson.OPT_INDENT_2).decode()),
        )

    @configs.command("create")
    @_CONFIG
    @click.option("--name", required=True)
    @click.option("--slug", default=None, help="Default: pc-<name>-<random>.")
    @click.option("--file", "file", type=click.Path(exists=True, dir_okay=False), default=None)
    @click.option("--config-json", "text", default=None, help="The config as JSON text.")
    @_WORKSPACE
    @click.option("--message", default=None)
    @_JSON
    def configs_create(
        config_path: str | None,
        name: str,
        slug: str | None,
        file: str | None,
        text: str | None,
        workspace: str | None,
        message: str | None,
        as_json: bool,
    ) -> None:
        """Create a config (validated as a request's config would be)."""
        config = _read_config(file, text)
        body = {
            "name": name,
            "slug": slug,
            "config": config,
            "workspace_id": workspace,
            "message": message,
        }
        found = _run(lambda p, who: p.create_config(who, body), config_path)
        _print(
            found,
            as_json,
            lambda: click.echo(f"created {found['slug']} version 1 ({found['version_id']})"),
        )

    @configs.command("update")
    @_CONFIG
    @click.argument("slug")
    @click.option("--file", "file", type=click.Path(exists=True, dir_okay=False), default=None)
    @click.option("--config-json", "text", default=None, help="The config as JSON text.")
    @click.option("--name", default=None)
    @click.option("--message", default=None)
    @click.option("--base-version", default=None, help="Refuse (409) if the config moved past it.")
    @_JSON
    def configs_update(
        config_path: str | None,
        slug: str,
        file: str | None,
        text: str | None,
        name: str | None,
        message: str | None,
        base_version: str | None,
        as_json: bool,
    ) -> None:
        """Write a new version of config SLUG."""
        body = {
            "config": _read_config(file, text),
            "name": name,
            "message": message,
            "base_version_id": base_version,
        }
        found = _run(lambda p, who: p.update_config(who, slug, body), config_path)
        _print(
            found,
            as_json,
            lambda: click.echo(f"{slug}: version {found['version']} ({found['version_id']})"),
        )

    @configs.command("history")
    @_CONFIG
    @click.argument("slug")
    @_JSON
    def configs_history(config_path: str | None, slug: str, as_json: bool) -> None:
        """List the versions of config SLUG, newest first."""
        found = _run(lambda p, who: p.versions(who, slug), config_path)
        _print(
            {"object": "list", "data": found},
            as_json,
            lambda: _table(
                ("version", "version_id", "created", "by", "message"),
                [
                    (
                        f"{v['version']}{' *' if v['is_current'] else ''}",
                        v["version_id"],
                        v["created_at"],
                        v["created_by_name"],
                        v["message"] or "",
                    )
                    for v in found
                ],
            ),
        )

    @configs.command("diff")
    @_CONFIG
    @click.argument("slug")
    @click.option("--from", "old", default=None, help="Version id or number (default: previous).")
    @click.option("--to", "new", default=None, help="Version id or number (default: current).")
    @_JSON
    def configs_diff(
        config_path: str | None, slug: str, old: str | None, new: str | None, as_json: bool
    ) -> None:
        """Show what changed between two versions of config SLUG."""
        found = _run(lambda p, who: p.diff(who, slug, old, new), config_path)
        _print(found, as_json, lambda: click.echo(found["unified"] or "(no change)", nl=False))

    @configs.command("rollback")
    @_CONFIG
    @click.argument("slug")
    @click.argument("version")
    @click.option("--message", default=None)
    @_JSON
    def configs_rollback(
        config_path: str | None, slug: str, version: str, message: str | None, as_json: bool
    ) -> None:
        """Make VERSION of config SLUG current again (as a new version)."""
        found = _run(
            lambda p, who: p.rollback(who, slug, {"version_id": version, "message": message}),
            config_path,
        )
        _print(
            found,
            as_json,
            lambda: click.echo(f"{slug}: version {found['version']} = old {version}"),
        )

    @configs.command("export")
    @_CONFIG
    @_WORKSPACE
    @click.option("-o", "--output", type=click.Path(dir_okay=False), default=None)
    def configs_export(config_path: str | None, workspace: str | None, output: str | None) -> None:
        """Write every stored config as one JSON file (configs as code)."""
        found = _run(lambda p, who: p.export(who, workspace), config_path)
        text = orjson.dumps(found, option=orjson.OPT_INDENT_2).decode() + "\n"
        if output:
            Path(output).write_text(text, encoding="utf-8")
            click.echo(f"exported {len(found['configs'])} configs to {output}", err=True)
        else:
            sys.stdout.write(text)

    @configs.command("import")
    @_CONFIG
    @click.argument("file", type=click.Path(exists=True, dir_okay=False))
    @click.option("--message", default=None)
    @_JSON
    def configs_import(
        config_path: str | None, file: str, message: str | None, as_json: bool
    ) -> None:
        """Create or update configs from an export file (all or nothing)."""
        try:
            data = orjson.loads(Path(file).read_bytes())
        except orjson.JSONDecodeError as exc:
            raise click.ClickException(f"{file} is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise click.ClickException(f"{file} must hold a JSON object with 'configs'")
        found = _run(lambda p, who: p.import_(who, {**data, "message": message}), config_path)
        _print(
            found,
            as_json,
            lambda: _table(
                ("slug", "action"), [(r["slug"], r["action"]) for r in found["results"]]
            ),
        )

    # ---- virtual keys -------------------------------------------------------------------

    @cli.group()
    def vkeys() -> None:
        """Virtual keys: provider keys held encrypted, used by slug."""

    @vkeys.command("create")
    @_CONFIG
    @click.option("--name", required=True)
    @click.option("--provider", required=True)
    @click.option("--slug", default=None)
    @click.option("--key-env", default=None, help="Read the provider key from this variable.")
    @click.option("--key-stdin", is_flag=True, help="Read the provider key from stdin.")
    @click.option("--custom-host", default=None)
    @click.option("--option", "options", multiple=True, help="A provider field: NAME=VALUE.")
    @click.option("--note", default=None)
    @_WORKSPACE
    @_JSON
    def vkeys_create(
        config_path: str | None,
        name: str,
        provider: str,
        slug: str | None,
        key_env: str | None,
        key_stdin: bool,
        custom_host: str | None,
        options: tuple[str, ...],
        note: str | None,
        workspace: str | None,
        as_json: bool,
    ) -> None:
        """Store a provider key (never on the command line: --key-env or --key-stdin)."""
        secret = None
        if key_env:
            secret = os.environ.get(key_env)
            if not secret:
                raise click.ClickException(f"${key_env} is not set")
        elif key_stdin:
            secret = sys.stdin.readline().strip() or None
        body: dict[str, Any] = {
            "name": name,
            "provider": provider,
            "slug": slug,
            "key": secret,
            "custom_host": custom_host,
            "note": note,
            "workspace_id": workspace,
        }
        for option in options:
            field, sep, value = option.partition("=")
            if not sep or not field:
                raise click.UsageError(f"--option must be NAME=VALUE, not {option!r}")
            body[field] = value
        found = _run(lambda p, who: p.create_virtual_key(who, body), config_path)
        _print(found, as_json, lambda: click.echo(f"created virtual key {found['slug']}"))

    @vkeys.command("list")
    @_CONFIG
    @_WORKSPACE
    @_JSON
    def vkeys_list(config_path: str | None, workspace: str | None, as_json: bool) -> None:
        """List virtual keys (masked hints, never the keys)."""
        found = _run(lambda p, who: p.list_virtual_keys(who, workspace), config_path)
        _print(
            {"object": "list", "data": found},
            as_json,
            lambda: _table(
                ("slug", "provider", "workspace", "key", "custom_host"),
                [
                    (
                        v["slug"],
                        v["provider"],
                        v["workspace_id"],
                        v["key"] or "-",
                        v["custom_host"] or "-",
                    )
                    for v in found
                ],
            ),
        )

    @vkeys.command("delete")
    @_CONFIG
    @click.argument("slug")
    @_JSON
    def vkeys_delete(config_path: str | None, slug: str, as_json: bool) -> None:
        """Delete virtual key SLUG (its sealed key is erased)."""
        _run(lambda p, who: p.delete_virtual_key(who, slug), config_path)
        _print({"slug": slug, "deleted": True}, as_json, lambda: click.echo(f"deleted {slug}"))

    @vkeys.command("rotate-master-key")
    @_CONFIG
    @click.option(
        "--new-key-env",
        default=None,
        help=f"With {ENV_VAR}: the variable holding the new key (it is printed otherwise).",
    )
    @_JSON
    def vkeys_rotate(config_path: str | None, new_key_env: str | None, as_json: bool) -> None:
        """Re-encrypt every provider key under a new master key.

        With a key file, the file is replaced (running workers pick it up by themselves).
        With HOOKGATE_MASTER_KEY, pass the new key in the variable named by --new-key-env (or
        let one be generated and printed), then set HOOKGATE_MASTER_KEY to it and restart.
        """
        from .crypto import generate_key

        new_text = None
        from_env = bool(os.environ.get(ENV_VAR))
        if new_key_env:
            new_text = os.environ.get(new_key_env)
            if not new_text:
                raise click.ClickException(f"${new_key_env} is not set")
        elif from_env:
            new_text = generate_key()
        new, count = _run(lambda p, who: p.rotate_master_key(who, new_text), config_path)
        result: dict[str, Any] = {"master_key_id": new.id, "resealed": count}
        if from_env and not new_key_env:
            result["master_key"] = new_text
        if from_env:
            click.echo(f"set {ENV_VAR} to the new key and restart the gateway", err=True)

        def text() -> None:
            click.echo(f"re-encrypted {count} virtual keys under master key {new.id}")
            if "master_key" in result:
                click.echo(f"new {ENV_VAR}: {result['master_key']}")

        _print(result, as_json, text)

    # ---- moving a store -----------------------------------------------------------------

    @cli.command("control-copy")
    @click.option("--from", "source", required=True, help="The SQLite control store file.")
    @click.option("--to", "target", required=True, help="The PostgreSQL database's URL.")
    @_JSON
    def control_copy(source: str, target: str, as_json: bool) -> None:
        """Copy a SQLite control store into an empty PostgreSQL database.

        Workspaces, gateway keys, configs with their whole history, virtual keys and the audit
        log move with their ids, so keys and config ids keep working. Virtual keys stay sealed:
        set HOOKGATE_MASTER_KEY to the master key that sealed them (the contents of the key
        file, by default master.key beside the store) before copying, and on every instance.
        """
        from .crypto import MasterKey
        from .pgstore import (
            CopyRefused,
            PostgresStore,
            copy_store,
            is_postgres_url,
            register_url_secrets,
        )
        from .store import SQLiteStore

        if not is_postgres_url(target):
            raise click.BadParameter("must be a postgresql:// URL", param_hint="--to")
        register_url_secrets(target)
        if not Path(source).is_file():
            raise click.ClickException(f"no control store at {source}")
        sqlite_store = SQLiteStore(source)
        pg = PostgresStore(target)
        try:
            with sqlite_store.reading() as tx:
                sealed = {
                    row["key_id"]
                    for row in tx.all(
                        "SELECT DISTINCT key_id FROM virtual_keys WHERE secret IS NOT NULL"
                    )
                }
            if sealed:
                try:
                    master = MasterKey.from_env("copying sealed virtual keys")
                except MasterKeyError as exc:
                    raise click.ClickException(str(exc)) from exc
                if sealed != {master.id}:
                    raise click.ClickException(
                        f"{ENV_VAR} is not the master key that sealed this store's virtual keys "
                        f"(key ids {', '.join(sorted(sealed))}; yours is {master.id}): set it to "
                        "the contents of the store's key file (by default master.key beside it)"
                    )
            counts = copy_store(sqlite_store, pg)
        except CopyRefused as exc:
            raise click.ClickException(str(exc)) from exc
        except StoreUnavailable as exc:
            raise click.ClickException(f"the control store is unavailable: {exc}") from exc
        finally:
            pg.close()
        result = {"object": "control_copy", "copied": counts}

        def text() -> None:
            click.echo(
                "copied " + ", ".join(f"{n} {table}" for table, n in counts.items()) + "; point "
                '[plugins.control] store at the database: store = { url = "${DATABASE_URL}" }'
            )

        _print(result, as_json, text)

    # ---- audit --------------------------------------------------------------------------

    @cli.command()
    @_CONFIG
    @_WORKSPACE
    @click.option("--limit", type=int, default=50, show_default=True)
    @_JSON
    def audit(config_path: str | None, workspace: str | None, limit: int, as_json: bool) -> None:
        """The control plane's audit log, newest first (who, what, when, before, after)."""
        found = _run(lambda p, who: p.audit_log(who, workspace, limit), config_path)
        _print(
            {"object": "list", "data": found},
            as_json,
            lambda: _table(
                ("when", "who", "action", "resource", "workspace"),
                [
                    (
                        a["created_at"],
                        a["actor"]["name"],
                        a["action"],
                        a["resource_id"],
                        a["workspace_id"] or "-",
                    )
                    for a in found
                ],
            ),
        )

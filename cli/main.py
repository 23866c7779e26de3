"""dumpledger's command line: parses arguments, calls use cases, renders results."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import click
import typer

from catalog.errors import CatalogError
from catalog.queries import BackupFilter, get_backup, list_backups
from cli import output
from cli.timeparse import parse_moment
from pgtools.errors import PgError
from store.errors import StoreError
from usecases.backup import BackupRequest, BackupResult, run_backup
from usecases.config import Settings, load_settings
from usecases.context import App
from usecases.errors import BadInput, UseCaseError
from usecases.names import BACKUP_TYPES, classify
from usecases.verify import verify_backups

KNOWN_ERRORS = (CatalogError, StoreError, PgError, UseCaseError)
CONTEXT = {"help_option_names": ["-h", "--help"]}

app = typer.Typer(
    name="dumpledger",
    help="Verified, content-addressed PostgreSQL/Supabase backups with an auditable catalog.\n\n"
    "Example: dumpledger backup && dumpledger list",
    context_settings=CONTEXT,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
catalog_app = typer.Typer(
    help="Check and rebuild the event catalog.", context_settings=CONTEXT, no_args_is_help=True
)
app.add_typer(catalog_app, name="catalog")


class State:
    backup_dir: Path | None = None


STATE = State()


@app.callback()
def _root(
    backup_dir: Annotated[
        Path | None,
        typer.Option(
            "--backup-dir",
            envvar="DUMPLEDGER_BACKUP_DIR",
            help="Where backups/ lives (default: ./backups).",
        ),
    ] = None,
) -> None:
    STATE.backup_dir = backup_dir


def settings(**overrides: Any) -> Settings:
    return load_settings(backup_dir=STATE.backup_dir, overrides=overrides)


def open_app(**overrides: Any) -> App:
    return App.open(settings(**overrides))


JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]


@app.command(context_settings=CONTEXT)
def backup(
    name: Annotated[str | None, typer.Argument(help="Name prefix; the time is appended.")] = None,
    backup_type: Annotated[
        str | None, typer.Option("--type", "-t", help=f"One of: {', '.join(BACKUP_TYPES)}.")
    ] = None,
    all_formats: Annotated[
        bool | None,
        typer.Option(
            "--all-formats/--no-all-formats",
            help="Also schema-only, data-only and custom format (default: manual only).",
        ),
    ] = None,
    codec: Annotated[str | None, typer.Option(help="gzip (default) or zstd.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Back up the whole database (every schema, plus roles), verified before it counts.

    Examples:

      dumpledger backup                      # manual: backup_YYYYMMDD_HHMMSS

      dumpledger backup before-migration     # before-migration_YYYYMMDD_HHMMSS

      dumpledger backup --type nightly       # auto_nightly_YYYYMMDD_HHMMSS
    """
    overrides = {"codec": codec} if codec else {}
    with open_app(**overrides) as ctx:
        progress = output.Progress("dumping")
        try:
            result = run_backup(
                ctx,
                BackupRequest(name=name, backup_type=backup_type, all_formats=all_formats),
                progress,
            )
        finally:
            progress.finish()
    if json_out:
        output.emit_json(
            {
                "name": result.name,
                "type": result.backup_type,
                "artifacts": result.artifacts,
                "duration_seconds": result.duration_seconds,
                "stored_bytes_added": result.stored_bytes_added,
                "log": str(result.log_path),
            }
        )
        return
    for art in result.artifacts:
        note = "new" if art["created"] else "already stored"
        print(
            f"  {art['kind']:<8} {output.human_size(art['raw_size']):>10} -> "
            f"{output.human_size(art['stored_size']):>10}  sha256:{art['digest'][:12]}  ({note})"
        )
    print(
        f"backup {result.name} completed and verified in {result.duration_seconds:.1f}s; "
        f"{output.human_size(result.stored_bytes_added)} newly stored"
    )


@app.command("list", context_settings=CONTEXT)
def list_cmd(
    backup_type: Annotated[str | None, typer.Option("--type", "-t", help="Filter by type.")] = None,
    since: Annotated[str | None, typer.Option(help="From this time (2026-11-01, 7d, 12h).")] = None,
    until: Annotated[str | None, typer.Option(help="Before this time.")] = None,
    commit: Annotated[str | None, typer.Option(help="Git commit prefix of the app.")] = None,
    branch: Annotated[str | None, typer.Option(help="Git branch of the app.")] = None,
    status: Annotated[str | None, typer.Option(help="running, completed, failed, deleted.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """List backups, newest first.

    Example: dumpledger list --type nightly --since 7d
    """
    now = datetime.now(UTC)
    try:
        flt = BackupFilter(
            backup_type=backup_type,
            status=status,
            branch=branch,
            commit_prefix=commit,
            since=parse_moment(since, now) if since else None,
            until=parse_moment(until, now) if until else None,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    with open_app() as ctx:
        rows = list_backups(ctx.catalog.engine, flt)
    if json_out:
        output.emit_json(rows)
        return
    if not rows:
        output.info("no backups match; take one with `dumpledger backup`")
        return
    output.table(
        ["NAME", "TYPE", "STATUS", "STARTED", "SIZE", "VERIFIED", "COMMIT"],
        [_list_row(r) for r in rows],
        [
            output.STATUS_COLOURS.get(r["status"]) or output.COLOURS.get(classify(r["name"]))
            for r in rows
        ],
    )


def _list_row(r: dict[str, Any]) -> list[str]:
    verified = "-" if r["last_verify_ok"] is None else ("ok" if r["last_verify_ok"] else "FAILED")
    return [
        r["name"],
        r["backup_type"],
        r["status"],
        output.local_time(r["started_at"]),
        output.human_size(r["stored_size"]),
        verified,
        (r["git_commit"] or "-")[:10],
    ]


@app.command(context_settings=CONTEXT)
def info(name: str, json_out: JsonOpt = False) -> None:
    """Show one backup: metadata, artifacts, digests and its events.

    Example: dumpledger info backup_20261124_120000
    """
    with open_app() as ctx:
        backup = get_backup(ctx.catalog.engine, name)
        events = [e.to_json() for e in ctx.catalog.events(subject=name)]
    if json_out:
        output.emit_json({**backup, "events": events})
        return
    meta = backup["metadata"]
    for key in (
        "name",
        "backup_type",
        "status",
        "actor",
        "started_at",
        "finished_at",
        "duration_seconds",
        "git_commit",
        "git_branch",
        "failure_reason",
    ):
        if backup.get(key) is not None:
            print(f"{key + ':':<18}{backup[key]}")
    print(f"{'verified:':<18}{backup['last_verify_ok']} (last {backup['last_verified_at']})")
    if meta.get("versions"):
        print(
            f"{'versions:':<18}server {meta['versions'].get('server')}, "
            f"pg_dump {meta['versions'].get('pg_dump')}"
        )
    print("artifacts:")
    for a in backup["artifacts"]:
        print(
            f"  {a['kind']:<8} {a['codec']:<5} raw {output.human_size(a['raw_size']):>10}  "
            f"stored {output.human_size(a['stored_size']):>10}  sha256:{a['digest']}"
        )
    if meta.get("row_counts"):
        print("row counts:")
        for table, n in sorted(meta["row_counts"].items()):
            print(f"  {table:<40} {n}")
    print("events:")
    for e in events:
        print(
            f"  {e['seq']:>6}  {output.local_time(e['occurred_at'])}  {e['type']:<16} {e['actor']}"
        )


@app.command(context_settings=CONTEXT)
def verify(
    names: Annotated[list[str] | None, typer.Argument(help="Backups to verify.")] = None,
    all_backups: Annotated[bool, typer.Option("--all", help="Every completed backup.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Re-read, decompress and re-hash every artifact; record the result in the catalog.

    Examples: dumpledger verify backup_20261124_120000 ; dumpledger verify --all
    """
    with open_app() as ctx:
        progress = output.Progress("verifying")
        try:
            outcomes = verify_backups(ctx, names, all_backups=all_backups, progress=progress)
        finally:
            progress.finish()
    if json_out:
        output.emit_json(
            [{"backup": o.backup, "ok": o.ok, "artifacts": o.artifacts} for o in outcomes]
        )
    else:
        for o in outcomes:
            print(f"{'ok    ' if o.ok else 'FAILED'} {o.backup}")
            for f in o.failures():
                output.error(f"{o.backup}: {f['kind']} ({f['link']} -> {f['file']}): {f['error']}")
    if not all(o.ok for o in outcomes):
        raise typer.Exit(1)


@catalog_app.command("verify", context_settings=CONTEXT)
def catalog_verify(json_out: JsonOpt = False) -> None:
    """Check the hash chain: detects edited, deleted or reordered events."""
    with open_app() as ctx:
        report = ctx.catalog.verify_chain()
    if json_out:
        output.emit_json({"ok": report.ok, "events": report.events, "problems": report.problems})
    elif report.ok:
        print(f"catalog ok: {report.events} events, hash chain intact")
    else:
        for p in report.problems:
            output.error(p)
    if not report.ok:
        raise typer.Exit(1)


@catalog_app.command("rebuild", context_settings=CONTEXT)
def catalog_rebuild() -> None:
    """Drop the projections and replay them from the event log alone."""
    with open_app() as ctx:
        ctx.catalog.rebuild()
        n = ctx.catalog.count()
    print(f"projections rebuilt from {n} events")


@app.command(context_settings=CONTEXT)
def demo(
    backup_dir: Annotated[
        Path, typer.Option(help="Where the demo's backups go (kept afterwards).")
    ] = Path("demo-backups"),
) -> None:
    """Run the main job end to end on a throwaway database: back up, back up again
    (nothing new is stored), verify, list, check the catalog.

    Example: dumpledger demo --backup-dir /tmp/demo
    """
    import shutil

    from usecases.demo import demo_database, demo_settings

    marker = backup_dir / ".dumpledger-demo"
    if backup_dir.exists() and any(backup_dir.iterdir()) and not marker.exists():
        raise BadInput(
            f"{backup_dir} exists and is not a demo directory; pass another --backup-dir"
        )
    shutil.rmtree(backup_dir, ignore_errors=True)
    backup_dir.mkdir(parents=True, mode=0o700)
    marker.touch(mode=0o600)
    with (
        demo_database(print) as cluster,
        App.open(demo_settings(cluster, backup_dir.resolve())) as ctx,
    ):
        print("\n$ dumpledger backup demo")
        first = run_backup(ctx, BackupRequest(name="demo"))
        _print_backup(first)
        print("\n$ dumpledger backup --type nightly   # unchanged database")
        second = run_backup(ctx, BackupRequest(backup_type="nightly"))
        _print_backup(second)
        print("\n$ dumpledger verify --all")
        for o in verify_backups(ctx, None, all_backups=True):
            print(f"{'ok    ' if o.ok else 'FAILED'} {o.backup}")
        print("\n$ dumpledger list")
        rows = list_backups(ctx.catalog.engine)
        output.table(
            ["NAME", "TYPE", "STATUS", "STARTED", "SIZE", "VERIFIED", "COMMIT"],
            [_list_row(r) for r in rows],
        )
        print("\n$ dumpledger catalog verify")
        report = ctx.catalog.verify_chain()
        print(f"catalog {'ok' if report.ok else 'BROKEN'}: {report.events} events")
    print(
        f"\nbackups, catalog and logs are in {backup_dir}/ ; try "
        f"`DUMPLEDGER_BACKUP_DIR={backup_dir} .venv/bin/dumpledger list`"
    )


def _print_backup(result: BackupResult) -> None:
    for art in result.artifacts:
        note = "new" if art["created"] else "already stored"
        print(
            f"  {art['kind']:<8} {output.human_size(art['raw_size']):>10} -> "
            f"{output.human_size(art['stored_size']):>10}  sha256:{art['digest'][:12]}  ({note})"
        )
    print(
        f"backup {result.name} completed and verified in {result.duration_seconds:.1f}s; "
        f"{output.human_size(result.stored_bytes_added)} newly stored"
    )


def main(argv: list[str] | None = None) -> int:
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=argv, prog_name="dumpledger", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return int(exc.exit_code)
    except click.Abort:
        output.error("aborted")
        return 1
    except KNOWN_ERRORS as exc:
        output.error(str(exc))
        return int(getattr(exc, "exit_code", 1))
    return int(rv) if isinstance(rv, int) else 0


def run() -> None:
    sys.exit(main())

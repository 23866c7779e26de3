"""dumpledger's command line: parses arguments, calls use cases, renders results."""

from __future__ import annotations

import inspect
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from catalog.errors import CatalogError
from catalog.read import ACTIONS, AuditFilter, BackupFilter
from cli import health, offsite, output
from cli.legacy import import_legacy_cmd
from cli.schedule import schedule_app
from cli.state import CONTEXT, STATE, JsonOpt, open_app, settings
from cli.timeparse import parse_moment
from pgtools.errors import PgError
from store.errors import StoreError
from usecases.errors import BadInput, UseCaseError
from usecases.names import BACKUP_TYPES, classify

# The use cases are imported inside the commands that run them: `list` and `--help` start
# without SQLAlchemy, psycopg or the store (docs/PERFORMANCE.md).
if TYPE_CHECKING:
    from usecases.backup import BackupResult
    from usecases.context import App
    from usecases.restore import RestorePlan
    from usecases.retention import CleanupReport

KNOWN_ERRORS = (CatalogError, StoreError, PgError, UseCaseError)

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


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            mine = version("dumpledger")
        except PackageNotFoundError:  # run from a source tree that was never installed
            mine = "unknown (not installed)"
        print(f"dumpledger {mine} (Python {sys.version.split()[0]})")
        raise typer.Exit()


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
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print dumpledger's version and exit.",
        ),
    ] = False,
) -> None:
    STATE.backup_dir = backup_dir


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
    from usecases.alerts import backup_alerts
    from usecases.backup import BackupRequest, run_backup

    overrides = {"codec": codec} if codec is not None else {}
    auto_report = retention_error = None
    with open_app(**overrides) as ctx, backup_alerts(ctx, backup_type) as alerts:
        progress = output.Progress("dumping")
        try:
            result = run_backup(
                ctx,
                BackupRequest(name=name, backup_type=backup_type, all_formats=all_formats),
                progress,
            )
        finally:
            progress.finish()
        if classify(result.name) == "auto":  # as the old scripts did: retention after each run
            auto_report, retention_error = _retention_after_backup(ctx)
        _report_backup(result, auto_report, json_out)  # before notifying: a slow endpoint
        alerts.completed(result)  # must not hold back the result
        if retention_error is not None:
            alerts.retention_failed(result.name, retention_error)


def _report_backup(result: BackupResult, auto_report: CleanupReport | None, json_out: bool) -> None:
    if json_out:
        output.emit_json(
            {
                "name": result.name,
                "type": result.backup_type,
                "artifacts": result.artifacts,
                "duration_seconds": result.duration_seconds,
                "stored_bytes_added": result.stored_bytes_added,
                "log": str(result.log_path),
                "retention": auto_report.to_json() if auto_report else None,
            }
        )
    else:
        _print_backup(result)
        if auto_report is not None:
            _print_cleanup_summary(auto_report)
    sys.stdout.flush()


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
    from catalog.read import list_backups, offsite_targets
    from usecases.reading import reading

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
        raise typer.BadParameter(str(exc)) from None
    with reading(settings()) as query:
        where = offsite_targets(query, flt)
        rows = [{**r, "offsite": where.get(r["name"], [])} for r in list_backups(query, flt)]
    if json_out:
        output.emit_json(rows)
        return
    if not rows:
        output.info("no backups match; take one with `dumpledger backup`")
        return
    output.table(
        LIST_HEADERS,
        [_list_row(r) for r in rows],
        [
            output.STATUS_COLOURS.get(r["status"]) or output.COLOURS.get(classify(r["name"]))
            for r in rows
        ],
    )


LIST_HEADERS = [
    "NAME",
    "TYPE",
    "STATUS",
    "STARTED",
    "SIZE",
    "VERIFIED",
    "DRILL",
    "PIN",
    "OFFSITE",
    "COMMIT",
]


def _drill_cell(r: dict[str, Any]) -> str:
    if r.get("last_drill_ok") is None:
        return "-"
    return f"ok {r['last_drill_seconds']:.0f}s" if r["last_drill_ok"] else "FAILED"


def _list_row(r: dict[str, Any]) -> list[str]:
    verified = "-" if r["last_verify_ok"] is None else ("ok" if r["last_verify_ok"] else "FAILED")
    return [
        r["name"],
        r["backup_type"],
        r["status"],
        output.local_time(r["started_at"]),
        output.human_size(r["stored_size"]),
        verified,
        _drill_cell(r),
        "pinned" if r["pinned"] else "-",
        ",".join(r.get("offsite") or []) or "-",
        (r["git_commit"] or "-")[:10],
    ]


@app.command(context_settings=CONTEXT)
def info(name: str, json_out: JsonOpt = False) -> None:
    """Show one backup: metadata, artifacts, digests and its events.

    Example: dumpledger info backup_20261124_120000
    """
    from catalog.queries import get_backup, offsite_targets

    with open_app() as ctx:
        backup = get_backup(ctx.catalog.engine, name)
        backup["offsite"] = offsite_targets(ctx.catalog.engine).get(name, [])
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
    if backup["pinned"]:
        print(f"{'pinned:':<18}{backup['pin_reason']}")
    if backup["status"] == "deleted":
        print(f"{'deleted by rule:':<18}{backup['deleted_rule']}")
    if backup["status"] == "completed":
        print(f"{'offsite:':<18}{', '.join(backup['offsite']) or 'nowhere (dumpledger push)'}")
    if backup.get("last_drill_at"):
        status = "passed" if backup["last_drill_ok"] else "FAILED"
        print(
            f"{'last drill:':<18}{status} in {backup['last_drill_seconds']}s "
            f"({output.local_time(backup['last_drill_at'])})"
        )
    else:
        print(f"{'last drill:':<18}never (dumpledger drill {backup['name']})")
    if meta.get("versions"):
        print(
            f"{'versions:':<18}server {meta['versions'].get('server')}, "
            f"pg_dump {meta['versions'].get('pg_dump')}"
        )
    if meta.get("encryption"):
        enc = meta["encryption"]
        print(f"{'encrypted:':<18}{enc['scheme']} to {', '.join(enc['recipients'])}")
    print("artifacts:")
    for a in backup["artifacts"]:
        print(
            f"  {a['kind']:<8} {a['codec']:<8} raw {output.human_size(a['raw_size']):>10}  "
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
    target: Annotated[
        str | None, typer.Option("--target", help="Verify the copies on this offsite target.")
    ] = None,
    endpoint_url: offsite.EndpointOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Re-read, decompress and re-hash every artifact; record the result in the catalog.

    Examples: dumpledger verify backup_20261124_120000 ; dumpledger verify --all ;
    dumpledger verify --target drive
    """
    if target is not None:
        return offsite.verify_target(target, endpoint_url, json_out, bool(names or all_backups))
    from usecases.alerts import after_verify
    from usecases.verify import verify_backups

    with open_app() as ctx:
        progress = output.Progress("verifying")
        try:
            outcomes = verify_backups(ctx, names, all_backups=all_backups, progress=progress)
        finally:
            progress.finish()
        after_verify(ctx, outcomes)
    if json_out:
        output.emit_json(
            [{"backup": o.backup, "ok": o.ok, "artifacts": o.artifacts} for o in outcomes]
        )
    else:
        for o in outcomes:
            print(f"{'ok    ' if o.ok else 'FAILED'} {o.backup}")
            for note in sorted({a["note"] for a in o.artifacts if a.get("note")}):
                print(f"       {note}")
            for f in o.failures():
                output.error(f"{o.backup}: {f['kind']} ({f['link']} -> {f['file']}): {f['error']}")
    if not all(o.ok for o in outcomes):
        raise typer.Exit(1)


@app.command(context_settings=CONTEXT)
def restore(
    name: Annotated[str | None, typer.Argument(help="The backup to restore (see `list`).")] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file", help="Restore a dump from outside the catalog (.sql, .sql.gz, .sql.zst, -Fc)."
        ),
    ] = None,
    target_db: Annotated[
        str | None,
        typer.Option("--target-db", help="Database to restore into (default: SUPABASE_DB_NAME)."),
    ] = None,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes",
            "-y",
            help="Agree to the plan without a prompt, including ending other sessions.",
        ),
    ] = False,
    plan_only: Annotated[
        bool, typer.Option("--plan", help="Show what would happen; change nothing.")
    ] = False,
    artifact: Annotated[
        str, typer.Option(help="full (plain SQL through psql) or custom (pg_restore).")
    ] = "full",
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="pg_restore jobs (custom).")] = 2,
    schema: Annotated[
        list[str] | None, typer.Option("--schema", help="Only this schema (custom format).")
    ] = None,
    table: Annotated[
        list[str] | None, typer.Option("--table", help="Only this table (custom format).")
    ] = None,
    no_globals: Annotated[
        bool, typer.Option("--no-globals", help="Do not create the backup's missing roles.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Put a database back to exactly what a backup holds, safely.

    Verifies the backup first, shows the plan and asks you to type the database's name, takes
    a safety backup (pre-restore_<db>_<time>), creates missing roles, restores into a scratch
    database and swaps it in by renaming, so the target is never half-restored. The replaced
    database is kept as <db>_replaced_<time> until you drop it.

    Examples:

      dumpledger restore auto_nightly_20261124_020000 --plan

      dumpledger restore backup_20261124_120000 --target-db staging

      dumpledger restore --file old-scripts/backup_full.sql.gz --yes

      dumpledger restore backup_20261124_120000 --artifact custom --table public.todos
    """
    from usecases.restore import RestoreRequest, execute_restore, plan_restore

    req = RestoreRequest(
        backup=name,
        file=file,
        target_db=target_db,
        artifact=artifact,
        schemas=tuple(schema or ()),
        tables=tuple(table or ()),
        jobs=jobs,
        with_globals=not no_globals,
    )
    with open_app() as ctx:
        plan = plan_restore(ctx, req, verify=not plan_only)
        if plan_only:
            if json_out:
                output.emit_json(plan.to_json())
            else:
                _print_plan(plan)
            return
        if not yes:
            _confirm(plan)
        outcome = execute_restore(ctx, plan, req, terminate=True)
    if json_out:
        output.emit_json(
            {
                "restore_id": outcome.restore_id,
                "source": outcome.source,
                "target": outcome.target,
                "safety_backup": outcome.safety_backup,
                "replaced_database": outcome.replaced_database,
                "roles_created": outcome.roles_created,
                "duration_seconds": outcome.duration_seconds,
            }
        )
        return
    print(f"restored {outcome.source} into {plan.target.dbname} in {outcome.duration_seconds:.1f}s")
    if outcome.roles_created:
        print(f"  roles created: {', '.join(outcome.roles_created)}")
    if outcome.safety_backup:
        print(f"  safety backup: {outcome.safety_backup}")
    if outcome.replaced_database:
        print(
            f"  the previous database is kept as {outcome.replaced_database}; when you no longer "
            f'need it: DROP DATABASE "{outcome.replaced_database}";'
        )


def _print_plan(plan: RestorePlan) -> None:
    doc = plan.to_json()
    print(f"restore {doc['source']} ({doc['format']}) into {plan.target.label()}")
    if plan.method == "partial":
        print("  method:        pg_restore --clean of the named schemas/tables, one transaction")
    else:
        print("  method:        restore into a scratch database, then swap it in by renaming")
    print(f"  safety backup: {doc['safety_backup'] or '- (the database does not exist yet)'}")
    roles = ", ".join(doc["roles_to_create"]) or "none (all exist)"
    print(f"  roles created: {roles}")
    if doc["target_exists"]:
        objs = ", ".join(f"{k} ({v} tables)" for k, v in doc["objects_replaced"].items())
        print(f"  replaced:      {objs or 'an empty database'}")
        if plan.method == "swap":
            print(f"  kept as:       {doc['replaced_database_kept_as']}")
        print(f"  sessions:      {doc['other_sessions_to_terminate']} other session(s) ended")
    print(
        f"  versions:      server {doc['server_version']}; backup taken from "
        f"{doc['backup_server_version'] or 'unknown'}"
    )
    drill = doc["last_drill"]
    if drill:
        status = "passed" if drill["ok"] else "FAILED"
        print(
            f"  last drill:    {status} in {drill['seconds']}s ({output.local_time(drill['at'])})"
        )
    else:
        print("  last drill:    never (try `dumpledger drill`)")
    for w in doc["warnings"]:
        print(f"  warning:       {w}")


def _confirm(plan: RestorePlan) -> None:
    if not sys.stdin.isatty():
        raise BadInput("restore needs a confirmation: run it in a terminal, or pass --yes")
    _print_plan(plan)
    db = plan.target.dbname
    note = " Other sessions connected to it will be terminated." if plan.facts.target_exists else ""
    answer = typer.prompt(
        f"This replaces database {db} with {plan.source.label}.{note} Type the database name "
        "to go on",
        default="",
        show_default=False,
    )
    if answer.strip() != db:
        raise BadInput(f"confirmation did not match {db!r}: nothing was changed")


@app.command(context_settings=CONTEXT)
def drill(
    name: Annotated[
        str | None, typer.Argument(help="Backup to drill (default: the latest).")
    ] = None,
    latest: Annotated[bool, typer.Option("--latest", help="The newest completed backup.")] = False,
    host: Annotated[str | None, typer.Option(help="Drill on another server: its host.")] = None,
    port: Annotated[int | None, typer.Option(help="Drill on another server: its port.")] = None,
    user: Annotated[str | None, typer.Option(help="Drill on another server: its user.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Prove a backup restores, in a scratch database; record RestoreTested.

    Restores the backup into a scratch database, compares tables and exact row counts with
    what the backup recorded, reads every row, times it, and drops the scratch database.
    Exits 1 when the drill fails.

    Examples: dumpledger drill --latest ; dumpledger drill auto_nightly_20261124_020000
    """
    import dataclasses

    from usecases.alerts import after_drill
    from usecases.drill import run_drill

    if name and latest:
        raise BadInput("name a backup or pass --latest, not both")
    with open_app() as ctx:
        server = None
        if host or port or user:
            base = ctx.settings.database
            server = dataclasses.replace(
                base, host=host or base.host, port=port or base.port, user=user or base.user
            )
        outcome = run_drill(ctx, name, server=server)
        after_drill(ctx, outcome)
    if json_out:
        output.emit_json(dataclasses.asdict(outcome))
    else:
        status = "passed" if outcome.ok else "FAILED"
        print(
            f"drill {status}: {outcome.backup} restored in {outcome.restore_seconds:.1f}s, "
            f"{outcome.tables_checked} tables checked in {outcome.check_seconds:.1f}s "
            f"(total {outcome.total_seconds:.1f}s)"
        )
        if outcome.roles_created:
            print(f"  roles created on the drill server: {', '.join(outcome.roles_created)}")
        for m in outcome.mismatches:
            output.error(f"{outcome.backup}: {m}")
        if outcome.reason and not outcome.mismatches:
            output.error(f"{outcome.backup}: {outcome.reason}")
    if not outcome.ok:
        raise typer.Exit(1)


@app.command(context_settings=CONTEXT)
def audit(
    action: Annotated[
        list[str] | None,
        typer.Option("--action", "-a", help=f"One of: {', '.join(ACTIONS)} (repeatable)."),
    ] = None,
    actor: Annotated[str | None, typer.Option(help="Who (part of user@host via ...).")] = None,
    backup_name: Annotated[
        str | None, typer.Option("--backup", help="One backup's events.")
    ] = None,
    since: Annotated[str | None, typer.Option(help="From this time (2026-11-01, 7d, 12h).")] = None,
    until: Annotated[str | None, typer.Option(help="Before this time.")] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many lines.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Who backed up, verified, restored, drilled or deleted what, and when; newest first.

    Examples:

      dumpledger audit --action restore          # who restored what when

      dumpledger audit --backup backup_20261124_120000

      dumpledger audit --actor alice --since 7d --json
    """
    from usecases.audit import audit as run_audit

    now = datetime.now(UTC)
    try:
        flt = AuditFilter(
            actions=tuple(action or ()),
            actor=actor,
            backup=backup_name,
            since=parse_moment(since, now) if since else None,
            until=parse_moment(until, now) if until else None,
            limit=limit,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    with open_app() as ctx:
        lines = run_audit(ctx, flt)
    if json_out:
        output.emit_json([ln.to_json() for ln in lines])
        return
    if not lines:
        output.info("no events match")
        return
    output.table(
        ["WHEN", "WHO", "WHAT", "BACKUP", "TARGET", "OUTCOME", "DETAIL"],
        [
            [
                output.local_time(ln.when),
                ln.actor,
                ln.event,
                ln.backup,
                ln.target or "-",
                ln.outcome,
                ln.detail,
            ]
            for ln in lines
        ],
        [output.STATUS_COLOURS.get(ln.outcome) for ln in lines],
    )


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
    """Run the main job end to end on a throwaway database.

    Starts a throwaway PostgreSQL with sample data, backs it up, backs it up again (nothing
    new is stored), verifies, lists and checks the catalog, then stops the server.

    Example: dumpledger demo --backup-dir /tmp/demo
    """
    import shutil

    from catalog.queries import list_backups
    from usecases.backup import BackupRequest, run_backup
    from usecases.context import App
    from usecases.demo import demo_database, demo_settings
    from usecases.verify import verify_backups

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
        output.table(LIST_HEADERS, [_list_row(r) for r in rows])
        print("\n$ dumpledger catalog verify")
        report = ctx.catalog.verify_chain()
        print(f"catalog {'ok' if report.ok else 'BROKEN'}: {report.events} events")
    print(
        f"\nbackups, catalog and logs are in {backup_dir}/ ; try "
        f"`DUMPLEDGER_BACKUP_DIR={backup_dir} .venv/bin/dumpledger list`"
    )


# -- retention: cleanup, delete, pin, unpin, retention explain|simulate ----------------------

retention_app = typer.Typer(
    help="Explain and simulate the retention policy.",
    context_settings=CONTEXT,
    no_args_is_help=True,
)
app.add_typer(retention_app, name="retention")


def _retention_after_backup(ctx: App) -> tuple[CleanupReport | None, str | None]:
    """The cleanup report, or why retention did not finish (said on stderr)."""
    from usecases.retention import cleanup as run_cleanup

    try:
        report = run_cleanup(ctx)
    except (*KNOWN_ERRORS, OSError) as exc:  # the backup itself is done and verified: say so
        output.error(
            f"the backup completed, but retention did not finish: {exc}; "
            "run `dumpledger cleanup` once the cause is fixed"
        )
        return None, str(exc)
    if report.files_not_removed:
        problem = _files_not_removed(report.files_not_removed)
        output.error(f"the backup completed, but retention did not finish: {problem}")
        return report, problem
    return report, None


def _files_not_removed(problems: list[str]) -> str:
    """One line for the files of deleted backups that could not be removed."""
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return (
        f"cannot remove {problems[0]}{more}; the backups are deleted in the catalog, and the "
        "next `dumpledger cleanup` removes their files once the cause is fixed"
    )


def _print_cleanup_summary(report: CleanupReport) -> None:
    freed = output.human_size(report.collect.freed_bytes)
    line = (
        f"retention: {len(report.deleted)} backup(s) removed, "
        f"{len(report.collect.collected)} blob(s) collected ({freed} freed)"
    )
    if report.collect.postponed:
        line += "; blob collection postponed (a backup is writing)"
    print(line)


@app.command(context_settings=CONTEXT)
def cleanup(
    days: Annotated[
        float | None,
        typer.Argument(help="Keep automatic backups this many days (this run only)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", "-n", help="Show what would go; change nothing.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Apply the retention policy: every backup is kept or removed, with the rule that decided.

    Automatic backups go after 60 days (backups/backup-config.json "retention" changes it);
    manual, emergency-* and pre-* backups stay until a person deletes them; pinned backups and
    the newest verified one always stay. Blobs no remaining backup uses are then removed.

    Examples:

      dumpledger cleanup --dry-run           # what would go, and why

      dumpledger cleanup 30                  # automatic backups older than 30 days go
    """
    from usecases.retention import cleanup as run_cleanup

    with open_app() as ctx:
        report = run_cleanup(ctx, days=days, dry_run=dry_run)
    if report.files_not_removed:
        output.error(_files_not_removed(report.files_not_removed))
    if json_out:
        output.emit_json(report.to_json())
        if report.files_not_removed:
            raise typer.Exit(1)
        return
    if not report.decisions:
        output.info("no backups to consider")
        return
    output.table(
        ["NAME", "ACTION", "RULE", "WHY"],
        [[d.name, d.action, d.rule, d.detail] for d in report.decisions],
        [None if d.keep else "31" for d in report.decisions],
    )
    gone = len(report.removals)
    if dry_run:
        print(
            f"dry run: {gone} backup(s) would be removed, freeing about "
            f"{output.human_size(report.would_free_bytes)}; nothing was changed"
        )
        return
    for name in report.skipped:
        print(f"kept {name}: it was pinned, deleted or changed while cleaning up")
    _print_cleanup_summary(report)
    if report.logs_removed:
        print(f"{report.logs_removed} old run log(s) removed")
    if report.files_not_removed:
        raise typer.Exit(1)


@app.command(context_settings=CONTEXT)
def delete(
    name: Annotated[str, typer.Argument(help="The backup to delete (see `list`).")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Delete even if pinned.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Delete one backup; its blobs go when no other backup uses them.

    Example: dumpledger delete backup_20261124_120000
    """
    from catalog.queries import get_backup
    from usecases.retention import delete_backup

    with open_app() as ctx:
        backup = get_backup(ctx.catalog.engine, name)
        if not yes:
            if not sys.stdin.isatty():
                raise BadInput("delete needs a confirmation: run it in a terminal, or pass --yes")
            size = output.human_size(backup["stored_size"])
            if not typer.confirm(f"Delete backup {name} ({backup['backup_type']}, {size})?"):
                raise BadInput(f"not confirmed: {name} was kept")
        report = delete_backup(ctx, name, force=force)
    if report.files_not_removed:
        output.error(_files_not_removed(report.files_not_removed))
    if json_out:
        output.emit_json(
            {
                "deleted": name,
                "blobs_collected": [c.digest for c in report.collected],
                "freed_bytes": report.freed_bytes,
                "collection_postponed": report.postponed,
                "files_not_removed": report.files_not_removed,
            }
        )
    else:
        print(
            f"deleted {name}; {len(report.collected)} blob(s) no longer used were removed "
            f"({output.human_size(report.freed_bytes)} freed)"
        )
        if report.postponed:
            print("blob collection postponed: a backup is writing; the next cleanup collects them")
    if report.files_not_removed:
        raise typer.Exit(1)


@app.command(context_settings=CONTEXT)
def pin(
    name: Annotated[str, typer.Argument(help="The backup to keep.")],
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why it must stay.")],
) -> None:
    """Keep a backup whatever the retention policy says, until it is unpinned.

    Example: dumpledger pin backup_20261124_120000 --reason "before the 2.0 migration"
    """
    from usecases.retention import pin as run_pin

    with open_app() as ctx:
        run_pin(ctx, name, reason)
    print(f"pinned {name}: {reason.strip()}")


@app.command(context_settings=CONTEXT)
def unpin(name: Annotated[str, typer.Argument(help="The pinned backup.")]) -> None:
    """Let the retention policy decide about a pinned backup again.

    Example: dumpledger unpin backup_20261124_120000
    """
    from usecases.retention import unpin as run_unpin

    with open_app() as ctx:
        run_unpin(ctx, name)
    print(f"unpinned {name}; retention decides about it again (dumpledger retention explain)")


@retention_app.command("explain", context_settings=CONTEXT)
def retention_explain(
    name: Annotated[str, typer.Argument(help="The backup.")],
    days: Annotated[
        float | None, typer.Option("--days", help="As `cleanup DAYS` would see it.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Say why a backup is kept, or why the next cleanup would remove it.

    Example: dumpledger retention explain auto_nightly_20261001_030000
    """
    from usecases.retention import explain

    with open_app() as ctx:
        ex = explain(ctx, name, days=days)
    if json_out:
        output.emit_json(
            {
                "name": ex.name,
                "status": ex.status,
                "action": ex.action,
                "rule": ex.rule,
                "detail": ex.detail,
                "policy": ex.policy,
            }
        )
        return
    verb = {"keep": "is kept", "remove": "would be removed", "deleted": "was deleted"}[ex.action]
    print(f"{ex.name} {verb}: {ex.rule} ({ex.detail})")
    print(f"policy: {ex.policy}")


@retention_app.command("simulate", context_settings=CONTEXT)
def retention_simulate(
    no_new_backups: Annotated[
        float,
        typer.Option("--no-new-backups", help="Days without any new backup.", show_default=False),
    ],
    json_out: JsonOpt = False,
) -> None:
    """Show what would be left if backups stopped for that many days.

    Example: dumpledger retention simulate --no-new-backups 90
    """
    from usecases.retention import simulate

    with open_app() as ctx:
        decisions = simulate(ctx, no_new_backups)
    kept = [d for d in decisions if d.keep]
    if json_out:
        output.emit_json(
            {
                "days": no_new_backups,
                "kept": [{"name": d.name, "rule": d.rule} for d in kept],
                "removed": [d.name for d in decisions if not d.keep],
            }
        )
        return
    print(
        f"after {no_new_backups:g} days without backups: {len(kept)} kept, "
        f"{len(decisions) - len(kept)} removed"
    )
    for d in kept:
        print(f"  keep {d.name:<45} {d.rule}")


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


from cli.config_cmd import config_app  # noqa: E402  (commands in their own modules)

app.add_typer(config_app, name="config")
app.command("import-legacy", context_settings=CONTEXT)(import_legacy_cmd)
app.add_typer(schedule_app, name="schedule")
app.command("check", context_settings=CONTEXT)(health.check)
app.command("metrics", context_settings=CONTEXT)(health.metrics)
app.command(context_settings=CONTEXT)(offsite.push)
app.command(context_settings=CONTEXT)(offsite.recover)
catalog_app.command("export", context_settings=CONTEXT)(offsite.catalog_export)
catalog_app.command("import", context_settings=CONTEXT)(offsite.catalog_import)


def reflowed(doc: str) -> str:
    """A docstring as --help should print it: Typer keeps every line break of the source, so
    lines wrapped at 100 columns came out ragged on an 80-column terminal. Prose paragraphs
    become one line each (Rich wraps them to the terminal); indented ones (examples) stay."""
    paragraphs = inspect.cleandoc(doc).split("\n\n")
    return "\n\n".join(
        p if any(line.startswith(" ") for line in p.split("\n")) else " ".join(p.split())
        for p in paragraphs
    )


def _reflow_help(group: typer.Typer) -> None:
    for info in group.registered_commands:
        doc = info.help or (info.callback.__doc__ if info.callback else None)
        if doc:
            info.help = reflowed(doc)
    for sub in group.registered_groups:
        if sub.typer_instance is not None:
            _reflow_help(sub.typer_instance)


_reflow_help(app)


def main(argv: list[str] | None = None) -> int:
    """Run one command; the exit code. Typer reports usage errors itself (exit 2); dumpledger's
    own errors become one line on stderr with their exit code. Only typer's public names are
    used: typer >= 0.29 carries its own click, whose exceptions are not the click package's."""
    command = typer.main.get_command(app)
    try:
        command.main(args=argv, prog_name="dumpledger", standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KNOWN_ERRORS as exc:
        output.error(str(exc))
        return int(getattr(exc, "exit_code", 1))
    return 0


def run() -> None:
    sys.exit(main())

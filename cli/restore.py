"""`dumpledger restore` and `dumpledger drill`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli import output
from cli.state import JsonOpt, open_app
from usecases.errors import BadInput

if TYPE_CHECKING:
    from usecases.restore.run import RestorePlan


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
        str | None,
        typer.Option(
            help="full (plain SQL through psql) or custom (pg_restore); default: full, or "
            "custom with --schema/--table."
        ),
    ] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="pg_restore jobs (custom).")] = 2,
    schema: Annotated[
        list[str] | None,
        typer.Option(
            "--schema",
            help="Only this schema, as the backup had it (custom format; repeatable). Objects "
            "of other schemas that depend on it are recreated as they are; --plan lists them.",
        ),
    ] = None,
    table: Annotated[
        list[str] | None, typer.Option("--table", help="Only this table (custom format).")
    ] = None,
    no_globals: Annotated[
        bool, typer.Option("--no-globals", help="Do not create the backup's missing roles.")
    ] = False,
    allow_meta_commands: Annotated[
        bool,
        typer.Option(
            "--allow-meta-commands",
            help="--file: let psql run the file's meta-commands (\\! runs shell commands); "
            "without it a file holding any is refused.",
        ),
    ] = False,
    keep_platform: Annotated[
        bool,
        typer.Option(
            "--keep-platform",
            help="Into a Supabase instance: keep its platform (auth, storage, ... definitions, "
            "roles), restore your schemas whole and every table's rows. The default when "
            "connecting as a role that is no superuser (Supabase's postgres).",
        ),
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

      dumpledger restore backup_20261124_120000 --table public.todos

      SUPABASE_DB_USER=postgres dumpledger restore auto_nightly_20261124_020000 --plan
      (into a Supabase instance as postgres: the platform stays, your project comes back)

    A restore that is interrupted (Ctrl-C, SIGTERM, SIGKILL) commits nothing: the target is as
    it was, and the message (or the next command) names the safety backup to return to.
    """
    from usecases.restore.run import RestoreRequest, execute_restore, plan_restore

    req = RestoreRequest(
        backup=name,
        file=file,
        target_db=target_db,
        artifact=artifact,
        schemas=tuple(schema or ()),
        tables=tuple(table or ()),
        jobs=jobs,
        with_globals=not no_globals,
        allow_meta_commands=allow_meta_commands,
        keep_platform=keep_platform,
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
    if outcome.roles_created and plan.roles_without_password:
        print(
            f"  without a password (set one with ALTER ROLE ... PASSWORD): "
            f"{', '.join(plan.roles_without_password)}"
        )
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
    if plan.platform is not None:
        _print_platform_plan(plan)
    elif plan.partial is not None:
        _print_partial(doc["objects_replaced"])
    else:
        print("  method:        restore into a scratch database, then swap it in by renaming")
    print(f"  safety backup: {doc['safety_backup'] or '- (the database does not exist yet)'}")
    roles = ", ".join(doc["roles_to_create"]) or "none (all exist)"
    print(f"  roles created: {roles}")
    if doc["roles_created_without_password"]:
        print(
            f"  no password:   {', '.join(doc['roles_created_without_password'])} (the backup "
            "holds none: set them with ALTER ROLE ... PASSWORD after the restore)"
        )
    if doc["target_exists"] and plan.partial is None:
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


def _print_partial(part: dict[str, Any]) -> None:
    if "rows_replaced" in part:
        print("  method:        replace the rows of the named tables, in one transaction")
        names = [
            f"{t} (partitions: {', '.join(part['partitions'][t])})"
            if t in part["partitions"]
            else t
            for t in part["rows_replaced"]
        ]
        print(f"  rows replaced: {', '.join(names)}")
        print(f"  emptied with:  {part['emptied_with']}")
        keys = "; ".join(part["foreign_keys_checked"]) or "none"
        print(f"  keys checked:  {keys} (fails if a row would point at nothing)")
        seqs = ", ".join(part["sequences_left_as_they_are"]) or "none"
        print(f"  sequences:     left as they are: {seqs}")
        print("  untouched:     every other table")
    else:
        print("  method:        drop and recreate the schemas' objects (pg_restore --clean), in")
        print("                 one transaction")
        for name, n in part["schemas_replaced"].items():
            print(
                f"  replaced:      {name} ({n['tables_now']} tables now, "
                f"{n['tables_in_backup']} in the backup)"
            )
        if part["partitions_detached_and_reattached"]:
            print(
                "  partitions:    detached, then attached again from the backup: "
                + ", ".join(part["partitions_detached_and_reattached"])
            )
        if part["foreign_keys_dropped_and_recreated"]:
            print(
                "  keys:          dropped, then recreated from the backup: "
                + "; ".join(part["foreign_keys_dropped_and_recreated"])
            )
        if part["set_aside_and_recreated"]:  # objects of other schemas on the schemas' own
            print(
                "  set aside:     dropped, then recreated as they are: "
                + "; ".join(part["set_aside_and_recreated"])
            )
        for name, what in part["extensions"].items():
            print(f"  extension:     {name}: {what}")
    counts = part["row_counts_checked"]
    if counts:
        shown = ", ".join(f"{k} {v}" for k, v in list(counts.items())[:5])
        more = f" (+{len(counts) - 5} more)" if len(counts) > 5 else ""
        print(f"  row counts:    checked against the backup: {shown}{more}")


def _print_platform_plan(plan: RestorePlan) -> None:
    assert plan.platform is not None
    p = plan.platform.to_json()
    print(
        f"  method:        into a Supabase instance as {plan.target.user}: its platform stays; "
        "one transaction"
    )
    print(f"  safety backup: {plan.safety_backup}")
    whole = ", ".join(f"{k} ({v} tables)" for k, v in p["restored_whole"].items())
    replaced = _names(p, "target_schemas_replaced")
    print(f"  restored whole:     {whole or 'none'} (replacing the target's {replaced})")
    rows = ", ".join(f"{k} ({'?' if v is None else v})" for k, v in p["rows_only"].items())
    print(f"  only their rows:    {rows or 'none'} (triggers kept from firing)")
    print(f"  left to platform:   {_names(p, 'left_to_the_platform')}; roles; database settings")
    if p["created_on_platform_tables"]:
        print(f"  created:            {_names(p, 'created_on_platform_tables')}")
    for d in p["platform_differences"]:
        print(f"  platform differs:   {d}")
    for b in p["refused_because"]:
        print(f"  REFUSED:            {b}")


def _names(doc: dict[str, list[str]], key: str) -> str:
    return ", ".join(doc[key]) or "none"


def _confirm(plan: RestorePlan) -> None:
    if not sys.stdin.isatty():
        raise BadInput("restore needs a confirmation: run it in a terminal, or pass --yes")
    _print_plan(plan)
    db = plan.target.dbname
    swap = plan.partial is None
    note = " Other sessions connected to it will be terminated." if plan.facts.target_exists else ""
    what = f"database {db}" if swap else f"the parts of database {db} listed above"
    if plan.platform is not None:
        what, note = f"your schemas and the rows of every table in {db}", ""
    answer = typer.prompt(
        f"This replaces {what} with {plan.source.label}.{note if swap else ''} Type the database "
        "name to go on",
        default="",
        show_default=False,
    )
    if answer.strip() != db:
        raise BadInput(f"confirmation did not match {db!r}: nothing was changed")


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

    from usecases.health.alerts import after_drill
    from usecases.restore.drill import run_drill

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

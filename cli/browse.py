"""`list`, `info` and `audit`: reading the catalog."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from catalog.read import ACTIONS, AuditFilter, BackupFilter
from cli import output
from cli.state import JsonOpt, open_app, settings
from cli.timeparse import parse_moment
from usecases.backup.abandon import describe, is_stale
from usecases.backup.names import classify

if TYPE_CHECKING:
    pass


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
    s = settings()
    with reading(s, on_notice=lambda n: output.info(f"dumpledger: {n}")) as query:
        where = offsite_targets(query, flt)
        rows = [{**r, "offsite": where.get(r["name"], [])} for r in list_backups(query, flt)]
    for r in rows:  # running for longer than a backup should: its process may be gone
        r["stale"] = is_stale(r, now, s.health.stale_running_hours)
    if json_out:
        output.emit_json(rows)
        return
    if not rows:
        output.info("no backups match; take one with `dumpledger backup`")
        return
    for r in (r for r in rows if r["stale"]):
        output.info(
            f"{describe(r, now)} without finishing: if its process is gone, "
            f"`dumpledger delete --force {r['name']}` records it as abandoned"
        )
    output.table(
        LIST_HEADERS,
        [list_row(r) for r in rows],
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


def list_row(r: dict[str, Any]) -> list[str]:
    verified = "-" if r["last_verify_ok"] is None else ("ok" if r["last_verify_ok"] else "FAILED")
    return [
        r["name"],
        r["backup_type"],
        "stale" if r.get("stale") else r["status"],
        output.local_time(r["started_at"]),
        output.human_size(r["stored_size"]),
        verified,
        _drill_cell(r),
        "pinned" if r["pinned"] else "-",
        ",".join(r.get("offsite") or []) or "-",
        (r["git_commit"] or "-")[:10],
    ]


def info(name: str, json_out: JsonOpt = False) -> None:
    """Show one backup: metadata, artifacts, digests and its events.

    Example: dumpledger info backup_20261124_120000
    """
    from catalog.queries import get_backup, offsite_targets

    with open_app(read_only_ok=True) as ctx:
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
    if meta.get("role_passwords"):
        rp = meta["role_passwords"]
        without = ", ".join(rp["login_roles_without_password"]) or "none"
        kept = "kept" if rp["included"] else "left out"
        print(f"{'role passwords:':<18}{kept}; login roles without one: {without}")
    if meta.get("extensions"):
        exts = ", ".join(f"{e['name']} {e['version']} ({e['owner']})" for e in meta["extensions"])
        print(f"{'extensions:':<18}{exts}")
    if meta.get("encryption"):
        enc = meta["encryption"]
        print(f"{'encrypted:':<18}{enc['scheme']} to {', '.join(enc['recipients'])}")
    print("artifacts:")
    for a in backup["artifacts"]:
        print(
            f"  {a['kind']:<8} {a['codec']:<8} raw {output.human_size(a['raw_size']):>10}  "
            f"stored {output.human_size(a['stored_size']):>10}  sha256:{a['digest']}"
        )
    if meta.get("store"):
        added = meta["store"]
        print(
            f"{'newly stored:':<18}{output.human_size(added['added_bytes'])} "
            f"({added['new_chunks']} of {added['chunks']} chunks new)"
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
    with open_app(read_only_ok=True) as ctx:
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

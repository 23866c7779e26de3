"""`cleanup`, `delete`, `pin`, `unpin` and `retention explain|simulate`."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from cli import output
from cli.state import CONTEXT, KNOWN_ERRORS, JsonOpt, open_app
from usecases.errors import BadInput

if TYPE_CHECKING:
    from usecases.context import App
    from usecases.retention.cleanup import CleanupReport
    from usecases.storage.collect import CollectReport


retention_app = typer.Typer(
    help="Explain and simulate the retention policy.",
    context_settings=CONTEXT,
    no_args_is_help=True,
)


def retention_after_backup(ctx: App) -> tuple[CleanupReport | None, str | None]:
    """The cleanup report, or why retention did not finish (said on stderr)."""
    from usecases.retention.cleanup import cleanup as run_cleanup

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


def print_cleanup_summary(report: CleanupReport) -> None:
    line = f"retention: {len(report.deleted)} backup(s) removed, " + collected_text(report.collect)
    if report.collect.postponed:
        line += "; blob collection postponed (a backup is writing)"
    print(line)


def collected_text(collect: CollectReport) -> str:
    """`N blob(s) collected, P pack(s) deleted, R repacked into W (X freed)`."""
    packs = collect.packs
    text = f"{len(collect.collected)} blob(s) collected"
    if packs.deleted:
        text += f", {len(packs.deleted)} pack(s) deleted"
    if packs.repacked:
        text += f", {len(packs.repacked)} pack(s) repacked into {len(packs.written)}"
    text = f"{text} ({output.human_size(collect.freed_bytes)} freed)"
    if collect.pack_plan.sealed_kept:
        text += f"; {SEALED_KEPT.format(n=collect.pack_plan.sealed_kept)}"
    return text


SEALED_KEPT = (
    "{n} encrypted pack(s) worth repacking kept as they are: repacking reads them, set "
    "encryption.identity_file (and recipients) to let cleanup rewrite them"
)


def _freed_parts(report: CleanupReport) -> str:
    """What a dry run's total is made of."""
    freed = report.freed()
    parts = [f"{output.human_size(freed['blobs_and_manifests_bytes'])} of blobs and manifests"]
    if freed["packs_deleted"]:
        deleted = output.human_size(freed["packs_deleted_bytes"])
        parts.append(f"{len(freed['packs_deleted'])} pack(s) of {deleted} deleted")
    if freed["packs_repacked"]:
        saved = output.human_size(freed["repack_savings_bytes"])
        parts.append(f"{len(freed['packs_repacked'])} pack(s) repacked, saving {saved}")
    if freed["sealed_packs_kept"]:
        parts.append(SEALED_KEPT.format(n=freed["sealed_packs_kept"]))
    return ", ".join(parts)


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
    the newest verified one always stay. What no remaining backup uses is then removed: whole
    blobs, chunk lists, packs holding no used chunk; a pack whose unused part is over
    store.repack_threshold (0.3) of it is rewritten with only its used chunks. A dry run frees
    exactly what the real run frees; FREES ALONE is what only that backup holds.

    Examples:

      dumpledger cleanup --dry-run           # what would go, why, and the bytes it frees

      dumpledger cleanup 30                  # automatic backups older than 30 days go
    """
    from usecases.retention.cleanup import cleanup as run_cleanup

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
    frees = report.forecast.per_backup
    headers, rows = ["NAME", "ACTION", "RULE", "WHY"], []
    for d in report.decisions:
        rows.append([d.name, d.action, d.rule, d.detail])
        if dry_run:
            rows[-1].insert(3, output.human_size(frees[d.name]) if d.name in frees else "")
    if dry_run:
        headers.insert(3, "FREES ALONE")
    output.table(headers, rows, [None if d.keep else "31" for d in report.decisions])
    gone = len(report.removals)
    if dry_run:
        print(
            f"dry run: {gone} backup(s) would be removed, freeing "
            f"{output.human_size(report.would_free_bytes)} ({_freed_parts(report)}); "
            "nothing was changed"
        )
        return
    for name in report.skipped:
        print(f"kept {name}: it was pinned, deleted or changed while cleaning up")
    print_cleanup_summary(report)
    if report.logs_removed:
        print(f"{report.logs_removed} old run log(s) removed")
    if report.files_not_removed:
        raise typer.Exit(1)


def delete(
    name: Annotated[str, typer.Argument(help="The backup to delete (see `list`).")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Delete even if pinned; or a backup stuck in `running` longer than "
            "health.stale_running_hours (its process gone with its host): recorded as "
            "failed (abandoned) first.",
        ),
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Delete one backup; its blobs go when no other backup uses them.

    Examples:

      dumpledger delete backup_20261124_120000

      dumpledger delete --force --yes auto_nightly_20261120_235900   # stuck in running
    """
    from catalog.queries import get_backup
    from usecases.retention.cleanup import delete_backup

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
                "packs_deleted": [p.name for p in report.packs.deleted],
                "packs_repacked": [p.name for p in report.packs.repacked],
                "collection_postponed": report.postponed,
                "files_not_removed": report.files_not_removed,
            }
        )
    else:
        print(f"deleted {name}; no longer used: {collected_text(report)}")
        if report.postponed:
            print("blob collection postponed: a backup is writing; the next cleanup collects them")
    if report.files_not_removed:
        raise typer.Exit(1)


def pin(
    name: Annotated[str, typer.Argument(help="The backup to keep.")],
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why it must stay.")],
) -> None:
    """Keep a backup whatever the retention policy says, until it is unpinned.

    Example: dumpledger pin backup_20261124_120000 --reason "before the 2.0 migration"
    """
    from usecases.retention.cleanup import pin as run_pin

    with open_app() as ctx:
        run_pin(ctx, name, reason)
    print(f"pinned {name}: {reason.strip()}")


def unpin(name: Annotated[str, typer.Argument(help="The pinned backup.")]) -> None:
    """Let the retention policy decide about a pinned backup again.

    Example: dumpledger unpin backup_20261124_120000
    """
    from usecases.retention.cleanup import unpin as run_unpin

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
    from usecases.retention.cleanup import explain

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
                "frees_bytes": ex.frees_bytes,
            }
        )
        return
    verb = {"keep": "is kept", "remove": "would be removed", "deleted": "was deleted"}[ex.action]
    print(f"{ex.name} {verb}: {ex.rule} ({ex.detail})")
    print(f"policy: {ex.policy}")
    if ex.action != "deleted":
        print(
            f"removing it alone frees {output.human_size(ex.frees_bytes)} "
            "(the stored bytes no other backup uses)"
        )


@retention_app.command("simulate", context_settings=CONTEXT)
def retention_simulate(
    no_new_backups: Annotated[
        float,
        typer.Option("--no-new-backups", help="Days without any new backup.", show_default=False),
    ],
    json_out: JsonOpt = False,
) -> None:
    """Show what would be left if backups stopped for that many days, and the bytes freed.

    Example: dumpledger retention simulate --no-new-backups 90
    """
    from usecases.retention.cleanup import simulate

    with open_app() as ctx:
        sim = simulate(ctx, no_new_backups)
    decisions, frees = sim.decisions, sim.forecast.per_backup
    kept = [d for d in decisions if d.keep]
    removed = [d for d in decisions if not d.keep]
    if json_out:
        output.emit_json(
            {
                "days": no_new_backups,
                "kept": [{"name": d.name, "rule": d.rule} for d in kept],
                "removed": [d.name for d in removed],
                "removed_frees_bytes": {d.name: frees.get(d.name, 0) for d in removed},
                "freed_bytes": sim.forecast.freed_bytes,
            }
        )
        return
    print(
        f"after {no_new_backups:g} days without backups: {len(kept)} kept, "
        f"{len(removed)} removed, freeing {output.human_size(sim.forecast.freed_bytes)}"
    )
    for d in kept:
        print(f"  keep   {d.name:<45} {d.rule}")
    for d in removed:
        alone = output.human_size(frees.get(d.name, 0))
        print(f"  remove {d.name:<45} {d.rule} (frees {alone} alone)")

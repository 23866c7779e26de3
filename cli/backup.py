"""`dumpledger backup`: a verified backup, then retention for automatic ones."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli import output
from cli.retention import print_cleanup_summary, retention_after_backup
from cli.state import KNOWN_ERRORS, JsonOpt, open_app, settings
from usecases.backup.names import BACKUP_TYPES, classify

if TYPE_CHECKING:
    from usecases.backup.run import BackupResult
    from usecases.retention.cleanup import CleanupReport


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
    from usecases.backup.run import BackupRequest, run_backup
    from usecases.health.alerts import backup_alerts, backup_not_started

    overrides: dict[str, Any] = {"codec": codec} if codec is not None else {}
    auto_report = retention_error = None
    try:
        opened = open_app(**overrides)
    except KNOWN_ERRORS as exc:  # nothing can record it: a scheduled run still notifies
        backup_not_started(settings(**overrides), backup_type, exc)
        raise
    with opened as ctx, backup_alerts(ctx, backup_type) as alerts:
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
            auto_report, retention_error = retention_after_backup(ctx)
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
                "role_passwords": result.metadata.get("role_passwords"),
                "retention": auto_report.to_json() if auto_report else None,
            }
        )
        passwords_note_of(result)
    else:
        print_backup(result)
        if auto_report is not None:
            print_cleanup_summary(auto_report)
    sys.stdout.flush()


def print_backup(result: BackupResult) -> None:
    for art in result.artifacts:
        note = "new" if art["created"] else "already stored"
        if art.get("chunks"):
            note = (
                f"{note}; {art['new_chunks']} of {art['chunks']} chunks new, "
                f"+{output.human_size(art['added_bytes'])}"
            )
        print(
            f"  {art['kind']:<8} {output.human_size(art['raw_size']):>10} -> "
            f"{output.human_size(art['stored_size']):>10}  sha256:{art['digest'][:12]}  ({note})"
        )
    print(
        f"backup {result.name} completed and verified in {result.duration_seconds:.1f}s; "
        f"{output.human_size(result.stored_bytes_added)} newly stored"
    )
    passwords_note_of(result)


def passwords_note_of(result: BackupResult) -> None:
    """One line on stderr when the backup holds no role passwords (also with --json)."""
    passwords = result.metadata.get("role_passwords")
    if passwords and not passwords["included"]:
        from usecases.backup.passwords import passwords_note

        output.info(f"note: {passwords_note(passwords)}")

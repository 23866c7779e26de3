"""`dumpledger import-legacy DIR`: bring the old shell scripts' backups into the catalog."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli import output
from usecases.errors import BadInput

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from usecases.backup.legacy import ImportReport

MARKS = {
    "imported": "imported",
    "would-import": "would import",
    "skipped": "skipped",
    "failed": "FAILED",
}


def import_legacy_cmd(
    directory: Annotated[
        Path, typer.Argument(help="The old scripts' backup directory (e.g. backups/database).")
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", "-n", help="Check the files and show what would happen.")
    ] = False,
    timezone: Annotated[
        str | None,
        typer.Option(
            "--timezone",
            help="Zone of times without an offset (names, old metadata); default: this machine's.",
        ),
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Machine-readable JSON on stdout.")
    ] = False,
) -> None:
    """Import the old scripts' backups (*_full.sql.gz, *_full.sql, *.dump, *_metadata.json).

    Every file is read whole first (complete gzip, pg_dump's completion trailer, a custom dump
    pg_restore decodes); a damaged one is reported and its backup is not imported. Names,
    types, original times, git commit/branch, creator and the verified flag are kept. Running
    it again imports nothing new. Exits 1 when any backup failed, after importing the others.

    Examples:

      dumpledger import-legacy old-backups/database --dry-run

      dumpledger import-legacy old-backups/database --timezone Europe/Berlin
    """
    from cli.state import open_app
    from usecases.backup.legacy import ImportRequest, import_legacy

    req = ImportRequest(directory=directory, dry_run=dry_run, tz=_zone(timezone))
    with open_app() as ctx:
        report = import_legacy(ctx, req)
    if json_out:
        output.emit_json(report.to_json())
    else:
        _print(report)
    for o in report.outcomes:
        if o.status == "failed":
            output.error(f"{o.backup} not imported: {o.reason}")
    if report.failed:
        raise typer.Exit(1)


def _zone(name: str | None) -> ZoneInfo | None:
    if name is None:
        return None
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadInput(
            f"unknown time zone {name!r}: use an IANA name such as UTC or Europe/Berlin"
        ) from None


def _print(report: ImportReport) -> None:
    for o in report.outcomes:
        why = f" ({o.reason})" if o.reason else ""
        for name in o.files:
            print(f"{MARKS[o.status]:<12} {name} -> {o.backup}{why}")
    for ign in report.ignored:
        print(f"{'ignored':<12} {ign.path.name} ({ign.reason})")
    c = report.counts()
    if report.dry_run:
        summary = f"dry run: {c['would-import']} backup(s) would be imported"
    else:
        summary = f"{c['imported']} backup(s) imported"
    print(f"{summary}, {c['skipped']} skipped, {c['failed']} failed, from {report.directory}")

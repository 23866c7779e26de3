"""`dumpledger report`: the backups at a glance, as one self-contained HTML page."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from catalog.canonical import parse_utc
from cli import output
from cli.state import settings
from cli.timeparse import parse_moment


def report(
    out: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Where to write the page (default: report.html in the backup directory; "
            "'-' writes it to stdout).",
        ),
    ] = None,
    since: Annotated[
        str, typer.Option(help="The period's start: an age (60d, 2w, 12h) or a date.")
    ] = "60d",
    no_check: Annotated[
        bool,
        typer.Option(
            "--no-check",
            help="Leave out `check`'s verdict (it connects to the database and re-hashes the "
            "event log).",
        ),
    ] = False,
    json_out: Annotated[
        bool,
        typer.Option("--json", help="Print the data the page shows as JSON; write no page."),
    ] = False,
) -> None:
    """Write an HTML report of the backups: one file that opens offline in any browser.

    It shows the schedule (every backup by type and outcome, missed slots, times the newest
    automatic backup was older than the RPO), sizes and deduplication (each backup's logical
    size against the bytes it newly stored, the store over time, what the next cleanup
    removes), recoverability (each restore drill against health.rto_minutes, the last
    verification and drill of every backup kept) and the audit of the period (restores,
    deletions, pins, failures), under `check`'s verdict and the newest backup's database, host
    and git commit. Charts need the plotting extra (pip install 'dumpledger\\[charts]'); without
    it the page has the tables alone. The report only reads: it appends no event and works on
    a read-only copy of the backup directory. The file is 0600.

    Examples:

      dumpledger report                   # backups/report.html, the last 60 days

      dumpledger report -o /tmp/week.html --since 7d

      dumpledger report --json --no-check      # the same data, for a script
    """
    from usecases.report.gather import ReportRequest
    from usecases.report.page import default_path, make_page, write_page

    now = datetime.now(UTC)
    try:
        start = parse_utc(parse_moment(since, now))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from None
    s = settings()
    req = ReportRequest(since=start, check=not no_check)
    page = make_page(s, req, clock=lambda: now)
    if json_out:
        output.emit_json(page.report.to_json())
        return
    if out is not None and str(out) == "-":
        sys.stdout.write(page.html)
        return
    path = out or default_path(s)
    written = write_page(path, page.html, backup_dir=s.backup_dir)
    drawn = f"charts by {page.library}" if page.library else "tables only: no charts extra"
    output.info(f"report written to {path} ({output.human_size(written)}, {drawn})")

"""`dumpledger check` and `dumpledger metrics`: health for people, Nagios and Prometheus."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from cli import output

if TYPE_CHECKING:
    from usecases.health.check import CheckResult


def check(
    json_out: Annotated[
        bool, typer.Option("--json", help="Machine-readable JSON on stdout.")
    ] = False,
    no_notify: Annotated[
        bool, typer.Option("--no-notify", help="Do not send a notification when not OK.")
    ] = False,
) -> None:
    """Check that backups are healthy; exit 0 OK, 1 WARNING, 2 CRITICAL (Nagios style).

    Checks: the database answers; pg_dump is at least as new as the server; the catalog's hash
    chain verifies; the store is writable with room for what retention keeps; the newest
    automatic backup is younger than the RPO; the last verification and restore drill are
    recent; a schedule is installed and this host's scheduler runs it (units present, timers
    active, a cron daemon); the newest automatic backup is not far smaller or slower
    than the usual. Limits: "health" in backups/backup-config.json. A result worse than OK is
    also notified (unless --no-notify or "notifications.on_check" is false).

    Examples:

      dumpledger check                       # DUMPLEDGER OK - 9 checks passed

      dumpledger check --json --no-notify    # for a monitoring system
    """
    from cli.state import settings
    from usecases.errors import UseCaseError
    from usecases.health.alerts import after_check
    from usecases.health.check import CheckResult, Status, evaluate
    from usecases.health.facts import gather, open_for_check

    try:
        s = settings()
    except UseCaseError as exc:  # still a Nagios line: a broken config is critical
        _report(
            [CheckResult(name="configuration", status=Status.CRITICAL, message=str(exc))], json_out
        )
    app, catalog_error = open_for_check(s)
    try:
        facts = gather(s, app, catalog_error)
        checks = evaluate(facts, s.health, app.clock() if app else datetime.now(UTC))
        if not no_notify:
            after_check(app, s.notifications, checks, s.health.rpo_hours)
    finally:
        if app is not None:
            app.close()
    _report(checks, json_out)


def _report(checks: list[CheckResult], json_out: bool) -> NoReturn:
    from usecases.health.check import overall, summary_line

    status, first = overall(checks), summary_line(checks)
    if json_out:
        output.emit_json(
            {
                "status": status.name,
                "exit_code": int(status),
                "summary": first,
                "checks": [c.to_json() for c in checks],
            }
        )
    else:
        print(first)
        for c in checks:
            print(f"  [{c.status.name}] {c.name}: {c.message}")
    raise typer.Exit(int(status))


def metrics(
    textfile: Annotated[
        Path | None,
        typer.Option(
            "--textfile",
            help="Write atomically to this *.prom file (node_exporter textfile collector).",
        ),
    ] = None,
) -> None:
    """Print Prometheus text-format gauges: seconds since the last backup, verification and
    drill; backups by type and status; stored bytes; the last backup's size and duration.

    Examples:

      dumpledger metrics

      dumpledger metrics --textfile /var/lib/node_exporter/textfile_collector/dumpledger.prom
    """
    from cli.state import open_app
    from usecases.health.metrics import collect, render, write_textfile

    with open_app(read_only_ok=True) as ctx:
        text = render(collect(ctx), ctx.clock())
    if textfile is None:
        print(text, end="")
        return
    write_textfile(textfile, text)
    output.info(f"metrics written to {textfile}")

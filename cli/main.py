"""dumpledger's command line: parses arguments, calls use cases, renders results."""

from __future__ import annotations

import inspect
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from cli import backup, browse, demo, export, health, offsite, output, restore, retention, verify
from cli.catalog_cmd import catalog_app
from cli.config_cmd import config_app
from cli.legacy import import_legacy_cmd
from cli.memory import bounded_heap
from cli.report import report
from cli.retention import retention_app
from cli.schedule import schedule_app
from cli.state import CONTEXT, KNOWN_ERRORS, STATE
from cli.store_cmd import store_app

# One module per command or group (restic keeps one file per command); this one builds the
# app and runs it. The use cases are imported inside the commands that run them: `list` and
# `--help` start without SQLAlchemy, psycopg or the store (docs/PERFORMANCE.md).

app = typer.Typer(
    name="dumpledger",
    help="Verified, content-addressed PostgreSQL/Supabase backups with an auditable catalog.\n\n"
    "Example: dumpledger backup && dumpledger list",
    context_settings=CONTEXT,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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


# Registered in the order `--help` and docs/commands.md list them.
app.command(context_settings=CONTEXT)(backup.backup)
app.command("list", context_settings=CONTEXT)(browse.list_cmd)
app.command(context_settings=CONTEXT)(browse.info)
app.command(context_settings=CONTEXT)(verify.verify)
app.command(context_settings=CONTEXT)(export.export)
app.command(context_settings=CONTEXT)(export.cat)
app.command(context_settings=CONTEXT)(restore.restore)
app.command(context_settings=CONTEXT)(restore.drill)
app.command(context_settings=CONTEXT)(browse.audit)
app.add_typer(catalog_app, name="catalog")
app.command(context_settings=CONTEXT)(demo.demo)
app.add_typer(retention_app, name="retention")
app.command(context_settings=CONTEXT)(retention.cleanup)
app.command(context_settings=CONTEXT)(retention.delete)
app.command(context_settings=CONTEXT)(retention.pin)
app.command(context_settings=CONTEXT)(retention.unpin)
app.add_typer(config_app, name="config")
app.command("import-legacy", context_settings=CONTEXT)(import_legacy_cmd)
app.add_typer(schedule_app, name="schedule")
app.command("check", context_settings=CONTEXT)(health.check)
app.command("metrics", context_settings=CONTEXT)(health.metrics)
app.command(context_settings=CONTEXT)(report)
app.command(context_settings=CONTEXT)(offsite.push)
app.command(context_settings=CONTEXT)(offsite.recover)
app.add_typer(store_app, name="store")


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
    previous = _on_sigterm()
    try:
        with bounded_heap():  # memory flat whatever the dump's size (cli.memory)
            command.main(args=argv, prog_name="dumpledger", standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KNOWN_ERRORS as exc:
        output.error(str(exc))
        return int(getattr(exc, "exit_code", 1))
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0


def _on_sigterm() -> Any:
    """SIGTERM raises Terminated (a KeyboardInterrupt) in the main thread, as Ctrl-C does: a
    backup or restore then records what it left and says so, instead of vanishing."""
    from usecases.errors import Terminated

    def terminated(signum: int, frame: object) -> None:
        raise Terminated()

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, terminated)


def run() -> None:
    sys.exit(main())

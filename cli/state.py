"""What every command module shares: the root options, settings loading, and option types."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from catalog.errors import CatalogError
from cli import output
from pgtools.errors import PgError
from store.errors import StoreError
from usecases.config.settings import Settings, load_settings
from usecases.errors import UseCaseError

if TYPE_CHECKING:
    from usecases.context import App

# dumpledger's own errors: one line on stderr and their exit code (cli.main.main)
KNOWN_ERRORS = (CatalogError, StoreError, PgError, UseCaseError)
CONTEXT = {"help_option_names": ["-h", "--help"]}
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]


class State:
    backup_dir: Path | None = None
    warned: bool = False


STATE = State()


def settings(**overrides: Any) -> Settings:
    """Effective settings; their warnings (a password in the file, ...) once, on stderr."""
    loaded = load_settings(backup_dir=STATE.backup_dir, overrides=overrides)
    if not STATE.warned:
        for warning in loaded.warnings:
            output.info(f"dumpledger: warning: {warning}")
        STATE.warned = True
    return loaded


def open_app(*, read_only_ok: bool = False, **overrides: Any) -> App:
    """Settings, catalog (created or migrated), store; abandoned backups and interrupted
    restores recorded as failed (and the latter told on stderr). `read_only_ok`: a reading
    command, which also runs on a read-only backup directory.

    Imported here, not at the top: `list` and `--help` must not pay for SQLAlchemy/psycopg."""
    from usecases.context import App

    app = App.open(settings(**overrides), read_only_ok=read_only_ok)
    for note in app.notices:  # what the opening recorded: a restore that was interrupted
        output.info(f"dumpledger: {note}")
    return app

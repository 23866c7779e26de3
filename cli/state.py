"""What every command module shares: the root options, settings loading, and option types."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cli import output
from usecases.config import Settings, load_settings
from usecases.context import App

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


def open_app(**overrides: Any) -> App:
    return App.open(settings(**overrides))

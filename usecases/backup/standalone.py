"""backups/restore-without-dumpledger.py: the standard-library script that rebuilds any
backup's dump from the store (store/standalone_restore.py), kept current at every backup."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from usecases.files import atomic_write

SCRIPT_NAME = "restore-without-dumpledger.py"


def script_source() -> bytes:
    return files("store").joinpath("standalone_restore.py").read_bytes()


def install_standalone_script(backup_dir: Path) -> Path:
    """Copy the script into the backup directory when it is missing or outdated."""
    dest = backup_dir / SCRIPT_NAME
    source = script_source()
    try:
        current = dest.read_bytes()
    except FileNotFoundError:
        current = b""
    if current != source:
        atomic_write(dest, source)
    return dest

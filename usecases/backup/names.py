"""Backup names as the existing scripts make them, and the check that keeps them safe."""

from __future__ import annotations

import re
from datetime import datetime

from usecases.errors import BadInput

SCHEDULED_TYPES = ("morning", "noon", "evening", "nightly")
BACKUP_TYPES = (*SCHEDULED_TYPES, "manual", "emergency", "pre", "test")
RESERVED_PREFIX = "latest_"  # backups/database/latest_full.*, latest_auto.*
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def validate_name(name: str) -> str:
    """Refuse anything that could leave the backup directory or confuse a shell."""
    if not SAFE_NAME.fullmatch(name) or ".." in name or name.endswith("."):
        raise BadInput(
            f"unsafe backup name {name!r}: use letters, digits, '.', '_' and '-' only "
            "(start with a letter or digit, at most 128 characters, no '..')"
        )
    if name == RESERVED_PREFIX.rstrip("_") or name.startswith(RESERVED_PREFIX):
        raise BadInput(
            f"backup name {name!r}: names starting with {RESERVED_PREFIX!r} are reserved for "
            "the latest_full/latest_auto links in backups/database/; choose another name"
        )
    return name


def classify(name: str) -> str:
    """The class of a backup by its name: auto, emergency, pre or manual."""
    if name.startswith("auto_"):
        return "auto"
    if name.startswith("emergency-"):
        return "emergency"
    if name.startswith("pre-"):
        return "pre"
    return "manual"


def infer_type(name: str | None, backup_type: str | None) -> str:
    if backup_type:
        if backup_type not in BACKUP_TYPES:
            raise BadInput(
                f"unknown backup type {backup_type!r}: choose one of {', '.join(BACKUP_TYPES)}"
            )
        return backup_type
    if name and name.startswith("emergency-"):
        return "emergency"
    if name and name.startswith("pre-"):
        return "pre"
    return "manual"


def make_name(name: str | None, backup_type: str, now_local: datetime) -> str:
    """auto_<type>_TS, backup_TS, <name>_TS, emergency-*/pre-* as given."""
    stamp = now_local.strftime("%Y%m%d_%H%M%S")
    if name is not None:
        validate_name(name)
    if backup_type in SCHEDULED_TYPES or backup_type == "test":
        if name:
            raise BadInput(f"scheduled backups are named automatically; drop the name {name!r}")
        return f"auto_{backup_type}_{stamp}"
    if backup_type in ("emergency", "pre"):
        prefix = f"{backup_type}-"
        if name and name.startswith(prefix) and name != prefix:
            return name
        # "pre-" alone names nothing: pre-backup_TS, as `--type pre` without a name gives
        return f"{prefix}{(name or '').removeprefix(prefix) or 'backup'}_{stamp}"
    return validate_name(f"{name or 'backup'}_{stamp}")

"""What `verify` (and a restore's verification) checks a backup against: the event log, not
the `backups` table, which is a projection anyone with write access to the catalog can edit.

A backup verifies only when the log completed it (BackupCompleted or BackupImported) with at
least one artifact, and the projection rows agree with the log; the artifacts re-hashed are
the ones the log recorded.
"""

from __future__ import annotations

from typing import Any

from catalog.errors import UnknownBackup
from catalog.queries import get_backup
from usecases.context import App
from usecases.errors import BadInput

ARTIFACT_FIELDS = ("kind", "digest", "codec", "raw_size", "stored_size", "stored_sha256")


def as_the_log_says(app: App, name: str) -> tuple[dict[str, Any], str | None]:
    """The backup as its events describe it, and why it cannot pass (None when it can)."""
    logged = app.catalog.backup_by_log(name)
    try:
        stored: dict[str, Any] | None = get_backup(app.catalog.engine, name)
    except UnknownBackup:
        stored = None
    if logged is None:
        if stored is None:
            raise UnknownBackup(name)
        return {**stored, "artifacts": []}, (
            f"backup {name} is in the backups table, but no event of the log records it: the "
            "table was edited; run `dumpledger catalog verify`"
        )
    said = stored["status"] if stored is not None else "nothing"
    if logged["status"] != "completed":
        if said != "completed":
            raise BadInput(f"backup {name} is {logged['status']}, not completed: nothing to verify")
        return logged, (
            f"backup {name} is {logged['status']} in the event log, but the backups table says "
            "completed: the table was edited (run `dumpledger catalog verify`); nothing of it "
            "can be restored"
        )
    if not logged["artifacts"]:
        return logged, (
            f"backup {name} has no artifacts in the event log: there is nothing to restore"
        )
    differs = _disagreement(logged, stored)
    if differs:
        return logged, (
            f"the catalog's tables disagree with its event log about backup {name} ({differs}): "
            "they were edited; run `dumpledger catalog verify`"
        )
    return logged, None


def _disagreement(logged: dict[str, Any], stored: dict[str, Any] | None) -> str | None:
    if stored is None:
        return "the backups table has no row for it"
    if stored["status"] != logged["status"]:
        return f"the backups table says {stored['status']}, the log {logged['status']}"
    if _artifacts(stored) != _artifacts(logged):
        return "its artifacts differ"
    return None


def _artifacts(backup: dict[str, Any]) -> set[tuple[Any, ...]]:
    return {tuple(a[f] for f in ARTIFACT_FIELDS) for a in backup["artifacts"]}

"""Restores whose process died before it finished (SIGKILL, the OOM killer, a reboot): the next
command on that host records them as failed (stage "interrupted"), says what state the
target is in and how to return to the safety backup; `check` reports them for a week.

The target's state follows from how restores write: a partial restore is one transaction
that only its last statement commits, a whole restore fills a scratch database and swaps it
in with one transaction, and nothing is touched before the safety backup completed.
"""

from __future__ import annotations

import socket
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from catalog.canonical import parse_utc
from catalog.errors import UnknownBackup
from catalog.events import RestoreFailed, RestoreStarted
from catalog.queries import get_backup
from catalog.recorded import Recorded
from usecases.reading import pid_alive

if TYPE_CHECKING:
    from usecases.context import App

STAGE = "interrupted"
REPORT_DAYS = 7  # `check` warns this long after an interrupted restore, unless one follows
RESTORE_EVENTS = ("RestoreStarted", "RestoreCompleted", "RestoreFailed")


def open_restores(app: App) -> list[Recorded]:
    """RestoreStarted events with no RestoreCompleted or RestoreFailed after them."""
    started: dict[str, Recorded] = {}
    for rec in app.catalog.events(types=list(RESTORE_EVENTS)):
        rid = str(rec.payload.get("restore_id"))
        if rec.type == "RestoreStarted":
            started[rid] = rec
        else:
            started.pop(rid, None)
    return list(started.values())


def settle_interrupted_restores(app: App) -> list[str]:
    """Record this host's restores whose process is gone as failed; what to tell the user."""
    host = socket.gethostname()
    notes = []
    for rec in open_restores(app):
        ev = rec.event()
        assert isinstance(ev, RestoreStarted)
        if ev.hostname != host or ev.pid is None or pid_alive(ev.pid):
            continue
        state, back = target_state(app, ev)
        elapsed = (app.clock() - parse_utc(rec.occurred_at)).total_seconds()
        app.catalog.append(
            RestoreFailed(
                restore_id=ev.restore_id,
                backup=ev.backup,
                source_file=ev.source_file,
                target=ev.target,
                safety_backup=ev.safety_backup,
                duration_seconds=round(max(elapsed, 0.0), 3),
                stage=STAGE,
                reason=f"restore process {ev.pid} on {host} ended without finishing "
                f"(killed or crashed); {state}",
            ),
            actor=app.actor,
        )
        notes.append(
            f"the restore of {ev.backup or ev.source_file} into {ev.target.get('name')} started "
            f"{rec.occurred_at[:19].replace('T', ' ')} UTC by process {ev.pid} was interrupted "
            f"and is now recorded as failed: {state}{back}"
        )
    return notes


def target_state(app: App, ev: RestoreStarted) -> tuple[str, str]:
    """What the interrupted restore left of its target, and how to go back (or "")."""
    db = ev.target.get("name")
    safety = _status(app, ev.safety_backup)
    if ev.safety_backup and safety != "completed":
        return f"{db} was not changed (its safety backup {ev.safety_backup} had not finished)", ""
    if ev.method == "partial":
        state = f"{db} is as it was before (a partial restore commits only with its last statement)"
    else:
        state = f"{db} is as it was, unless the restore had reached its swap"
        if ev.keep_as:
            state += f" (then {db} holds the backup and the old one is kept as {ev.keep_as})"
        if ev.scratch_db:
            state += (
                f"; if its scratch database {ev.scratch_db} is left: "
                f'DROP DATABASE "{ev.scratch_db}";'
            )
    if not ev.safety_backup:
        return state, ""
    return state, (
        f". To return to the state before the restore: dumpledger --backup-dir "
        f"{app.settings.backup_dir} restore {ev.safety_backup} --target-db {db} --yes"
    )


def _status(app: App, name: str | None) -> str | None:
    if not name:
        return None
    try:
        return str(get_backup(app.catalog.engine, name)["status"])
    except UnknownBackup:
        return None


def recent_interrupted(app: App, now: datetime) -> list[str]:
    """Interrupted restores of the last REPORT_DAYS, per target, when no restore into that
    target finished after them: `check`'s warning."""
    newest: dict[tuple[Any, ...], Recorded] = {}
    for rec in app.catalog.events(types=["RestoreCompleted", "RestoreFailed"]):
        t = rec.payload.get("target") or {}
        newest[(t.get("host"), t.get("port"), t.get("name"))] = rec
    out = []
    for rec in newest.values():
        p = rec.payload
        if p.get("stage") != STAGE or now - parse_utc(rec.occurred_at) > timedelta(REPORT_DAYS):
            continue
        db = (p.get("target") or {}).get("name")
        text = (
            f"the restore into {db} at {rec.occurred_at[:16].replace('T', ' ')} UTC was "
            f"interrupted: {p.get('reason')}"
        )
        if p.get("safety_backup") and _status(app, p["safety_backup"]) == "completed":
            text += f"; to go back: dumpledger restore {p['safety_backup']} --target-db {db} --yes"
        out.append(text)
    return out

"""Backups left `running` by a process nobody can ask any more.

On its own host a dead backup process is noticed by the next command (App.settle_abandoned).
A backup killed on a host that is gone, or whose name changed (a container), stays `running`:
nothing refreshes a lease, so a backup still running `health.stale_running_hours` after it
started (24 by default) counts as stale. `list` and `check` say so, and `delete --force NAME`
first records it as failed (abandoned), then deletes it. A backup whose process is alive on
this host is never settled, however old.

Only the standard library at the top: `list` imports this.
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.engine import Connection

    from usecases.context import App


def running_hours(row: dict[str, Any], now: datetime) -> float:
    started = datetime.fromisoformat(str(row["started_at"]).replace("Z", "+00:00"))
    return (now - started.astimezone(UTC)).total_seconds() / 3600


def is_stale(row: dict[str, Any], now: datetime, limit_hours: float) -> bool:
    """Running for longer than `limit_hours`, and not a live process of this host."""
    if row.get("status") != "running" or running_hours(row, now) < limit_hours:
        return False
    from usecases.reading import pid_alive

    return row.get("hostname") != socket.gethostname() or not pid_alive(row.get("pid"))


def describe(row: dict[str, Any], now: datetime) -> str:
    return (
        f"backup {row['name']} has been running for {running_hours(row, now):.0f} h (started "
        f"on host {row.get('hostname') or '?'}, pid {row.get('pid') or '?'})"
    )


def without_finishing(row: dict[str, Any], now: datetime) -> str:
    return f"{describe(row, now)} without finishing"


def stale_hint(app: App, row: dict[str, Any]) -> str:
    """Why `delete` (without --force) leaves a running backup alone, and what would do."""
    now, limit = app.clock(), app.settings.health.stale_running_hours
    if is_stale(row, now, limit):
        return (
            f"{describe(row, now)} without finishing: if its process is gone, "
            f"`dumpledger delete --force {row['name']}` records it as abandoned and deletes it"
        )
    return f"backup {row['name']} is still running; wait for it to finish"


def settle_stale(app: App, row: dict[str, Any]) -> str | None:
    """Record a stale running backup as failed (abandoned) so that it can be deleted; the
    problem (for BadInput) when it may not be settled yet."""
    from catalog.events import BackupFailed

    now, limit = app.clock(), app.settings.health.stale_running_hours
    if not is_stale(row, now, limit):
        alive_here = row.get("hostname") == socket.gethostname()
        return (
            f"{describe(row, now)} and is still running"
            + (" on this host" if alive_here else "")
            + f"; wait for it to finish: after {limit:g} h without finishing, "
            f"`dumpledger delete --force {row['name']}` records it as abandoned"
        )
    reason = (
        f"{describe(row, now)} without finishing; settled as abandoned by {app.actor} "
        f"(delete --force after health.stale_running_hours = {limit:g})"
    )
    event = BackupFailed(backup=row["name"], reason=reason, stage="abandoned", abandoned=True)
    if not app.catalog.append_all([event], actor=app.actor, precondition=_running(row["name"])):
        return f"backup {row['name']} finished while it was being settled; look again"
    return None


def _running(name: str) -> Callable[[Connection], bool]:
    """Still running, checked under the writers' lock."""
    from sqlalchemy import select

    from catalog.schema import backups

    def check(conn: Connection) -> bool:
        status = conn.execute(select(backups.c.status).where(backups.c.name == name)).scalar()
        return status == "running"

    return check

"""Where notifications hook in: automatic backups, verify, drill. A few lines per command.

Only automatic backups notify (as the old scheduler did); a person running `backup` sees the
result on the terminal.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from catalog.canonical import parse_utc
from catalog.errors import CatalogError
from catalog.queries import list_backups
from catalog.read import BackupFilter
from usecases.backup.names import SCHEDULED_TYPES
from usecases.config.sections import Notifications
from usecases.config.settings import Settings
from usecases.context import App
from usecases.errors import BackupFailedError, BadInput
from usecases.health import notify
from usecases.health.check import CheckResult, Status, overall, summary_line

if TYPE_CHECKING:
    from usecases.backup.run import BackupResult
    from usecases.backup.verify import VerifyOutcome
    from usecases.restore.drill import DrillOutcome


def is_automatic(backup_type: str | None) -> bool:
    return backup_type in (*SCHEDULED_TYPES, "test")


class BackupAlerts:
    def __init__(self, app: App, backup_type: str | None) -> None:
        self.app = app
        self.automatic = is_automatic(backup_type)
        self.backup_type = backup_type

    def completed(self, result: BackupResult) -> None:
        if not self.automatic:
            return
        stored = sum(int(a["stored_size"]) for a in result.artifacts)
        msg = notify.backup_completed(result.name, stored, result.duration_seconds)
        notify.notify(self.app, msg, log_path=result.log_path)

    def retention_failed(self, name: str, reason: str) -> None:
        if self.automatic:
            notify.notify(self.app, notify.retention_failed(name, reason))

    def failed(self, exc: Exception, since: datetime) -> None:
        if not self.automatic or isinstance(exc, BadInput):
            return
        try:
            row = self._failed_row(since)
        except CatalogError:  # the catalog that failed the backup cannot be read either
            row = None
        if row is not None:
            name, reason = str(row["name"]), str(row["failure_reason"] or exc)
        elif isinstance(exc, BackupFailedError) and exc.backup:  # started, failure unrecorded
            name, reason = exc.backup, str(exc)
        else:  # it failed before it was recorded (a bad setting, say)
            name, reason = f"auto_{self.backup_type} (not started)", str(exc)
        notify.notify(self.app, notify.backup_failed(name, reason))

    def _failed_row(self, since: datetime) -> dict[str, Any] | None:
        rows = list_backups(
            self.app.catalog.engine, BackupFilter(backup_type=self.backup_type, status="failed")
        )
        for r in rows:
            if parse_utc(r["started_at"]) >= since.replace(microsecond=0):
                return r
        return None


@contextmanager
def backup_alerts(app: App, backup_type: str | None) -> Iterator[BackupAlerts]:
    """Notify an automatic backup's failure (then re-raise); call `.completed(result)`."""
    alerts = BackupAlerts(app, backup_type)
    since = app.clock()
    try:
        yield alerts
    except Exception as exc:
        alerts.failed(exc, since)
        raise


def backup_not_started(settings: Settings, backup_type: str | None, exc: Exception) -> None:
    """A scheduled backup whose catalog cannot even be opened (a read-only or full backup
    directory, a damaged catalog): nothing can record it, so the notification is all there is."""
    if not is_automatic(backup_type) or isinstance(exc, BadInput):
        return
    prefs = settings.notifications
    if notify.wanted(prefs, "backup_failed"):
        msg = notify.backup_failed(f"auto_{backup_type} (not started)", str(exc))
        notify.dispatch(None, msg, notify.channels(prefs))


def after_verify(app: App, outcomes: Sequence[VerifyOutcome]) -> None:
    for o in outcomes:
        if not o.ok:
            problems = [o.problem] if o.problem else []
            problems += [f"{f['kind']}: {f['error']}" for f in o.failures()]
            notify.notify(app, notify.verify_failed(o.backup, problems))


def after_drill(app: App, outcome: DrillOutcome) -> None:
    if not outcome.ok:
        msg = notify.drill_failed(outcome.backup, outcome.reason or "failed", outcome.mismatches)
        notify.notify(app, msg)


def after_check(
    app: App | None, prefs: Notifications, checks: Sequence[CheckResult], repeat_hours: float
) -> None:
    """`check` worse than OK; also when the catalog cannot be opened (then nothing records it).

    A monitoring system runs `check` every few minutes: the same status with the same failing
    checks is notified again only after `repeat_hours` (the RPO); any change at once.
    """
    status = overall(checks)
    if status is Status.OK or not notify.wanted(prefs, "check"):
        return
    failing = ", ".join(c.name for c in checks if c.status is not Status.OK)
    detail = f"{status.name}: {failing}"
    if app is not None and _sent_since(app, detail, app.clock() - timedelta(hours=repeat_hours)):
        return
    msg = notify.check_result(summary_line(checks), False, detail)
    notify.dispatch(app, msg, notify.channels(prefs))


def _sent_since(app: App, detail: str, since: datetime) -> bool:
    try:
        sent = app.catalog.events(subject="check", types=["NotificationSent"])
    except CatalogError:  # a damaged catalog is what `check` reports: notify it
        return False
    delivered = [r for r in sent if r.payload.get("kind") == "check" and r.payload.get("ok")]
    if not delivered:
        return False
    last = delivered[-1]
    return last.payload.get("detail") == detail and parse_utc(last.occurred_at) >= since

"""Cleanup, delete, pin and blob collection: retention decided by catalog.retention, applied here.

Order of a cleanup: evaluate the policy over the backups the log describes; for each removal
append BackupDeleted (re-checked under the catalog's write lock: a backup pinned meanwhile is
kept), remove its files under backups/database/, re-point the latest_* links; then collect the
blobs no catalog sharing the store references (usecases.storage.collect), then old run logs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from catalog.events import BackupDeleted, BackupPinned, BackupUnpinned
from catalog.queries import deleted_among, get_backup, retention_rows
from catalog.retention import BackupView, Decision, Policy, evaluate
from usecases.backup.abandon import settle_stale, stale_hint
from usecases.backup.names import classify
from usecases.backup.run import refresh_latest
from usecases.backup.views import METADATA_SUFFIX, artifact_filename, view_owner
from usecases.context import App
from usecases.errors import BadInput
from usecases.storage.collect import CollectReport, collect_blobs
from usecases.storage.forecast import Forecast, forecast


@dataclass(slots=True, kw_only=True)
class CleanupReport:
    dry_run: bool
    policy: Policy
    now: datetime
    decisions: list[Decision]
    deleted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # pinned or gone between plan and apply
    collect: CollectReport = field(default_factory=CollectReport)
    forecast: Forecast = field(default_factory=Forecast)  # a dry run's plan
    logs_removed: int = 0
    # Files of deleted backups under backups/database/ that could not be removed ("path:
    # reason"); the next cleanup tries again.
    files_not_removed: list[str] = field(default_factory=list)

    @property
    def removals(self) -> list[Decision]:
        return [d for d in self.decisions if not d.keep]

    @property
    def would_free_bytes(self) -> int:
        return self.forecast.freed_bytes

    @property
    def freed_bytes(self) -> int:
        """What the run freed, or a dry run would free: exactly the same number."""
        return self.would_free_bytes if self.dry_run else self.collect.freed_bytes

    def to_json(self) -> dict[str, Any]:
        frees = self.forecast.per_backup
        return {
            "dry_run": self.dry_run,
            "now": self.now.isoformat(),
            "decisions": [
                {
                    "name": d.name,
                    "action": d.action,
                    "rule": d.rule,
                    "detail": d.detail,
                    **({"frees_bytes": frees[d.name]} if d.name in frees else {}),
                }
                for d in self.decisions
            ],
            "deleted": self.deleted,
            "skipped": self.skipped,
            "blobs_collected": [
                c.digest
                for c in (self.forecast.collected if self.dry_run else self.collect.collected)
            ],
            "freed_bytes": self.freed_bytes,
            "freed": self.freed(),
            "collection_postponed": self.collect.postponed,
            "logs_removed": self.logs_removed,
            "files_not_removed": self.files_not_removed,
        }

    def freed(self) -> dict[str, Any]:
        """The freed bytes by kind, and the packs deleted, repacked and written."""
        if self.dry_run:
            plan = self.forecast.packs
            artifacts = self.forecast.artifact_bytes
            deleted, repacked = plan.delete, plan.repack
            written = [p.size for p in plan.new_packs]
            kept = plan.sealed_kept
        else:
            done = self.collect.packs
            kept = self.collect.pack_plan.sealed_kept
            artifacts = self.collect.artifact_bytes
            deleted, repacked = done.deleted, done.repacked
            written = [p.size for p in done.written]
        return {
            "blobs_and_manifests_bytes": artifacts,
            "packs_deleted_bytes": sum(p.size for p in deleted),
            "repack_savings_bytes": sum(p.size for p in repacked) - sum(written),
            "total_bytes": self.freed_bytes,
            "packs_deleted": sorted(p.name for p in deleted),
            "packs_repacked": sorted(p.name for p in repacked),
            "packs_written": len(written),
            "sealed_packs_kept": kept,  # encrypted, worth repacking: no identity to read them
        }


def backup_views(app: App) -> list[BackupView]:
    return [
        BackupView(
            name=name,
            backup_class=classify(name),
            status=status,
            started_at=datetime.fromisoformat(started_at),
            verified=bool(verified) and last_verify_ok is not False,
            pinned=bool(pinned),
            pin_reason=pin_reason,
        )
        for name, status, started_at, verified, last_verify_ok, pinned, pin_reason in (
            retention_rows(app.catalog.engine)
        )
    ]


def policy_for(app: App, days: float | None) -> Policy:
    policy = app.settings.retention
    if days is not None:
        if days < 0:
            raise BadInput(f"cleanup DAYS must be >= 0, got {days:g}")
        policy = policy.with_auto_days(days)
    return policy


def cleanup(app: App, *, days: float | None = None, dry_run: bool = False) -> CleanupReport:
    now = app.clock()
    policy = policy_for(app, days)
    report = CleanupReport(
        dry_run=dry_run, policy=policy, now=now, decisions=evaluate(policy, backup_views(app), now)
    )
    if dry_run:
        report.forecast = forecast(app, [d.name for d in report.removals])
        return report
    report.files_not_removed = sweep_deleted_views(app)  # left by an earlier failure
    for d in report.removals:
        if _delete(
            app,
            d.name,
            rule=d.rule,
            reason=d.detail,
            force=False,
            quiet=True,
            problems=report.files_not_removed,
        ):
            report.deleted.append(d.name)
        else:
            report.skipped.append(d.name)
    if report.deleted:
        refresh_latest(app)
    report.collect = collect_blobs(app)
    report.logs_removed = prune_logs(app, now, _logs_days(policy))
    return report


def delete_backup(app: App, name: str, *, force: bool = False) -> CollectReport:
    """A person deletes one backup; its blobs go when nothing else references them."""
    problems: list[str] = []
    _delete(
        app,
        name,
        rule="person",
        reason=f"deleted by {app.actor}",
        force=force,
        quiet=False,
        problems=problems,
    )
    refresh_latest(app)
    report = collect_blobs(app)
    report.files_not_removed = problems
    return report


def _delete(
    app: App,
    name: str,
    *,
    rule: str,
    reason: str,
    force: bool,
    quiet: bool,
    problems: list[str],
) -> bool:
    """BackupDeleted, then the backup's files under backups/database/ (a file that cannot be
    removed is added to `problems`: the deletion stands, and the next cleanup retries)."""
    backup = get_backup(app.catalog.engine, name)
    problem = None
    if backup["status"] == "deleted":
        problem = f"backup {name} is already deleted"
    elif backup["status"] == "running":
        problem = settle_stale(app, backup) if force else stale_hint(app, backup)
        backup = get_backup(app.catalog.engine, name) if problem is None else backup
    elif backup["pinned"] and not force:
        problem = (
            f"backup {name} is pinned ({backup['pin_reason'] or 'no reason given'}); "
            f"unpin it first (dumpledger unpin {name}) or pass --force"
        )
    if problem:
        if quiet:
            return False
        raise BadInput(problem)
    done = app.catalog.delete_backup(
        BackupDeleted(backup=name, reason=reason, rule=rule), actor=app.actor, allow_pinned=force
    )
    if done is None:  # pinned, deleted or started again by someone else since we looked
        if quiet:
            return False
        raise BadInput(f"backup {name} changed while deleting it (pinned or deleted meanwhile)")
    database_dir = app.settings.database_dir
    files = [artifact_filename(name, a["kind"], a["codec"]) for a in backup["artifacts"]]
    problems += _unlink_all([database_dir / f for f in (*files, f"{name}{METADATA_SUFFIX}")])
    return True


def sweep_deleted_views(app: App) -> list[str]:
    """Remove the files under backups/database/ of backups the catalog records as deleted
    (a deletion whose file removal failed leaves them); what still cannot go, as problems."""
    database_dir = app.settings.database_dir
    if not database_dir.is_dir():
        return []
    owned: dict[str, list[Path]] = {}
    for path in database_dir.iterdir():
        owner = view_owner(path.name)
        if owner is not None:
            owned.setdefault(owner, []).append(path)
    gone = deleted_among(app.catalog.engine, owned)
    return _unlink_all([p for name in sorted(gone) for p in sorted(owned[name])])


def _unlink_all(paths: list[Path]) -> list[str]:
    problems = []
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            problems.append(f"{path}: {exc.strerror or exc}")
    return problems


def _logs_days(policy: Policy) -> float:
    auto = policy.for_class("auto")
    return auto.keep_within_days if auto.keep_within_days is not None else 60.0


def prune_logs(app: App, now: datetime, days: float) -> int:
    """Run logs older than the automatic backups' age limit go with them."""
    logs = app.settings.logs_dir
    if not logs.is_dir():
        return 0
    cutoff = (now - timedelta(days=days)).timestamp()
    removed = 0
    for path in logs.glob("*.log"):
        if path.is_file() and path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def pin(app: App, name: str, reason: str) -> None:
    backup = get_backup(app.catalog.engine, name)
    if backup["status"] == "deleted":
        raise BadInput(f"backup {name} is deleted; there is nothing left to pin")
    if not reason.strip():
        raise BadInput("say why with --reason: the pin is shown to whoever wants to delete it")
    app.catalog.append(BackupPinned(backup=name, reason=reason.strip()), actor=app.actor)


def unpin(app: App, name: str) -> None:
    backup = get_backup(app.catalog.engine, name)
    if not backup["pinned"]:
        raise BadInput(f"backup {name} is not pinned")
    app.catalog.append(BackupUnpinned(backup=name), actor=app.actor)


@dataclass(frozen=True, slots=True, kw_only=True)
class Explanation:
    name: str
    status: str
    action: str  # keep | remove | deleted
    rule: str
    detail: str
    policy: str
    frees_bytes: int = 0  # what removing it alone frees: the stored bytes only it holds


def explain(app: App, name: str, *, days: float | None = None) -> Explanation:
    backup = get_backup(app.catalog.engine, name)
    policy = policy_for(app, days)
    cls = classify(name)
    described = f"{cls} backups: {policy.for_class(cls).describe()}"
    if backup["status"] == "deleted":
        return Explanation(
            name=name,
            status="deleted",
            action="deleted",
            rule=backup["deleted_rule"] or "person",
            detail=backup["failure_reason"] or "",
            policy=described,
        )
    if backup["status"] == "failed":
        return Explanation(
            name=name,
            status="failed",
            action="keep",
            rule="failed",
            detail="a failed backup holds no data; it stays in the log as history",
            policy=described,
        )
    decision = next(d for d in evaluate(policy, backup_views(app), app.clock()) if d.name == name)
    return Explanation(
        name=name,
        status=backup["status"],
        action=decision.action,
        rule=decision.rule,
        detail=decision.detail,
        policy=described,
        frees_bytes=forecast(app, [], per_backup=[name]).per_backup[name],
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Simulation:
    decisions: list[Decision]
    forecast: Forecast  # what collecting after those removals frees, and per backup


def simulate(app: App, no_new_backups_days: float) -> Simulation:
    """What retention decides if no backup is taken for that many days, and the bytes that
    frees (the store as it is now)."""
    if no_new_backups_days < 0:
        raise BadInput("--no-new-backups must be >= 0 days")
    later = app.clock() + timedelta(days=no_new_backups_days)
    decisions = evaluate(app.settings.retention, backup_views(app), later)
    return Simulation(
        decisions=decisions, forecast=forecast(app, [d.name for d in decisions if not d.keep])
    )

"""The schedule use cases: pick a backend, install, uninstall, status, and a test run through
the very command line a slot runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from catalog.events import ScheduleInstalled, ScheduleRemoved
from catalog.queries import list_backups
from catalog.read import BackupFilter
from usecases.context import App
from usecases.errors import BadInput, UseCaseError
from usecases.schedule.cron import CronBackend
from usecases.schedule.jobs import (
    SCHEDULER_ENV,
    Backend,
    Installed,
    Job,
    Project,
    next_run,
    slot_argv,
)
from usecases.schedule.launchd import LaunchdBackend
from usecases.schedule.systemd import SystemdBackend, unit_dir

BACKENDS = ("auto", "systemd", "cron", "launchd")


@dataclass(frozen=True, slots=True, kw_only=True)
class Host:
    """Where the schedulers live: platform, environment (HOME, XDG_CONFIG_HOME), and whose
    crontab (`crontab -u USER` when root manages another user's)."""

    platform: str = sys.platform
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    crontab_user: str | None = None

    @property
    def home(self) -> Path:
        return Path(self.environ.get("HOME") or Path.home())


def make_backend(name: str, host: Host, project: Project) -> Backend:
    """The backend `name` holding `project`'s units (and only those)."""
    if name == "systemd":
        return SystemdBackend(unit_dir(host.environ), project)
    if name == "cron":
        return CronBackend(project, host.crontab_user)
    if name == "launchd":
        return LaunchdBackend.for_platform(host.home, project)
    raise BadInput(f"unknown scheduler backend {name!r}: choose one of {', '.join(BACKENDS)}")


def choose_backend(name: str, host: Host, project: Project) -> Backend:
    """auto: launchd on macOS; systemd when a user manager is reachable; else cron."""
    if name != "auto":
        if name == "launchd" and host.platform != "darwin":
            raise BadInput("launchd runs on macOS only; use --backend systemd or cron here")
        return make_backend(name, host, project)
    if host.platform == "darwin":
        return make_backend("launchd", host, project)
    if shutil.which("systemctl"):
        systemd = SystemdBackend(unit_dir(host.environ), project)
        if systemd.manager_reachable():
            return systemd
    if shutil.which("crontab"):
        return make_backend("cron", host, project)
    raise UseCaseError(
        "no scheduler found: no systemd user manager is reachable and there is no crontab; "
        "install cron (Debian: apt-get install cron) or log in to a systemd session"
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class InstallReport:
    backend: str
    result: Installed
    event_appended: bool


def install(app: App, backend: Backend, jobs: Sequence[Job]) -> InstallReport:
    """Idempotent: the same slots give the same files or crontab. ScheduleInstalled is appended
    when something changed, so the log records each real change once."""
    result = backend.install(jobs)
    if result.changed:
        app.catalog.append(
            ScheduleInstalled(
                backend=backend.name,
                slots=[{"backup_type": j.backup_type, "time": j.slot.time} for j in jobs],
                units=result.units,
                project=backend.project.id,
                crontab_user=backend.user if isinstance(backend, CronBackend) else None,
            ),
            actor=app.actor,
        )
    return InstallReport(backend=backend.name, result=result, event_appended=result.changed)


def installed_backends(host: Host, project: Project) -> list[Backend]:
    """Every backend that holds units of this project here (a crontab only when `crontab`
    exists)."""
    candidates = [
        make_backend("systemd", host, project),
        LaunchdBackend.for_platform(host.home, project),
    ]
    if shutil.which("crontab"):
        candidates.append(make_backend("cron", host, project))
    return [b for b in candidates if b.units()]


def uninstall(app: App, backends: Sequence[Backend]) -> dict[str, list[str]]:
    """Remove the project's units from each backend; ScheduleRemoved for each that had some."""
    removed: dict[str, list[str]] = {}
    for backend in backends:
        units = backend.uninstall()
        if units:
            app.catalog.append(
                ScheduleRemoved(backend=backend.name, units=units, project=backend.project.id),
                actor=app.actor,
            )
            removed[backend.name] = units
    return removed


def last_installed_backend(app: App, project: Project) -> str | None:
    """The backend of `project`'s newest ScheduleInstalled not followed by its ScheduleRemoved.

    Events of other projects (a PostgreSQL catalog shared by several backup directories) do
    not count; events written before schedules had projects count for every project."""
    live: list[str] = []
    for rec in app.catalog.events(types=["ScheduleInstalled", "ScheduleRemoved"]):
        if rec.payload.get("project") not in (None, project.id):
            continue
        name = str(rec.payload["backend"])
        if name in live:
            live.remove(name)
        if rec.type == "ScheduleInstalled":
            live.append(name)
    return live[-1] if live else None


def status(app: App, backend: Backend, jobs: Sequence[Job], now_local: datetime) -> dict[str, Any]:
    active, detail = backend.is_active()
    rows = list_backups(app.catalog.engine)
    failed = list_backups(app.catalog.engine, BackupFilter(status="failed"))
    last_failure = None
    if failed:
        f = failed[0]
        last_failure = {k: f[k] for k in ("name", "started_at", "failure_reason", "actor")}
    return {
        "backend": backend.name,
        "project": {"id": backend.project.id, "backup_dir": str(backend.project.backup_dir)},
        "installed": backend.units(),
        "active": active,
        "detail": detail,
        "slots": [
            {
                "backup_type": j.backup_type,
                "time": j.slot.time,
                "next_run": next_run(j.slot, now_local).isoformat(timespec="minutes"),
            }
            for j in sorted(jobs, key=lambda j: next_run(j.slot, now_local))
        ],
        "recent_backups": [
            {k: r[k] for k in ("name", "backup_type", "status", "started_at", "actor")}
            for r in rows[:5]
        ],
        "last_failure": last_failure,
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class SchedulerTestRun:
    argv: list[str]
    exit_code: int
    output: str
    backup: dict[str, Any] | None
    log_file: Path | None


def run_test_backup(
    app: App,
    *,
    program: Sequence[str],
    workdir: Path,
    environ: Mapping[str, str],
) -> SchedulerTestRun:
    """One backup of type `test` now, through the exact command line and environment a slot
    runs with (this user's environment, DUMPLEDGER_VIA=scheduler, the project directory)."""
    argv = list(slot_argv(program, app.settings.backup_dir, "test"))
    before = {r["name"] for r in list_backups(app.catalog.engine, BackupFilter(backup_type="test"))}
    done = subprocess.run(
        argv,
        cwd=workdir,
        env={**environ, **SCHEDULER_ENV},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    flt = BackupFilter(backup_type="test", include_deleted=True)
    new = [r for r in list_backups(app.catalog.engine, flt) if r["name"] not in before]
    backup = new[0] if new else None
    log = None
    if backup and backup["metadata"].get("log_file"):
        log = app.settings.backup_dir / backup["metadata"]["log_file"]
    return SchedulerTestRun(
        argv=argv, exit_code=done.returncode, output=done.stdout, backup=backup, log_file=log
    )

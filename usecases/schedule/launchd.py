"""launchd (macOS): one ~/Library/LaunchAgents/com.dumpledger.<type>.plist per slot with
`StartCalendarInterval`; launchd runs a job missed during sleep when the Mac wakes.

`launchctl` is called only on macOS: it is the one named boundary; elsewhere the plists are
still rendered and written (that is what the tests parse).
"""

from __future__ import annotations

import os
import plistlib
import sys
from collections.abc import Sequence
from pathlib import Path

from usecases.errors import UseCaseError
from usecases.files import atomic_write, private_dir
from usecases.schedule.jobs import SCHEDULER_ENV, Installed, Job, Runner, run_command, touch_private

LABEL = "com.dumpledger."


def agents_dir(home: Path) -> Path:
    return home / "Library" / "LaunchAgents"


def log_files(job: Job) -> tuple[Path, Path]:
    """backups/logs/launchd_<type>.log and launchd_<type>_error.log, as the old scripts had."""
    return (
        job.logs_dir / f"launchd_{job.backup_type}.log",
        job.logs_dir / f"launchd_{job.backup_type}_error.log",
    )


def render_plist(job: Job) -> bytes:
    out, err = log_files(job)
    doc = {
        "Label": f"{LABEL}{job.backup_type}",
        "ProgramArguments": list(job.argv),
        "WorkingDirectory": str(job.workdir),
        "EnvironmentVariables": dict(SCHEDULER_ENV),
        "StartCalendarInterval": {"Hour": job.slot.hour, "Minute": job.slot.minute},
        "StandardOutPath": str(out),
        "StandardErrorPath": str(err),
        "RunAtLoad": False,
    }
    return plistlib.dumps(doc, sort_keys=True)


class Launchctl:
    """`launchctl` for the current user's GUI domain (macOS only)."""

    def __init__(self, run: Runner = run_command) -> None:
        self.run = run
        self.domain = f"gui/{os.getuid()}"

    def load(self, plist: Path) -> None:
        self.run(["launchctl", "bootout", self.domain, str(plist)], None)  # if loaded: reload
        done = self.run(["launchctl", "bootstrap", self.domain, str(plist)], None)
        if done.returncode != 0:
            raise UseCaseError(f"launchctl bootstrap {plist} failed: {done.stderr.strip()[:300]}")

    def unload(self, plist: Path) -> None:
        self.run(["launchctl", "bootout", self.domain, str(plist)], None)

    def loaded(self, label: str) -> bool:
        return self.run(["launchctl", "print", f"{self.domain}/{label}"], None).returncode == 0


class LaunchdBackend:
    name = "launchd"

    def __init__(self, directory: Path, launchctl: Launchctl | None = None) -> None:
        self.directory = directory
        self.launchctl = launchctl

    @classmethod
    def for_platform(cls, home: Path) -> LaunchdBackend:
        return cls(agents_dir(home), Launchctl() if sys.platform == "darwin" else None)

    def render(self, jobs: Sequence[Job]) -> dict[str, str]:
        return {str(self._path(j)): render_plist(j).decode() for j in jobs}

    def _path(self, job: Job) -> Path:
        return self.directory / f"{LABEL}{job.backup_type}.plist"

    def units(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(str(p) for p in self.directory.glob(f"{LABEL}*.plist"))

    def install(self, jobs: Sequence[Job]) -> Installed:
        wanted = {self._path(j): render_plist(j) for j in jobs}
        stale = [Path(u) for u in self.units() if Path(u) not in wanted]
        changed = bool(stale) or any(_differs(p, data) for p, data in wanted.items())
        for plist in stale:
            if self.launchctl:
                self.launchctl.unload(plist)
            plist.unlink(missing_ok=True)
        private_dir(self.directory)
        for job in jobs:
            for log in log_files(job):
                touch_private(log)
        for plist, data in wanted.items():
            if _differs(plist, data):
                atomic_write(plist, data)
                if self.launchctl:
                    self.launchctl.load(plist)
        units = sorted(str(p) for p in wanted)
        if self.launchctl is None:
            problem = "launchd exists on macOS only: the plists were written but nothing loads them"
            return Installed(units=units, changed=changed, problem=problem)
        return Installed(units=units, changed=changed)

    def uninstall(self) -> list[str]:
        present = self.units()
        for unit in present:
            if self.launchctl:
                self.launchctl.unload(Path(unit))
            Path(unit).unlink(missing_ok=True)
        return present

    def is_active(self) -> tuple[bool, str]:
        present = self.units()
        if not present:
            return False, "no dumpledger agents installed"
        if self.launchctl is None:
            return False, "launchd exists on macOS only"
        labels = [Path(u).stem for u in present]
        missing = [lb for lb in labels if not self.launchctl.loaded(lb)]
        if missing:
            return False, f"not loaded: {', '.join(missing)}"
        return True, f"{len(labels)} agent(s) loaded"


def _differs(path: Path, data: bytes) -> bool:
    try:
        return path.read_bytes() != data
    except FileNotFoundError:
        return True

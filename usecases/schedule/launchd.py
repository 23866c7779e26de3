"""launchd (macOS): one ~/Library/LaunchAgents/com.dumpledger.<id>.<type>.plist per slot
(<id>: the project's, see `jobs.project_id`) with `StartCalendarInterval`; launchd runs a job
missed during sleep when the Mac wakes. A plist of the previous version,
`com.dumpledger.<type>.plist` without an id, is this project's when its `--backup-dir` is this
project's directory.

`launchctl` is called only on macOS: it is the one named boundary; elsewhere the plists are
still rendered and written (that is what the tests parse).
"""

from __future__ import annotations

import os
import plistlib
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from xml.parsers.expat import ExpatError

from usecases.errors import UseCaseError
from usecases.files import atomic_write, private_dir
from usecases.schedule.jobs import (
    SCHEDULER_ENV,
    Installed,
    Job,
    Project,
    Runner,
    check_project,
    run_command,
    touch_private,
)

LABEL = "com.dumpledger."
AGENT = re.compile(r"^com\.dumpledger\.(?:(?P<id>[0-9a-f]{8})\.)?[a-z][a-z0-9-]*\.plist$")


def agents_dir(home: Path) -> Path:
    return home / "Library" / "LaunchAgents"


def log_files(job: Job) -> tuple[Path, Path]:
    """backups/logs/launchd_<type>.log and launchd_<type>_error.log, as the old scripts had."""
    return (
        job.logs_dir / f"launchd_{job.backup_type}.log",
        job.logs_dir / f"launchd_{job.backup_type}_error.log",
    )


def label(job: Job) -> str:
    return f"{LABEL}{job.project.id}.{job.backup_type}"


def render_plist(job: Job) -> bytes:
    out, err = log_files(job)
    doc = {
        "Label": label(job),
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

    def __init__(
        self, directory: Path, project: Project, launchctl: Launchctl | None = None
    ) -> None:
        self.directory = directory
        self.project = project
        self.launchctl = launchctl

    @classmethod
    def for_platform(cls, home: Path, project: Project) -> LaunchdBackend:
        launchctl = Launchctl() if sys.platform == "darwin" else None
        return cls(agents_dir(home), project, launchctl)

    def render(self, jobs: Sequence[Job]) -> dict[str, str]:
        return {str(self._path(j)): render_plist(j).decode() for j in jobs}

    def _path(self, job: Job) -> Path:
        return self.directory / f"{label(job)}.plist"

    def units(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(str(p) for p in self.directory.iterdir() if self._owns(p))

    def _owns(self, plist: Path) -> bool:
        """This project's agent: its id in the name, or, named without an id (the previous
        version), its ProgramArguments hold this project's `--backup-dir`."""
        found = AGENT.match(plist.name)
        if found is None:
            return False
        if found["id"] is not None:
            return found["id"] == self.project.id
        try:
            with plist.open("rb") as fh:
                doc = plistlib.load(fh)
        except (OSError, ValueError, ExpatError):  # unreadable: not known to be ours
            return False
        argv = doc.get("ProgramArguments") if isinstance(doc, dict) else None
        words = [str(a) for a in argv] if isinstance(argv, list) else []
        return self.project.owns_legacy(words)

    def install(self, jobs: Sequence[Job]) -> Installed:
        check_project(self.project, jobs)
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
            return False, f"no dumpledger agents of project {self.project.id} installed"
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

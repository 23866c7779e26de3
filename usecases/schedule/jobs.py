"""What one scheduled slot runs, when it runs next, and the port every scheduler backend fills.

Nothing here starts a process: the backends (systemd, cron, launchd) turn
`Job`s into their own text and install it; ``usecases.schedule.service`` picks the backend.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Protocol

from usecases.backup.names import SCHEDULED_TYPES
from usecases.config.sections import Slot
from usecases.errors import BadInput, UseCaseError
from usecases.files import private_dir

# The environment a slot runs with: the actor label then says "via scheduler". Nothing secret
# ever goes here; the password comes from .env in the working directory or the environment.
SCHEDULER_ENV = {"DUMPLEDGER_VIA": "scheduler"}


def project_id(backup_dir: Path) -> str:
    """A short stable id of the project a backup directory is: the first 8 hex digits of the
    SHA-256 of the resolved directory. Every unit name and crontab marker carries it, so two
    projects of one user each have their own schedule."""
    return hashlib.sha256(str(backup_dir.resolve()).encode()).hexdigest()[:8]


@dataclass(frozen=True, slots=True, kw_only=True)
class Project:
    """Whose schedule a backend installs, lists and removes: one backup directory."""

    backup_dir: Path
    id: str

    @classmethod
    def of(cls, backup_dir: Path) -> Project:
        return cls(backup_dir=backup_dir, id=project_id(backup_dir))

    def owns_legacy(self, argv: Sequence[str]) -> bool:
        """Whether a unit written before units carried an id (its command `argv`) is this
        project's: the absolute directory after its `--backup-dir` is this backup directory."""
        words = list(argv)
        at = [i for i, w in enumerate(words[:-1]) if w == "--backup-dir"]
        if not at or not Path(words[at[0] + 1]).is_absolute():
            return False
        return project_id(Path(words[at[0] + 1])) == self.id


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """One slot as a scheduler sees it: argv, working directory, environment, log file, and
    the project it belongs to."""

    slot: Slot
    project: Project
    argv: tuple[str, ...]
    workdir: Path
    logs_dir: Path

    @property
    def backup_type(self) -> str:
        return self.slot.backup_type

    def log_file(self, backend: str) -> Path:
        return self.logs_dir / f"{backend}_{self.backup_type}.log"


def program_command(argv0: str, executable: str) -> tuple[str, ...]:
    """The absolute command that starts this same dumpledger: the `dumpledger` script when that
    is what runs, else this interpreter with `-m cli`. Symlinks are kept (a venv's python is
    a symlink whose target knows nothing of the venv)."""
    script = Path(argv0)
    if script.name == "dumpledger" and script.exists():
        return (str(script.absolute()),)
    return (str(Path(executable).absolute()), "-m", "cli")


def project_dir(cwd: Path, backup_dir: Path) -> Path:
    """Where a slot runs: the directory holding .env (settings and the password come from
    there), else the parent of backups/."""
    return cwd if (cwd / ".env").is_file() else backup_dir.parent


def slot_argv(program: Sequence[str], backup_dir: Path, backup_type: str) -> tuple[str, ...]:
    return (*program, "--backup-dir", str(backup_dir), "backup", "--type", backup_type)


def jobs_for(
    slots: Sequence[Slot], *, program: Sequence[str], backup_dir: Path, workdir: Path
) -> list[Job]:
    """One job per slot; refuses slot names `backup --type` would refuse when it fires."""
    for slot in slots:
        if slot.backup_type not in SCHEDULED_TYPES:
            raise BadInput(
                f"schedule slot {slot.backup_type!r} is not a backup type; name the slots in "
                f"backup-config.json one of {', '.join(SCHEDULED_TYPES)}"
            )
    _check_writable_paths(
        ("the backup directory", str(backup_dir)),
        ("the working directory", str(workdir)),
        ("the dumpledger program", " ".join(program)),
    )
    project = Project.of(backup_dir)
    return [
        Job(
            slot=slot,
            project=project,
            argv=slot_argv(program, backup_dir, slot.backup_type),
            workdir=workdir,
            logs_dir=backup_dir / "logs",
        )
        for slot in slots
    ]


def _check_writable_paths(*named: tuple[str, str]) -> None:
    """Unit files, crontab lines and plists are UTF-8 lines: a path with a line break or
    another control character, or with bytes that are not UTF-8, cannot be written into one
    (it would break the unit, or run another command). Refuse before anything is installed."""
    for what, text in named:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise BadInput(
                f"{what} {text!r} is not valid UTF-8, which a scheduler's unit cannot hold; "
                "rename it (or use --backup-dir with a UTF-8 path) and install again"
            ) from None
        bad = sorted({c for c in text if ord(c) < 0x20 or ord(c) == 0x7F})
        if bad:
            raise BadInput(
                f"{what} {text!r} contains a control character ({', '.join(map(repr, bad))}), "
                "which a scheduler's unit cannot hold; rename it and install again"
            )


def next_run(slot: Slot, now: datetime) -> datetime:
    """The next time the slot fires after `now`, in `now`'s wall-clock time (and time zone)."""
    at = time(slot.hour, slot.minute)
    candidate = datetime.combine(now.date(), at, tzinfo=now.tzinfo)
    if candidate <= now:
        candidate = datetime.combine(now.date() + timedelta(days=1), at, tzinfo=now.tzinfo)
    return candidate


Runner = Callable[[Sequence[str], str | None], "subprocess.CompletedProcess[str]"]


def run_command(argv: Sequence[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The real process boundary of the backends: never raises for a non-zero exit."""
    return subprocess.run(
        list(argv), input=stdin, capture_output=True, text=True, check=False, timeout=60
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Installed:
    """What an install did: the units now in place and whether anything changed. `problem`: a
    step of the install could not be done (exit 1), with what to do; `warning`: installed, but
    something outside dumpledger keeps it from running (say so, exit 0)."""

    units: list[str]
    changed: bool
    problem: str | None = None
    warning: str | None = None


class Backend(Protocol):
    """A scheduler holding one project's units: renders that project's jobs to its own text,
    installs and removes them idempotently, and never touches another project's units."""

    name: str
    project: Project

    def render(self, jobs: Sequence[Job]) -> dict[str, str]:
        """Unit name (file path or crontab marker) -> the text the scheduler reads."""
        ...

    def install(self, jobs: Sequence[Job]) -> Installed: ...

    def uninstall(self) -> list[str]:
        """Remove this project's units (those of the previous version, without an id, too);
        return what was removed."""
        ...

    def units(self) -> list[str]:
        """This project's units currently installed (an id-less one of the previous version
        counts when its command names this backup directory)."""
        ...

    def is_active(self) -> tuple[bool, str]:
        """Whether the scheduler will run the installed units, and a one-line explanation."""
        ...


def check_project(project: Project, jobs: Sequence[Job]) -> None:
    """A backend installs its own project's jobs only (else stale units would be misjudged)."""
    strays = {j.project.id for j in jobs if j.project.id != project.id}
    if strays:
        raise ValueError(f"jobs of project(s) {sorted(strays)} given to project {project.id}")


def touch_private(path: Path) -> None:
    """Create a scheduler's log file 0600 before the scheduler opens it with its own umask."""
    private_dir(path.parent)
    try:  # never through a link planted there: the scheduler would append to its target
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600))
    except OSError as exc:
        raise UseCaseError(
            f"cannot create the scheduler's log {path}: {exc.strerror or exc}"
            + ("; it is a symbolic link: remove it" if path.is_symlink() else "")
        ) from None


def differs(path: Path, text: str) -> bool:
    try:
        return path.read_text(encoding="utf-8") != text
    except FileNotFoundError:
        return True

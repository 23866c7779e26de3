"""cron: one crontab line per slot, each ending with its marker `# dumpledger:<id>:<type>`
(<id>: the project's, see `jobs.project_id`).

Only this project's marked lines are added, replaced (in place) or removed; every other line
of the user's crontab, another project's included, is kept byte for byte and in its place (a
missing final newline is added, as `crontab` refuses a file without one). A line of the
previous version, marked `# dumpledger:<type>` without an id, is this project's when its
`--backup-dir` is this project's directory: install and uninstall take it over, other projects
leave it alone.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from pathlib import Path

from usecases.errors import UseCaseError
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

MARKER = "# dumpledger:"
MARKED = re.compile(
    r"\s# dumpledger:(?P<mark>(?:(?P<id>[0-9a-f]{8}):)?(?P<type>[a-z][a-z0-9-]*))\r?\n?$"
)


def _cron_word(arg: str) -> str:
    # cron turns an unescaped % into a newline, even inside quotes
    return shlex.quote(arg).replace("%", "\\%")


def render_line(job: Job) -> str:
    env = " ".join(f"{k}={v}" for k, v in SCHEDULER_ENV.items())
    log = _cron_word(str(job.log_file("cron")))
    command = " ".join(_cron_word(a) for a in job.argv)
    return (
        f"{job.slot.minute} {job.slot.hour} * * * cd {_cron_word(str(job.workdir))} && "
        f"{env} {command} >> {log} 2>&1 {MARKER}{mark(job)}\n"
    )


def mark(job: Job) -> str:
    return f"{job.project.id}:{job.backup_type}"


def line_words(line: str) -> list[str]:
    """A crontab line's words as the shell splits them (none when it cannot)."""
    try:
        return shlex.split(line.replace("\\%", "%"), comments=True)
    except ValueError:
        return []


def project_mark(line: str, project: Project) -> str | None:
    """The marker of a line of `project`'s (`<id>:<type>`, or `<type>` on a line of the
    previous version whose `--backup-dir` is the project's); None for any other line."""
    found = MARKED.search(line)
    if found is None:
        return None
    if found["id"] is not None:
        return found["mark"] if found["id"] == project.id else None
    return found["mark"] if project.owns_legacy(line_words(line)) else None


def without_project(text: str, project: Project) -> str:
    """The crontab with the project's lines taken out; everything else exactly as it was."""
    lines = text.splitlines(keepends=True)
    return "".join(ln for ln in lines if project_mark(ln, project) is None)


def merged(text: str, project: Project, lines: Sequence[str]) -> str:
    """Every other line unchanged; the project's new lines where its first old one was (at
    the end if it had none), so installing again moves no line, another project's included."""
    kept: list[str] = []
    at = None
    for line in text.splitlines(keepends=True):
        if project_mark(line, project) is None:
            kept.append(line)
        elif at is None:
            at = len(kept)
    if kept and not kept[-1].endswith("\n"):
        kept[-1] += "\n"
    at = len(kept) if at is None else at
    return "".join([*kept[:at], *lines, *kept[at:]])


def project_marks(text: str, project: Project) -> list[str]:
    found = (project_mark(ln, project) for ln in text.splitlines(keepends=True))
    return [m for m in found if m is not None]


class CronBackend:
    name = "cron"

    def __init__(
        self, project: Project, user: str | None = None, run: Runner = run_command
    ) -> None:
        self.project = project
        self.user = user  # root can manage another user's crontab (`crontab -u USER`)
        self.run = run

    def _crontab(self, *args: str) -> list[str]:
        return ["crontab", *(("-u", self.user) if self.user else ()), *args]

    def _label(self, marker: str) -> str:
        owner = f" -u {self.user}" if self.user else ""
        return f"crontab{owner}: {MARKER}{marker}"

    def read(self) -> str:
        done = self.run(self._crontab("-l"), None)
        if done.returncode != 0:
            if "no crontab for" in done.stderr:
                return ""
            raise UseCaseError(f"crontab -l failed: {done.stderr.strip()[:300]}")
        return done.stdout

    def write(self, text: str) -> None:
        done = self.run(self._crontab("-"), text)
        if done.returncode != 0:
            raise UseCaseError(f"crontab could not be written: {done.stderr.strip()[:300]}")

    def render(self, jobs: Sequence[Job]) -> dict[str, str]:
        return {self._label(mark(j)): render_line(j) for j in jobs}

    def units(self) -> list[str]:
        return [self._label(m) for m in project_marks(self.read(), self.project)]

    def install(self, jobs: Sequence[Job]) -> Installed:
        check_project(self.project, jobs)
        current = self.read()
        wanted = self.render(jobs)
        new = merged(current, self.project, list(wanted.values()))
        changed = new != current
        for job in jobs:
            touch_private(job.log_file(self.name))
        if changed:
            self.write(new)
        active, why = self.is_active()
        return Installed(units=list(wanted), changed=changed, warning=None if active else why)

    def uninstall(self) -> list[str]:
        current = self.read()
        removed = [self._label(m) for m in project_marks(current, self.project)]
        if removed:
            self.write(without_project(current, self.project))
        return removed

    def is_active(self) -> tuple[bool, str]:
        if not self.units():
            return False, f"no dumpledger lines of project {self.project.id} in the crontab"
        if not cron_daemon_running():
            return False, "the lines are in the crontab, but no cron daemon is running"
        return True, "the cron daemon runs the crontab lines"


def cron_daemon_running() -> bool:
    """Whether a cron daemon (cron, crond, cronie) runs on this Linux host."""
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() in ("cron", "crond", "cronie", "busybox-crond"):
                return True
        except OSError:
            continue
    return False

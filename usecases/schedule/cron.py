"""cron: one crontab line per slot, each ending with its marker `# dumpledger:<type>`.

Only marked lines are added or removed; every other line of the user's crontab is kept byte
for byte (a missing final newline is added, as `crontab` refuses a file without one).
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
    Runner,
    run_command,
    touch_private,
)

MARKER = "# dumpledger:"
MARKED = re.compile(r"\s# dumpledger:([a-z][a-z0-9-]*)\r?\n?$")


def _cron_word(arg: str) -> str:
    # cron turns an unescaped % into a newline, even inside quotes
    return shlex.quote(arg).replace("%", "\\%")


def render_line(job: Job) -> str:
    env = " ".join(f"{k}={v}" for k, v in SCHEDULER_ENV.items())
    log = _cron_word(str(job.log_file("cron")))
    command = " ".join(_cron_word(a) for a in job.argv)
    return (
        f"{job.slot.minute} {job.slot.hour} * * * cd {_cron_word(str(job.workdir))} && "
        f"{env} {command} >> {log} 2>&1 {MARKER}{job.backup_type}\n"
    )


def is_marked(line: str) -> bool:
    return MARKED.search(line) is not None


def without_marked(text: str) -> str:
    """The crontab with dumpledger's lines taken out; everything else exactly as it was."""
    return "".join(ln for ln in text.splitlines(keepends=True) if not is_marked(ln))


def merged(text: str, lines: Sequence[str]) -> str:
    """The user's lines unchanged, then dumpledger's lines at the end."""
    kept = without_marked(text)
    if kept and not kept.endswith("\n"):
        kept += "\n"
    return kept + "".join(lines)


def marked_types(text: str) -> list[str]:
    found = (MARKED.search(ln) for ln in text.splitlines(keepends=True))
    return [m.group(1) for m in found if m]


class CronBackend:
    name = "cron"

    def __init__(self, user: str | None = None, run: Runner = run_command) -> None:
        self.user = user  # root can manage another user's crontab (`crontab -u USER`)
        self.run = run

    def _crontab(self, *args: str) -> list[str]:
        return ["crontab", *(("-u", self.user) if self.user else ()), *args]

    def _label(self, backup_type: str) -> str:
        owner = f" -u {self.user}" if self.user else ""
        return f"crontab{owner}: {MARKER}{backup_type}"

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
        return {self._label(j.backup_type): render_line(j) for j in jobs}

    def units(self) -> list[str]:
        return [self._label(t) for t in marked_types(self.read())]

    def install(self, jobs: Sequence[Job]) -> Installed:
        current = self.read()
        wanted = self.render(jobs)
        new = merged(current, list(wanted.values()))
        changed = new != current
        for job in jobs:
            touch_private(job.log_file(self.name))
        if changed:
            self.write(new)
        active, why = self.is_active()
        return Installed(units=list(wanted), changed=changed, warning=None if active else why)

    def uninstall(self) -> list[str]:
        current = self.read()
        removed = [self._label(t) for t in marked_types(current)]
        if removed:
            self.write(without_marked(current))
        return removed

    def is_active(self) -> tuple[bool, str]:
        if not self.units():
            return False, "no dumpledger lines in the crontab"
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

"""systemd user timers: one service and one timer per slot, `Persistent=true` so a run missed
while the machine was off or asleep happens at the next boot or wake.

Units are named `dumpledger-<id>-<type>.service|timer` (<id>: the project's, see
`jobs.project_id`). A unit of the previous version, `dumpledger-<type>.*` without an id, is
this project's when its service's `--backup-dir` is this project's directory.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from usecases.errors import UseCaseError
from usecases.files import atomic_write, private_dir
from usecases.schedule.jobs import (
    SCHEDULER_ENV,
    Installed,
    Job,
    Project,
    Runner,
    check_project,
    differs,
    run_command,
    touch_private,
)

PREFIX = "dumpledger-"
UNIT = re.compile(
    r"^dumpledger-(?:(?P<id>[0-9a-f]{8})-)?(?P<type>[a-z][a-z0-9-]*)\.(?:service|timer)$"
)
EXEC_WORD = re.compile(r'"((?:[^"\\]|\\.)*)"')
RUNNING_STATES = ("running", "degraded", "starting", "initializing", "maintenance")


def unit_dir(environ: Mapping[str, str]) -> Path:
    """$XDG_CONFIG_HOME/systemd/user, by default ~/.config/systemd/user."""
    base = environ.get("XDG_CONFIG_HOME") or str(Path(environ.get("HOME", "~")) / ".config")
    return Path(base).expanduser() / "systemd" / "user"


def _escape(value: str) -> str:
    """Keep systemd from expanding `%` specifiers and `$` variables in a value."""
    return value.replace("%", "%%").replace("$", "$$")


def _quote(arg: str) -> str:
    """One ExecStart= word: double-quoted, with C-style escapes systemd understands."""
    inner = arg.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{_escape(inner)}"'


def exec_words(service: str) -> list[str]:
    """The words of a service's ExecStart= as `_quote` wrote them (none when there is none)."""
    line = next((ln for ln in service.split("\n") if ln.startswith("ExecStart=")), "")
    words = (w.replace("%%", "%").replace("$$", "$") for w in EXEC_WORD.findall(line))
    return [re.sub(r"\\(.)", r"\1", w) for w in words]


def unit_base(job: Job) -> str:
    return f"{PREFIX}{job.project.id}-{job.backup_type}"


def _describe(job: Job, when: str = "") -> str:
    """A Description= naming the slot and the backup directory (specifiers escaped)."""
    text = f"dumpledger {job.backup_type} backup of {job.project.backup_dir}{when}"
    return text.replace("%", "%%")


def render_service(job: Job) -> str:
    log = _escape(str(job.log_file("systemd")))
    env = " ".join(f"{k}={v}" for k, v in SCHEDULER_ENV.items())
    return (
        "# Written by `dumpledger schedule install`; `dumpledger schedule uninstall` removes it.\n"
        "[Unit]\n"
        f"Description={_describe(job)}\n"
        "\n"
        "[Service]\n"
        "Type=oneshot\n"
        f"WorkingDirectory={_escape(str(job.workdir))}\n"
        f"Environment={env}\n"
        f"ExecStart={' '.join(_quote(a) for a in job.argv)}\n"
        f"StandardOutput=append:{log}\n"
        f"StandardError=append:{log}\n"
    )


def render_timer(job: Job) -> str:
    return (
        "# Written by `dumpledger schedule install`; `dumpledger schedule uninstall` removes it.\n"
        "[Unit]\n"
        f"Description={_describe(job, f' at {job.slot.time}')}\n"
        "\n"
        "[Timer]\n"
        f"OnCalendar=*-*-* {job.slot.time}:00\n"
        "Persistent=true\n"
        f"Unit={unit_base(job)}.service\n"
        "\n"
        "[Install]\n"
        "WantedBy=timers.target\n"
    )


class SystemdBackend:
    name = "systemd"

    def __init__(self, directory: Path, project: Project, run: Runner = run_command) -> None:
        self.directory = directory
        self.project = project
        self.run = run

    def render(self, jobs: Sequence[Job]) -> dict[str, str]:
        out: dict[str, str] = {}
        for job in jobs:
            base = self.directory / unit_base(job)
            out[f"{base}.service"] = render_service(job)
            out[f"{base}.timer"] = render_timer(job)
        return out

    def units(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(str(p) for p in self.directory.iterdir() if self._owns(p))

    def _owns(self, unit: Path) -> bool:
        """This project's unit: its id in the name, or, named without an id (the previous
        version), its service runs with this project's `--backup-dir`."""
        found = UNIT.match(unit.name)
        if found is None:
            return False
        if found["id"] is not None:
            return found["id"] == self.project.id
        try:
            service = unit.with_suffix(".service").read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return False
        return self.project.owns_legacy(exec_words(service))

    def manager_reachable(self) -> bool:
        done = self.run(["systemctl", "--user", "is-system-running"], None)
        return done.stdout.strip() in RUNNING_STATES

    def install(self, jobs: Sequence[Job]) -> Installed:
        check_project(self.project, jobs)
        wanted = self.render(jobs)
        stale = [u for u in self.units() if u not in wanted]
        changed = bool(stale) or any(differs(Path(u), text) for u, text in wanted.items())
        reachable = self.manager_reachable()
        stale_timers = [Path(u).name for u in stale if u.endswith(".timer")]
        if reachable and stale_timers:
            self._systemctl("disable", "--now", *stale_timers)
        for unit in stale:
            Path(unit).unlink(missing_ok=True)
        private_dir(self.directory)
        for unit, text in wanted.items():
            if differs(Path(unit), text):
                atomic_write(Path(unit), text.encode())  # 0600: the user's own manager reads it
        for job in jobs:
            touch_private(job.log_file(self.name))
        timers = sorted(Path(u).name for u in wanted if u.endswith(".timer"))
        if not reachable:
            return Installed(
                units=sorted(wanted), changed=changed, problem=self._not_enabled(timers)
            )
        self._systemctl("daemon-reload")
        self._systemctl("enable", "--now", *timers)
        return Installed(units=sorted(wanted), changed=changed)

    def _not_enabled(self, timers: list[str]) -> str:
        return (
            f"wrote the units to {self.directory}, but no systemd user manager is reachable, so "
            "the timers are not enabled; in a login session (or after `loginctl enable-linger`) "
            f"run: systemctl --user daemon-reload && systemctl --user enable --now "
            f"{' '.join(timers)} ; or install with --backend cron"
        )

    def _systemctl(self, *args: str) -> None:
        done = self.run(["systemctl", "--user", *args], None)
        if done.returncode != 0:
            raise UseCaseError(
                f"systemctl --user {' '.join(args)} failed: {done.stderr.strip()[:300]}; "
                "see `journalctl --user -xe`"
            )

    def uninstall(self) -> list[str]:
        present = self.units()
        timers = [Path(u).name for u in present if u.endswith(".timer")]
        if timers and self.manager_reachable():
            self._systemctl("disable", "--now", *timers)
        for unit in present:
            Path(unit).unlink(missing_ok=True)
        if present and self.manager_reachable():
            self._systemctl("daemon-reload")
        return present

    def is_active(self) -> tuple[bool, str]:
        timers = [Path(u).name for u in self.units() if u.endswith(".timer")]
        if not timers:
            return False, f"no dumpledger timers of project {self.project.id} installed"
        if not self.manager_reachable():
            return False, "no systemd user manager is reachable: the timers cannot run"
        done = self.run(["systemctl", "--user", "is-active", *timers], None)
        states = done.stdout.split()
        inactive = [t for t, s in zip(timers, states, strict=False) if s != "active"]
        if done.returncode == 0 and not inactive:
            return True, f"{len(timers)} timer(s) active"
        return False, f"not active: {', '.join(inactive or timers)}"

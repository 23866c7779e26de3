"""A throwaway OS user whose crontab the cron tests may change: a real user's crontab is
never touched. Creating users needs root (CI and this container run the suite as root).
Also the fake user manager, and the units the previous version (no project id) wrote."""

from __future__ import annotations

import os
import plistlib
import secrets
import shlex
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from subprocess import CompletedProcess

from usecases.schedule.jobs import Job


@contextmanager
def throwaway_crontab_user() -> Iterator[str]:
    if os.geteuid() != 0 or not shutil.which("crontab") or not shutil.which("useradd"):
        raise RuntimeError(
            "the cron tests need root, useradd and crontab (Debian: apt-get install cron)"
        )
    user = f"dl-cron-{secrets.token_hex(4)}"
    subprocess.run(
        ["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", user], check=True
    )
    try:
        yield user
    finally:
        subprocess.run(["crontab", "-u", user, "-r"], capture_output=True, check=False)
        subprocess.run(["userdel", user], check=True)


def crontab_of(user: str) -> str:
    done = subprocess.run(["crontab", "-u", user, "-l"], capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else ""


def set_crontab(user: str, text: str) -> None:
    subprocess.run(["crontab", "-u", user, "-"], input=text, text=True, check=True)


class FakeUserManager:
    """The one fake: `systemctl --user` of a running user manager, which this container (and
    CI) has none of. It records the commands and answers like systemctl does."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str], stdin: str | None) -> CompletedProcess[str]:
        self.calls.append(list(argv))
        out = "running\n" if argv[2:] == ["is-system-running"] else ""
        if argv[2:3] == ["is-active"]:
            out = "active\n" * (len(argv) - 3)
        return CompletedProcess(list(argv), 0, out, "")


# The same fake as a program, for tests that run the CLI in a process of its own: put first on
# PATH, it answers `systemctl --user` as FakeUserManager does; FAKE_SYSTEMCTL_INACTIVE makes
# the timers inactive (a user manager that stopped them).
FAKE_SYSTEMCTL = """#!/bin/sh
[ "$1" = "--user" ] || exit 1
case "$2" in
  is-system-running) echo running ;;
  is-active)
    shift 2
    for _ in "$@"; do
      if [ -n "$FAKE_SYSTEMCTL_INACTIVE" ]; then echo inactive; else echo active; fi
    done
    [ -z "$FAKE_SYSTEMCTL_INACTIVE" ] || exit 3 ;;
esac
exit 0
"""


def with_user_manager(env: dict[str, str], root: Path) -> dict[str, str]:
    """`env` with the fake `systemctl` first on PATH and the user's units under `root`."""
    bin_dir = root / "fake-bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    program = bin_dir / "systemctl"
    program.write_text(FAKE_SYSTEMCTL)
    program.chmod(0o755)
    return {
        **env,
        "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        "XDG_CONFIG_HOME": str(root / "xdg-config"),
    }


# What the previous version wrote, before names carried a project id: its renderers, copied
# as they were (quoting included), so taking over its units is tested against its real text.


def legacy_cron_line(job: Job) -> str:
    def word(arg: str) -> str:
        return shlex.quote(arg).replace("%", "\\%")

    log = word(str(job.log_file("cron")))
    command = " ".join(word(a) for a in job.argv)
    return (
        f"{job.slot.minute} {job.slot.hour} * * * cd {word(str(job.workdir))} && "
        f"DUMPLEDGER_VIA=scheduler {command} >> {log} 2>&1 # dumpledger:{job.backup_type}\n"
    )


def write_legacy_systemd(directory: Path, job: Job) -> list[Path]:
    """dumpledger-<type>.service and .timer, as the previous version wrote them."""

    def escape(value: str) -> str:
        return value.replace("%", "%%").replace("$", "$$")

    def quote(arg: str) -> str:
        inner = arg.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escape(inner)}"'

    head = (
        "# Written by `dumpledger schedule install`; `dumpledger schedule uninstall` removes it.\n"
        "[Unit]\n"
    )
    log = escape(str(job.log_file("systemd")))
    service = (
        f"{head}Description=dumpledger {job.backup_type} backup\n\n[Service]\nType=oneshot\n"
        f"WorkingDirectory={escape(str(job.workdir))}\nEnvironment=DUMPLEDGER_VIA=scheduler\n"
        f"ExecStart={' '.join(quote(a) for a in job.argv)}\n"
        f"StandardOutput=append:{log}\nStandardError=append:{log}\n"
    )
    timer = (
        f"{head}Description=dumpledger {job.backup_type} backup at {job.slot.time}\n\n"
        f"[Timer]\nOnCalendar=*-*-* {job.slot.time}:00\nPersistent=true\n"
        f"Unit=dumpledger-{job.backup_type}.service\n\n[Install]\nWantedBy=timers.target\n"
    )
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for suffix, text in ((".service", service), (".timer", timer)):
        path = directory / f"dumpledger-{job.backup_type}{suffix}"
        path.write_text(text)
        paths.append(path)
    return paths


def write_legacy_plist(directory: Path, job: Job) -> Path:
    """com.dumpledger.<type>.plist, as the previous version wrote it."""
    logs = job.logs_dir
    doc = {
        "Label": f"com.dumpledger.{job.backup_type}",
        "ProgramArguments": list(job.argv),
        "WorkingDirectory": str(job.workdir),
        "EnvironmentVariables": {"DUMPLEDGER_VIA": "scheduler"},
        "StartCalendarInterval": {"Hour": job.slot.hour, "Minute": job.slot.minute},
        "StandardOutPath": str(logs / f"launchd_{job.backup_type}.log"),
        "StandardErrorPath": str(logs / f"launchd_{job.backup_type}_error.log"),
        "RunAtLoad": False,
    }
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"com.dumpledger.{job.backup_type}.plist"
    path.write_bytes(plistlib.dumps(doc, sort_keys=True))
    return path

"""The schedulers' real tools: `systemd-analyze verify` reads the units, the real `crontab`
holds the lines (of a throwaway OS user), and a crontab line run as cron runs it backs up."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from catalog import Catalog
from catalog.events import BackupFailed, BackupStarted
from catalog.queries import list_backups
from tests.schedule_support import crontab_of, set_crontab, throwaway_crontab_user
from tests.support import fabricate_backup
from usecases.config.sections import DEFAULT_SCHEDULE, Slot
from usecases.config.settings import Settings
from usecases.context import App
from usecases.schedule.cron import CronBackend
from usecases.schedule.jobs import Job, Project, jobs_for
from usecases.schedule.launchd import LaunchdBackend
from usecases.schedule.service import status
from usecases.schedule.systemd import SystemdBackend

DUMPLEDGER = str(Path(sys.executable).parent / "dumpledger")


@pytest.fixture
def cron_user() -> Iterator[str]:
    with throwaway_crontab_user() as user:
        yield user


def jobs(root: Path, slots: tuple[Slot, ...] = DEFAULT_SCHEDULE) -> list[Job]:
    return jobs_for(slots, program=(DUMPLEDGER,), backup_dir=root / "backups", workdir=root)


def project(root: Path) -> Project:
    return Project.of(root / "backups")


def no_user_manager(tmp_path: Path) -> dict[str, str]:
    """An environment in which `systemctl --user` reaches no manager, even on a desktop."""
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700, exist_ok=True)
    return {
        **os.environ,
        "XDG_RUNTIME_DIR": str(run_dir),
        "DBUS_SESSION_BUS_ADDRESS": f"unix:path={run_dir}/no-bus",
    }


def test_systemd_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    env = no_user_manager(tmp_path)

    def run(argv: Sequence[str], stdin: str | None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(argv), input=stdin, capture_output=True, text=True, env=env)

    units = tmp_path / "config" / "systemd" / "user"
    ident = project(tmp_path).id
    backend = SystemdBackend(units, project(tmp_path), run=run)
    first = backend.install(jobs(tmp_path))
    assert first.changed and first.problem and "not enabled" in first.problem
    files = sorted(units.iterdir())
    assert [f.name for f in files] == [
        f"dumpledger-{ident}-{t}.{k}"
        for t in ("evening", "morning", "nightly", "noon")
        for k in ("service", "timer")
    ]

    def verify(paths: list[Path]) -> subprocess.CompletedProcess[str]:
        argv = ["systemd-analyze", "--user", "verify", *map(str, paths)]
        return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)

    done = verify(files)
    assert done.returncode == 0, done.stderr
    assert "dumpledger-" not in done.stderr, done.stderr  # no warning about our units either
    before = {f: f.read_bytes() for f in files}
    again = backend.install(jobs(tmp_path))
    assert not again.changed and {f: f.read_bytes() for f in units.iterdir()} == before

    broken = tmp_path / "broken"  # the check can fail: a bad calendar in otherwise good units
    broken.mkdir()
    for name in (f"dumpledger-{ident}-nightly.service", f"dumpledger-{ident}-nightly.timer"):
        text = before[units / name].decode().replace("23:59:00", "24:61:00")
        (broken / name).write_text(text)
    done = verify(sorted(broken.iterdir()))
    assert done.returncode != 0 and "calendar" in done.stderr

    assert backend.uninstall() == [str(f) for f in files]
    assert list(units.iterdir()) == []


USER_LINES = (
    "# m h  dom mon dow   command -- the user's own, kept byte for byte\n"
    'MAILTO=""\n'
    "SHELL=/bin/bash\n"
    "\n"
    "  */7  *\t* * *   echo   'odd spacing'  >/dev/null  # a comment of theirs\n"
    "30 4 * * 1 date +\\%F >> /tmp/never-run.log\n"
)


def test_cron_install_and_uninstall_keep_the_users_lines_exactly(
    tmp_path: Path, cron_user: str
) -> None:
    set_crontab(cron_user, USER_LINES)
    ident = project(tmp_path).id
    backend = CronBackend(project(tmp_path), cron_user)
    first = backend.install(jobs(tmp_path))
    installed = crontab_of(cron_user)
    assert first.changed and installed.startswith(USER_LINES)
    ours = installed[len(USER_LINES) :].splitlines()
    assert [ln.split()[:2] for ln in ours] == [["0", "6"], ["0", "12"], ["0", "18"], ["59", "23"]]
    assert all(
        ln.endswith(f"# dumpledger:{ident}:{t}")
        for ln, t in zip(ours, ("morning", "noon", "evening", "nightly"), strict=True)
    )
    assert backend.units() == [
        f"crontab -u {cron_user}: # dumpledger:{ident}:{t}"
        for t in ("morning", "noon", "evening", "nightly")
    ]

    second = backend.install(jobs(tmp_path))
    assert not second.changed and crontab_of(cron_user) == installed  # twice equals once

    backend.install(jobs(tmp_path, (Slot(backup_type="nightly", time="02:30"),)))
    changed = crontab_of(cron_user)
    assert changed.startswith(USER_LINES)
    assert changed[len(USER_LINES) :].startswith("30 2 * * * ")
    assert changed.count("# dumpledger:") == 1

    assert backend.uninstall() == [f"crontab -u {cron_user}: # dumpledger:{ident}:nightly"]
    assert crontab_of(cron_user) == USER_LINES
    assert backend.uninstall() == [] and crontab_of(cron_user) == USER_LINES


def test_a_crontab_line_run_as_cron_runs_it_backs_up_via_the_scheduler(
    tmp_path: Path, cron_user: str, supabase_db: Any
) -> None:
    cluster = supabase_db.cluster
    project = tmp_path / "my project"
    project.mkdir()
    (project / ".env").write_text(  # settings come from .env in the working directory
        f"SUPABASE_DB_HOST={cluster.socket_dir}\nSUPABASE_DB_PORT={cluster.port}\n"
        f"SUPABASE_DB_USER=postgres\nDUMPLEDGER_PG_BINDIR={cluster.bindir}\n"
    )
    morning = jobs(project, (Slot(backup_type="morning", time="06:00"),))
    CronBackend(morning[0].project, cron_user).install(morning)
    line = crontab_of(cron_user).splitlines()[-1]
    command = line.split(None, 5)[5].replace("\\%", "%")  # what cron hands to /bin/sh
    cron_env = {
        "HOME": str(tmp_path),
        "LOGNAME": "root",
        "PATH": "/usr/bin:/bin",
        "SHELL": "/bin/sh",
    }
    done = subprocess.run(["/bin/sh", "-c", command], env=cron_env, cwd="/", timeout=300)
    assert done.returncode == 0
    backups = project / "backups"
    with Catalog.open(f"sqlite:///{backups / 'catalog.db'}") as cat:
        rows = list_backups(cat.engine)
    assert [(r["backup_type"], r["status"]) for r in rows] == [("morning", "completed")]
    assert rows[0]["name"].startswith("auto_morning_")
    assert rows[0]["actor"].endswith(" via scheduler")
    log = backups / "logs" / "cron_morning.log"
    assert rows[0]["name"] in log.read_text() and (log.stat().st_mode & 0o777) == 0o600
    assert (backups / rows[0]["metadata"]["log_file"]).is_file()  # the run's own log


def test_status_shows_next_runs_recent_backups_and_the_last_failure(tmp_path: Path) -> None:
    with App.open(Settings(backup_dir=tmp_path / "backups")) as app:
        fabricate_backup(app, "auto_noon_20261124_120000", b"SELECT 1;\n", row_counts={})
        app.catalog.append(
            BackupStarted(
                backup="auto_nightly_20261124_235900",
                backup_type="nightly",
                hostname="elsewhere",
                pid=1,
                database={},
                artifacts=["full"],
                codec="gzip",
            ),
            actor="cron@host via scheduler",
        )
        app.catalog.append(
            BackupFailed(backup="auto_nightly_20261124_235900", reason="server down", stage="dump"),
            actor="cron@host via scheduler",
        )
        backend = LaunchdBackend(tmp_path / "agents", project(tmp_path))
        doc = status(app, backend, jobs(tmp_path), datetime(2026, 11, 24, 23, 59, 30))
    assert doc["backend"] == "launchd" and doc["active"] is False and doc["installed"] == []
    assert doc["project"] == {"id": project(tmp_path).id, "backup_dir": str(tmp_path / "backups")}
    assert [(s["backup_type"], s["next_run"]) for s in doc["slots"]] == [
        ("morning", "2026-11-25T06:00"),
        ("noon", "2026-11-25T12:00"),
        ("evening", "2026-11-25T18:00"),
        ("nightly", "2026-11-25T23:59"),
    ]
    assert {r["name"] for r in doc["recent_backups"]} == {
        "auto_noon_20261124_120000",
        "auto_nightly_20261124_235900",
    }
    assert doc["last_failure"]["name"] == "auto_nightly_20261124_235900"
    assert doc["last_failure"]["failure_reason"] == "server down"

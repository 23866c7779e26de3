"""`dumpledger schedule ...` as a user runs it: exit codes, files, crontab, catalog events."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from catalog import Catalog
from catalog.queries import list_backups
from catalog.read import BackupFilter
from tests.schedule_support import crontab_of, set_crontab, throwaway_crontab_user
from tests.support import cluster_env
from usecases.schedule.jobs import project_id

DUMPLEDGER = str(Path(sys.executable).parent / "dumpledger")
SECRET = "pw-never-written-7f3a"


def run(
    env: dict[str, str], cwd: Path, *args: str, code: int = 0
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [DUMPLEDGER, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == code, f"exit {done.returncode}: {done.stderr}"
    return done


@pytest.fixture
def cron_user() -> Iterator[str]:
    with throwaway_crontab_user() as user:
        yield user


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """No user manager reachable, unit files under tmp_path, backups under tmp_path."""
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PG", "SUPABASE_"))},
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_RUNTIME_DIR": str(run_dir),
        "DBUS_SESSION_BUS_ADDRESS": f"unix:path={run_dir}/no-bus",
        "HOME": str(tmp_path / "home"),
        "DUMPLEDGER_BACKUP_DIR": str(tmp_path / "backups"),
        "SUPABASE_DB_PASSWORD": SECRET,
    }


def schedule_events(tmp_path: Path) -> list[tuple[str, dict[str, Any]]]:
    with Catalog.open(f"sqlite:///{tmp_path / 'backups' / 'catalog.db'}") as cat:
        recs = cat.events(types=["ScheduleInstalled", "ScheduleRemoved"])
    return [(r.type, r.payload) for r in recs]


def test_cron_install_twice_status_uninstall(
    tmp_path: Path, env: dict[str, str], cron_user: str
) -> None:
    mine = "# mine\nPATH=/usr/local/bin:/usr/bin:/bin\n15 1 * * *  /usr/bin/true   # keep\n"
    set_crontab(cron_user, mine)
    cron = ("--backend", "cron", "--crontab-user", cron_user)
    first = json.loads(run(env, tmp_path, "schedule", "install", *cron, "--json").stdout)
    assert first["backend"] == "cron" and first["changed"] and first["problem"] is None
    installed = crontab_of(cron_user)
    assert installed.startswith(mine) and SECRET not in installed
    second = json.loads(run(env, tmp_path, "schedule", "install", *cron, "--json").stdout)
    assert not second["changed"] and crontab_of(cron_user) == installed
    events = schedule_events(tmp_path)
    assert [t for t, _ in events] == ["ScheduleInstalled"]  # an unchanged install adds none
    assert events[0][1]["slots"][3] == {"backup_type": "nightly", "time": "23:59"}

    status = json.loads(
        run(env, tmp_path, "schedule", "status", "--crontab-user", cron_user, "--json").stdout
    )
    assert status["backend"] == "cron" and len(status["installed"]) == 4  # found via the log
    assert [s["backup_type"] for s in status["slots"]] == sorted(
        ("morning", "noon", "evening", "nightly"),
        key=lambda t: next(s["next_run"] for s in status["slots"] if s["backup_type"] == t),
    )
    assert status["recent_backups"] == [] and status["last_failure"] is None
    text = run(env, tmp_path, "schedule", "status", "--crontab-user", cron_user).stdout
    assert "backend:  cron" in text and "nightly  23:59" in text

    removed = run(env, tmp_path, "schedule", "uninstall", "--crontab-user", cron_user)
    assert "cron: removed" in removed.stdout
    assert crontab_of(cron_user) == mine
    assert [t for t, _ in schedule_events(tmp_path)] == ["ScheduleInstalled", "ScheduleRemoved"]
    again = run(env, tmp_path, "schedule", "uninstall", "--crontab-user", cron_user)
    assert "nothing removed" in again.stderr and len(schedule_events(tmp_path)) == 2


def test_two_projects_install_side_by_side_and_uninstall_only_their_own(
    tmp_path: Path, env: dict[str, str], cron_user: str
) -> None:
    mine = "15 1 * * *  /usr/bin/true   # keep\n"
    set_crontab(cron_user, mine)
    cron = ("--backend", "cron", "--crontab-user", cron_user)
    other = tmp_path / "other" / "backups"
    env_b = {**env, "DUMPLEDGER_BACKUP_DIR": str(other)}
    a = json.loads(run(env, tmp_path, "schedule", "install", *cron, "--json").stdout)
    b = json.loads(run(env_b, tmp_path, "schedule", "install", *cron, "--json").stdout)
    assert b["changed"] and b["project"] == {"id": project_id(other), "backup_dir": str(other)}
    assert a["project"]["id"] == project_id(tmp_path / "backups") != b["project"]["id"]
    both = crontab_of(cron_user)
    assert both.startswith(mine) and both.count("# dumpledger:") == 8

    status = run(env, tmp_path, "schedule", "status", "--crontab-user", cron_user, "--json")
    assert json.loads(status.stdout)["installed"] == a["units"]
    text = run(env, tmp_path, "schedule", "status", "--crontab-user", cron_user).stdout
    assert f"project:  {a['project']['id']} ({tmp_path / 'backups'})\n" in text

    uninstall = ("schedule", "uninstall", "--crontab-user", cron_user)
    removed = json.loads(run(env_b, tmp_path, *uninstall, "--json").stdout)
    assert removed == {"cron": b["units"]}
    kept = [ln for ln in both.splitlines(keepends=True) if b["project"]["id"] not in ln]
    assert crontab_of(cron_user) == "".join(kept)
    assert "nothing removed" in run(env_b, tmp_path, *uninstall).stderr
    assert [t for t, _ in schedule_events(tmp_path)] == ["ScheduleInstalled"]
    run(env, tmp_path, *uninstall)
    assert crontab_of(cron_user) == mine


def test_systemd_without_a_user_manager_writes_units_and_exits_1(
    tmp_path: Path, env: dict[str, str]
) -> None:
    done = run(env, tmp_path, "schedule", "install", "--backend", "systemd", code=1)
    assert done.stderr.count("\n") == 1
    assert "not enabled" in done.stderr and "systemctl --user enable --now" in done.stderr
    units = tmp_path / "config" / "systemd" / "user"
    ident = project_id(tmp_path / "backups")
    assert len(list(units.glob(f"dumpledger-{ident}-*.timer"))) == 4
    service = (units / f"dumpledger-{ident}-noon.service").read_text()
    assert f'"{DUMPLEDGER}" "--backup-dir" "{tmp_path / "backups"}"' in service
    assert f"WorkingDirectory={tmp_path}\n" in service
    assert not [u for u in units.iterdir() if SECRET in u.read_text()]
    assert [t for t, _ in schedule_events(tmp_path)] == ["ScheduleInstalled"]
    status = json.loads(run(env, tmp_path, "schedule", "status", "--json").stdout)
    assert status["backend"] == "systemd" and status["active"] is False
    assert status["project"] == {"id": ident, "backup_dir": str(tmp_path / "backups")}
    assert len(status["installed"]) == 8
    run(env, tmp_path, "schedule", "uninstall", "--backend", "systemd")
    assert list(units.iterdir()) == []
    assert [t for t, _ in schedule_events(tmp_path)] == ["ScheduleInstalled", "ScheduleRemoved"]


def test_bad_backend_and_launchd_off_macos_are_usage_errors(
    tmp_path: Path, env: dict[str, str]
) -> None:
    done = run(env, tmp_path, "schedule", "install", "--backend", "at", code=2)
    assert "choose one of" in done.stderr
    if sys.platform != "darwin":
        done = run(env, tmp_path, "schedule", "install", "--backend", "launchd", code=2)
        assert done.stderr.count("\n") == 1 and "macOS only" in done.stderr


def test_schedule_test_makes_a_test_backup_with_a_log(tmp_path: Path, supabase_db: Any) -> None:
    env = cluster_env(supabase_db.cluster, tmp_path / "backups")
    out = json.loads(run(env, tmp_path, "schedule", "test", "--json").stdout)
    assert out["ok"] and out["exit_code"] == 0
    assert out["command"][0] == DUMPLEDGER and out["command"][-3:] == ["backup", "--type", "test"]
    with Catalog.open(f"sqlite:///{tmp_path / 'backups' / 'catalog.db'}") as cat:
        rows = list_backups(cat.engine, BackupFilter(backup_type="test"))
    assert [r["name"] for r in rows] == [out["backup"]]
    row = rows[0]
    assert row["status"] == "completed" and row["name"].startswith("auto_test_")
    assert row["actor"].endswith(" via scheduler")
    log = Path(out["log"])
    assert log.parent == tmp_path / "backups" / "logs" and log.name.startswith("backup_")
    assert row["name"] in log.read_text()

"""Scheduling without a scheduler: next runs, crontab merging, unit and plist text."""

from __future__ import annotations

import os
import plistlib
import shlex
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from subprocess import CompletedProcess
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.schedule_support import FakeUserManager
from usecases.config.sections import DEFAULT_SCHEDULE, Slot
from usecases.errors import BadInput
from usecases.schedule.cron import merged, project_marks, render_line, without_project
from usecases.schedule.jobs import (
    Job,
    Project,
    jobs_for,
    next_run,
    program_command,
    project_dir,
    project_id,
)
from usecases.schedule.launchd import Launchctl, LaunchdBackend
from usecases.schedule.systemd import SystemdBackend, render_service, render_timer

NIGHTLY = Slot(backup_type="nightly", time="23:59")
MORNING = Slot(backup_type="morning", time="06:00")


def jobs(root: Path, slots: tuple[Slot, ...] = DEFAULT_SCHEDULE) -> list[Job]:
    return jobs_for(
        slots, program=("/opt/dl/bin/dumpledger",), backup_dir=root / "backups", workdir=root
    )


def project(root: Path) -> Project:
    return Project.of(root / "backups")


@pytest.mark.parametrize(
    ("slot", "now", "expected"),
    [
        (NIGHTLY, datetime(2026, 11, 24, 12, 0), datetime(2026, 11, 24, 23, 59)),
        (NIGHTLY, datetime(2026, 11, 24, 23, 59), datetime(2026, 11, 25, 23, 59)),
        (NIGHTLY, datetime(2026, 11, 24, 23, 59, 30), datetime(2026, 11, 25, 23, 59)),
        (NIGHTLY, datetime(2026, 12, 31, 23, 59, 1), datetime(2027, 1, 1, 23, 59)),
        (MORNING, datetime(2026, 11, 24, 5, 59, 59), datetime(2026, 11, 24, 6, 0)),
        (MORNING, datetime(2026, 11, 30, 6, 0, 1), datetime(2026, 12, 1, 6, 0)),
        (MORNING, datetime(2028, 2, 28, 23, 0), datetime(2028, 2, 29, 6, 0)),
    ],
)
def test_next_run_including_the_2359_slot_and_day_rollover(
    slot: Slot, now: datetime, expected: datetime
) -> None:
    assert next_run(slot, now) == expected


def test_next_run_keeps_wall_clock_time_across_a_dst_change() -> None:
    paris = ZoneInfo("Europe/Paris")  # clocks go back on 2026-10-25 at 03:00
    got = next_run(MORNING, datetime(2026, 10, 24, 7, 0, tzinfo=paris))
    assert got == datetime(2026, 10, 25, 6, 0, tzinfo=paris)
    assert got.utcoffset() is not None and got.utcoffset().total_seconds() == 3600  # type: ignore[union-attr]


@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 30)),
    st.integers(0, 23),
    st.integers(0, 59),
)
def test_next_run_is_the_first_matching_minute_after_now(now: datetime, h: int, m: int) -> None:
    got = next_run(Slot(backup_type="noon", time=f"{h:02d}:{m:02d}"), now)
    assert (got.hour, got.minute, got.second) == (h, m, 0)
    assert now < got and (got - now).total_seconds() <= 86400


def test_unknown_slot_types_are_refused_before_anything_is_installed(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="'hourly' is not a backup type"):
        jobs(tmp_path, (Slot(backup_type="hourly", time="01:00"),))


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("two\nlines", r"control character \('\\n'\)"),
        ("tab\there", "control character"),
        ("bytes-\udce9", "not valid UTF-8"),  # a path whose bytes are not UTF-8 (b"\xe9")
    ],
)
def test_paths_a_unit_cannot_hold_are_refused_before_anything_is_installed(
    tmp_path: Path, name: str, problem: str
) -> None:
    with pytest.raises(BadInput, match=f"the backup directory .*{problem}"):
        jobs(tmp_path / name)


def test_program_command_prefers_the_dumpledger_script(tmp_path: Path) -> None:
    script = tmp_path / "bin" / "dumpledger"
    script.parent.mkdir()
    script.touch()
    assert program_command(str(script), "/usr/bin/python3") == (str(script),)
    assert program_command("/x/cli/__main__.py", "venv/bin/python") == (
        str(Path("venv/bin/python").absolute()),
        "-m",
        "cli",
    )


def test_project_dir_is_where_dotenv_lives(tmp_path: Path) -> None:
    assert project_dir(tmp_path, tmp_path / "elsewhere" / "backups") == tmp_path / "elsewhere"
    (tmp_path / ".env").write_text("SUPABASE_DB_PORT=5432\n")
    assert project_dir(tmp_path, tmp_path / "elsewhere" / "backups") == tmp_path


USER_CRONTAB = (
    "# my own jobs\n"
    'MAILTO="me@example.org"\n'
    "  */5   *  * * *\techo  'odd   spacing' # not ours\n"
    "@reboot /usr/local/bin/thing --flag=%s\r\n"
    "0 3 * * 0 /bin/true # dumpledger is mentioned, but no marker"
)


def test_cron_merge_keeps_the_users_lines_byte_for_byte(tmp_path: Path) -> None:
    lines = [render_line(j) for j in jobs(tmp_path)]
    mine = project(tmp_path)
    once = merged(USER_CRONTAB, mine, lines)
    # the only change to the user's text: the final newline crontab insists on
    assert once.startswith(USER_CRONTAB + "\n")
    assert project_marks(once, mine) == [
        f"{mine.id}:{t}" for t in ("morning", "noon", "evening", "nightly")
    ]
    assert merged(once, mine, lines) == once  # install twice equals install once
    assert without_project(once, mine) == USER_CRONTAB + "\n"
    assert without_project(USER_CRONTAB, mine) == USER_CRONTAB
    changed = merged(once, mine, lines[:1])
    assert project_marks(changed, mine) == [f"{mine.id}:morning"]
    assert changed.startswith(USER_CRONTAB + "\n")


def test_cron_line_quotes_paths_and_escapes_percent(tmp_path: Path) -> None:
    root = tmp_path / "my project 100%"
    line = render_line(jobs(root, (NIGHTLY,))[0])
    assert line.startswith("59 23 * * * ")
    assert line.endswith(f" # dumpledger:{project_id(root / 'backups')}:nightly\n")
    assert "100\\%" in line and "100%" not in line.replace("100\\%", "")
    command = line.split(" ", 5)[5].replace("\\%", "%")
    words = shlex.split(command, comments=True)
    assert words[:3] == ["cd", str(root), "&&"]
    assert "DUMPLEDGER_VIA=scheduler" in words
    assert words[-3:] == [">>", str(root / "backups" / "logs" / "cron_nightly.log"), "2>&1"]


def test_systemd_units_from_the_schedule(tmp_path: Path) -> None:
    job = jobs(tmp_path / "a b%c", (NIGHTLY,))[0]
    timer = render_timer(job)
    assert "OnCalendar=*-*-* 23:59:00\n" in timer and "Persistent=true\n" in timer
    ident = project_id(tmp_path / "a b%c" / "backups")
    assert f"Unit=dumpledger-{ident}-nightly.service\n" in timer
    assert f"Description=dumpledger nightly backup of {tmp_path}/a b%%c/backups at 23:59\n" in timer
    service = render_service(job)
    assert f"Description=dumpledger nightly backup of {tmp_path}/a b%%c/backups\n" in service
    assert "Environment=DUMPLEDGER_VIA=scheduler\n" in service
    assert '"backup" "--type" "nightly"' in service
    assert f'"{tmp_path}/a b%%c/backups"' in service  # % is a systemd specifier: escaped
    assert "PASSWORD" not in service.upper()


def test_launchd_plists_parse_and_carry_the_slot_times(tmp_path: Path) -> None:
    agents = tmp_path / "home" / "Library" / "LaunchAgents"
    mine = project(tmp_path)
    backend = LaunchdBackend(agents, mine, launchctl=None)  # Linux: nothing to load them into
    first = backend.install(jobs(tmp_path))
    assert first.changed and first.problem and "macOS only" in first.problem
    by_type = {}
    for path in sorted(agents.glob("*.plist")):
        with path.open("rb") as fh:
            by_type[path.stem.removeprefix(f"com.dumpledger.{mine.id}.")] = plistlib.load(fh)
    assert {t: (p["StartCalendarInterval"]) for t, p in by_type.items()} == {
        "morning": {"Hour": 6, "Minute": 0},
        "noon": {"Hour": 12, "Minute": 0},
        "evening": {"Hour": 18, "Minute": 0},
        "nightly": {"Hour": 23, "Minute": 59},
    }
    nightly = by_type["nightly"]
    logs = tmp_path / "backups" / "logs"
    assert nightly["Label"] == f"com.dumpledger.{mine.id}.nightly"
    assert nightly["ProgramArguments"][-3:] == ["backup", "--type", "nightly"]
    assert nightly["StandardOutPath"] == str(logs / "launchd_nightly.log")
    assert nightly["StandardErrorPath"] == str(logs / "launchd_nightly_error.log")
    assert nightly["EnvironmentVariables"] == {"DUMPLEDGER_VIA": "scheduler"}
    assert nightly["WorkingDirectory"] == str(tmp_path)
    before = {p: p.read_bytes() for p in agents.iterdir()}
    assert not backend.install(jobs(tmp_path)).changed  # install twice equals install once
    assert {p: p.read_bytes() for p in agents.iterdir()} == before
    backend.install(jobs(tmp_path, (NIGHTLY,)))  # a slot dropped from the config goes
    assert [p.name for p in agents.iterdir()] == [f"com.dumpledger.{mine.id}.nightly.plist"]
    assert backend.uninstall() == [str(agents / f"com.dumpledger.{mine.id}.nightly.plist")]
    assert list(agents.iterdir()) == []


def test_systemd_with_a_user_manager_reloads_enables_and_disables(tmp_path: Path) -> None:
    manager = FakeUserManager()
    ident = project(tmp_path).id
    backend = SystemdBackend(tmp_path / "units", project(tmp_path), run=manager)
    result = backend.install(jobs(tmp_path))
    assert result.problem is None and result.changed
    timers = [f"dumpledger-{ident}-{t}.timer" for t in ("evening", "morning", "nightly", "noon")]
    assert ["systemctl", "--user", "daemon-reload"] in manager.calls
    assert manager.calls[-1] == ["systemctl", "--user", "enable", "--now", *timers]
    assert backend.is_active() == (True, "4 timer(s) active")
    manager.calls.clear()
    backend.install(jobs(tmp_path, (NIGHTLY,)))
    assert ["systemctl", "--user", "disable", "--now", *timers[:2], timers[3]] in manager.calls
    assert sorted(p.name for p in (tmp_path / "units").iterdir()) == [
        f"dumpledger-{ident}-nightly.service",
        f"dumpledger-{ident}-nightly.timer",
    ]
    manager.calls.clear()
    assert len(backend.uninstall()) == 2
    assert manager.calls[1] == ["systemctl", "--user", "disable", "--now", timers[2]]
    assert manager.calls[-1] == ["systemctl", "--user", "daemon-reload"]
    assert list((tmp_path / "units").iterdir()) == []


def test_launchd_on_macos_bootstraps_each_written_plist(tmp_path: Path) -> None:
    calls: list[list[str]] = []

    def launchctl(argv: Sequence[str], stdin: str | None) -> CompletedProcess[str]:
        calls.append(list(argv))  # the one fake: launchctl exists on macOS only
        return CompletedProcess(list(argv), 0, "", "")

    agents = tmp_path / "LaunchAgents"
    backend = LaunchdBackend(agents, project(tmp_path), Launchctl(run=launchctl))
    assert backend.install(jobs(tmp_path, (NIGHTLY,))).problem is None
    plist = str(agents / f"com.dumpledger.{project(tmp_path).id}.nightly.plist")
    domain = f"gui/{os.getuid()}"
    assert calls == [
        ["launchctl", "bootout", domain, plist],
        ["launchctl", "bootstrap", domain, plist],
    ]
    assert backend.is_active() == (True, "1 agent(s) loaded")
    calls.clear()
    assert not backend.install(jobs(tmp_path, (NIGHTLY,))).changed
    assert calls == []  # an unchanged plist is not reloaded
    backend.uninstall()
    assert (
        calls == [["launchctl", "bootout", domain, plist]] and not agents.joinpath(plist).exists()
    )

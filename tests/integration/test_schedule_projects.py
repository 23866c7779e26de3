"""Two projects of one user in one real crontab (of a throwaway OS user): each install and
uninstall changes its own project's lines and nothing else, and a line of the previous
version (no id) is taken over by its own project only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.schedule_support import (
    crontab_of,
    legacy_cron_line,
    set_crontab,
    throwaway_crontab_user,
)
from usecases.config.sections import DEFAULT_SCHEDULE, Slot
from usecases.schedule.cron import CronBackend
from usecases.schedule.jobs import Job, Project, jobs_for

USER_LINES = (
    "# m h  dom mon dow   command -- the user's own, kept byte for byte\n"
    'MAILTO=""\n'
    "  */7  *\t* * *   echo   'odd spacing'  >/dev/null  # a comment of theirs\n"
    "30 4 * * 1 date +\\%F >> /tmp/never-run.log\n"
    "0 1 * * * /usr/bin/true # dumpledger:nightly\n"  # a marker, but no --backup-dir: theirs
)
TYPES = ("morning", "noon", "evening", "nightly")


@pytest.fixture
def cron_user() -> Iterator[str]:
    with throwaway_crontab_user() as user:
        yield user


def jobs(root: Path, slots: tuple[Slot, ...] = DEFAULT_SCHEDULE) -> list[Job]:
    return jobs_for(
        slots, program=("/opt/dl/bin/dumpledger",), backup_dir=root / "backups", workdir=root
    )


def backend(root: Path, user: str) -> CronBackend:
    return CronBackend(Project.of(root / "backups"), user)


def test_two_projects_install_side_by_side_and_uninstall_only_their_own(
    tmp_path: Path, cron_user: str
) -> None:
    set_crontab(cron_user, USER_LINES)
    a, b = backend(tmp_path / "project a", cron_user), backend(tmp_path / "b", cron_user)
    assert a.install(jobs(tmp_path / "project a")).changed
    after_a = crontab_of(cron_user)
    assert b.install(jobs(tmp_path / "b")).changed
    both = crontab_of(cron_user)
    lines_b = both[len(after_a) :]
    assert both.startswith(USER_LINES) and len(both.splitlines()) == 5 + 8
    assert lines_b.count(f"# dumpledger:{b.project.id}:") == 4 and a.project.id not in lines_b
    assert a.units() == [f"crontab -u {cron_user}: # dumpledger:{a.project.id}:{t}" for t in TYPES]
    assert b.units() == [f"crontab -u {cron_user}: # dumpledger:{b.project.id}:{t}" for t in TYPES]
    assert not a.install(jobs(tmp_path / "project a")).changed  # B's lines after A's: no move
    assert crontab_of(cron_user) == both

    a.install(jobs(tmp_path / "project a", (Slot(backup_type="noon", time="12:30"),)))
    changed = crontab_of(cron_user)
    assert changed.startswith(USER_LINES + "30 12 * * * ") and changed.endswith(lines_b)
    assert changed.count(a.project.id) == 1 and len(changed.splitlines()) == 5 + 1 + 4

    assert a.uninstall() == [f"crontab -u {cron_user}: # dumpledger:{a.project.id}:noon"]
    assert crontab_of(cron_user) == USER_LINES + lines_b
    assert a.uninstall() == [] and a.units() == []
    assert len(b.uninstall()) == 4 and crontab_of(cron_user) == USER_LINES


def test_a_line_of_the_previous_version_is_taken_over_by_its_project_only(
    tmp_path: Path, cron_user: str
) -> None:
    root_a, root_c = tmp_path / "a 100%", tmp_path / "c"
    legacy_a = legacy_cron_line(jobs(root_a, (Slot(backup_type="nightly", time="23:59"),))[0])
    legacy_c = legacy_cron_line(jobs(root_c, (Slot(backup_type="noon", time="12:00"),))[0])
    set_crontab(cron_user, USER_LINES + legacy_a + legacy_c)
    a, b = backend(root_a, cron_user), backend(tmp_path / "b", cron_user)
    assert a.units() == [f"crontab -u {cron_user}: # dumpledger:nightly"]
    assert b.units() == []

    b.install(jobs(tmp_path / "b"))
    assert crontab_of(cron_user).startswith(USER_LINES + legacy_a + legacy_c)  # left alone
    assert len(b.uninstall()) == 4
    assert crontab_of(cron_user) == USER_LINES + legacy_a + legacy_c

    installed = a.install(jobs(root_a))
    assert installed.changed
    after = crontab_of(cron_user)
    assert legacy_a not in after and after.count(f"# dumpledger:{a.project.id}:") == 4
    assert after.startswith(USER_LINES) and after.endswith(legacy_c)  # A's where its line was
    assert len(after.splitlines()) == 5 + 4 + 1 and not a.install(jobs(root_a)).changed

    set_crontab(cron_user, after + legacy_a)  # say an old install ran again
    removed = a.uninstall()
    assert removed[-1] == f"crontab -u {cron_user}: # dumpledger:nightly" and len(removed) == 5
    assert crontab_of(cron_user) == USER_LINES + legacy_c


def test_check_looks_in_the_crontab_the_schedule_was_installed_into(
    tmp_path: Path, cron_user: str
) -> None:
    """Root installed the lines into another user's crontab: check reads that crontab."""
    from usecases.config.settings import Settings
    from usecases.context import App
    from usecases.health.facts import _schedule, scheduler_problem
    from usecases.schedule import service

    with App.open(Settings(backup_dir=tmp_path / "backups")) as app:
        cron = backend(tmp_path, cron_user)
        service.install(app, cron, jobs(tmp_path))
        (recorded,) = app.catalog.events(types=["ScheduleInstalled"])
        assert recorded.payload["crontab_user"] == cron_user
        summary, problem = _schedule(app)
    assert summary == "installed (cron, 4 slot(s))"
    daemon = "the lines are in the crontab, but no cron daemon is running"
    assert problem in (None, daemon)  # None where a cron daemon runs
    elsewhere = scheduler_problem("cron", cron.project, None)  # root's own crontab
    assert elsewhere is not None and "none of its cron units is on this host" in elsewhere

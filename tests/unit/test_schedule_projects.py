"""Two projects of one user, each with its own schedule: ids, names, and units of the previous
version (no id) taken over by their own project only. Unit files in temp directories; the
real crontab is in tests/integration/test_schedule_projects.py."""

from __future__ import annotations

import plistlib
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.schedule_support import (
    FakeUserManager,
    legacy_cron_line,
    write_legacy_plist,
    write_legacy_systemd,
)
from usecases.config.sections import DEFAULT_SCHEDULE, Slot
from usecases.schedule.cron import merged, project_mark, project_marks, render_line
from usecases.schedule.jobs import Job, Project, jobs_for, project_id
from usecases.schedule.launchd import LaunchdBackend
from usecases.schedule.systemd import SystemdBackend, exec_words, render_service

NIGHTLY = Slot(backup_type="nightly", time="23:59")
MORNING = Slot(backup_type="morning", time="06:00")
FOREIGN_UNIT = "[Service]\nExecStart=/usr/bin/true\n"


def jobs(root: Path, slots: tuple[Slot, ...] = DEFAULT_SCHEDULE) -> list[Job]:
    return jobs_for(
        slots, program=("/opt/dl/bin/dumpledger",), backup_dir=root / "backups", workdir=root
    )


def project(root: Path) -> Project:
    return Project.of(root / "backups")


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}


def test_the_project_id_is_8_hex_of_the_resolved_backup_directory(tmp_path: Path) -> None:
    (tmp_path / "a" / "backups").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "a")
    ident = project_id(tmp_path / "a" / "backups")
    assert re.fullmatch(r"[0-9a-f]{8}", ident)
    assert project_id(tmp_path / "a" / "x" / ".." / "backups") == ident
    assert project_id(tmp_path / "link" / "backups") == ident
    assert project_id(tmp_path / "b" / "backups") != ident
    assert Project.of(tmp_path / "a" / "backups").id == ident
    assert {j.project.id for j in jobs(tmp_path / "a")} == {ident}


def test_a_unit_of_the_previous_version_is_owned_by_the_directory_its_command_names(
    tmp_path: Path,
) -> None:
    mine = project(tmp_path)
    argv = ["/opt/dl/bin/dumpledger", "--backup-dir", str(tmp_path / "backups"), "backup"]
    assert mine.owns_legacy(argv)
    assert mine.owns_legacy([*argv[:2], str(tmp_path / "x" / ".." / "backups"), "backup"])
    assert not mine.owns_legacy([*argv[:2], str(tmp_path / "other"), "backup"])
    assert not mine.owns_legacy([*argv[:2], "backups", "backup"])  # relative: not known
    assert not mine.owns_legacy(["/usr/bin/true"]) and not mine.owns_legacy(argv[:2])


# Path characters a unit file can hold: no "/", no control characters (a newline would break
# the unit; jobs_for refuses them all) and no lone surrogates (a path's undecodable bytes; a
# UTF-8 unit file cannot carry them, and jobs_for refuses them too).
NAMES = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cc"], exclude_characters="/"), min_size=1
)


@given(NAMES.filter(lambda t: t.strip(".")))
def test_exec_words_reads_back_any_command_render_service_wrote(name: str) -> None:
    job = jobs(Path("/srv") / name, (NIGHTLY,))[0]
    assert exec_words(render_service(job)) == list(job.argv)


def test_a_backend_refuses_another_projects_jobs(tmp_path: Path) -> None:
    backend = SystemdBackend(tmp_path / "units", project(tmp_path / "a"), run=FakeUserManager())
    with pytest.raises(ValueError, match="given to project"):
        backend.install(jobs(tmp_path / "b"))
    assert not (tmp_path / "units").exists()


def test_two_projects_keep_their_own_systemd_units(tmp_path: Path) -> None:
    units = tmp_path / "units"
    units.mkdir()
    (units / "other.timer").write_text(FOREIGN_UNIT)
    (units / "dumpledger-notes.service").write_text(FOREIGN_UNIT)  # a name like ours, not ours
    manager = FakeUserManager()
    a, b = tmp_path / "project a", tmp_path / "project b"
    ida, idb = project(a).id, project(b).id
    backend_a = SystemdBackend(units, project(a), run=manager)
    backend_b = SystemdBackend(units, project(b), run=manager)
    backend_a.install(jobs(a))
    backend_b.install(jobs(b))
    assert len(list(units.glob(f"dumpledger-{ida}-*"))) == 8
    assert len(list(units.glob(f"dumpledger-{idb}-*"))) == 8
    assert backend_a.units() == sorted(str(p) for p in units.glob(f"dumpledger-{ida}-*"))
    assert backend_b.units() == sorted(str(p) for p in units.glob(f"dumpledger-{idb}-*"))
    assert f"of {b / 'backups'} at 23:59" in (units / f"dumpledger-{idb}-nightly.timer").read_text()
    others = {n: t for n, t in snapshot(units).items() if ida not in n}

    manager.calls.clear()
    backend_a.install(jobs(a, (NIGHTLY,)))  # drops three of A's slots, none of B's
    disabled = [c[4:] for c in manager.calls if c[2:4] == ["disable", "--now"]]
    assert disabled == [[f"dumpledger-{ida}-{t}.timer" for t in ("evening", "morning", "noon")]]
    assert {n: t for n, t in snapshot(units).items() if ida not in n} == others

    manager.calls.clear()
    assert backend_a.uninstall() == [
        str(units / f"dumpledger-{ida}-nightly.{k}") for k in ("service", "timer")
    ]
    assert [
        "systemctl",
        "--user",
        "disable",
        "--now",
        f"dumpledger-{ida}-nightly.timer",
    ] in manager.calls
    assert snapshot(units) == others
    assert backend_a.units() == [] and backend_b.is_active() == (True, "4 timer(s) active")
    assert len(backend_b.uninstall()) == 8
    assert sorted(snapshot(units)) == ["dumpledger-notes.service", "other.timer"]


def test_legacy_systemd_units_are_taken_over_by_their_project_only(tmp_path: Path) -> None:
    units = tmp_path / "units"
    a, b, c = tmp_path / "a 100% $HOME", tmp_path / "b", tmp_path / "c"
    legacy_a = [p for j in jobs(a, (MORNING, NIGHTLY)) for p in write_legacy_systemd(units, j)]
    legacy_c = write_legacy_systemd(units, jobs(c, (Slot(backup_type="noon", time="12:00"),))[0])
    manager = FakeUserManager()
    backend_a = SystemdBackend(units, project(a), run=manager)
    backend_b = SystemdBackend(units, project(b), run=manager)
    assert backend_a.units() == sorted(map(str, legacy_a))
    assert backend_b.units() == []

    before = snapshot(units)
    backend_b.install(jobs(b))
    assert not [c for c in manager.calls if "disable" in c]
    assert {n: t for n, t in snapshot(units).items() if n in before} == before
    assert backend_b.uninstall() and snapshot(units) == before  # B removes only its own

    manager.calls.clear()
    installed = backend_a.install(jobs(a, (NIGHTLY,)))
    assert installed.changed
    disable = ["systemctl", "--user", "disable", "--now", "dumpledger-morning.timer"]
    assert [*disable, "dumpledger-nightly.timer"] in manager.calls  # nothing runs twice
    assert not any(p.exists() for p in legacy_a) and all(p.exists() for p in legacy_c)
    assert backend_a.units() == sorted(installed.units)
    assert not backend_a.install(jobs(a, (NIGHTLY,))).changed

    legacy_a = write_legacy_systemd(units, jobs(a, (MORNING,))[0])
    assert sorted(backend_a.uninstall()) == sorted([*installed.units, *map(str, legacy_a)])
    assert sorted(p.name for p in units.iterdir()) == sorted(p.name for p in legacy_c)


def test_two_projects_and_a_legacy_plist_on_launchd(tmp_path: Path) -> None:
    agents = tmp_path / "LaunchAgents"
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    legacy_a = write_legacy_plist(agents, jobs(a, (MORNING,))[0])
    legacy_c = write_legacy_plist(agents, jobs(c, (NIGHTLY,))[0])
    (agents / "com.dumpledger.evening.plist").write_bytes(b"not a plist")
    (agents / "com.example.other.plist").write_bytes(plistlib.dumps({"Label": "x"}))
    backend_a = LaunchdBackend(agents, project(a))
    backend_b = LaunchdBackend(agents, project(b))
    assert backend_a.units() == [str(legacy_a)] and backend_b.units() == []

    before = snapshot(agents)
    backend_b.install(jobs(b))
    assert len(backend_b.units()) == 4 and backend_a.units() == [str(legacy_a)]
    backend_a.install(jobs(a))
    assert not legacy_a.exists() and len(backend_a.units()) == 4
    names = sorted(p.name for p in agents.iterdir())
    assert len([n for n in names if project(a).id in n]) == 4
    assert backend_a.uninstall() == sorted(str(agents / n) for n in names if project(a).id in n)
    assert {n: t for n, t in snapshot(agents).items() if n in before} == {
        n: t for n, t in before.items() if n != legacy_a.name
    }
    assert len(backend_b.uninstall()) == 4
    assert sorted(snapshot(agents)) == sorted(
        [legacy_c.name, "com.dumpledger.evening.plist", "com.example.other.plist"]
    )


def test_cron_lines_of_other_projects_and_unknown_ones_stay_where_they_are(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    lines_b = "".join(render_line(j) for j in jobs(b))
    legacy_a = legacy_cron_line(jobs(a, (MORNING,))[0])
    legacy_b = legacy_cron_line(jobs(b, (MORNING,))[0])
    theirs = "0 1 * * * /usr/bin/true # dumpledger:nightly\n"  # a marker, but no --backup-dir
    crontab = f"# mine\n{legacy_a}{lines_b}{legacy_b}{theirs}"
    assert project_mark(legacy_a, project(a)) == "morning"
    assert project_mark(legacy_a, project(b)) is None
    assert project_mark(theirs, project(a)) is None and project_mark(theirs, project(b)) is None
    assert project_marks(crontab, project(b)) == [
        *(f"{project(b).id}:{t}" for t in ("morning", "noon", "evening", "nightly")),
        "morning",
    ]
    lines_a = [render_line(j) for j in jobs(a, (NIGHTLY,))]
    assert merged(crontab, project(a), lines_a) == (
        f"# mine\n{lines_a[0]}{lines_b}{legacy_b}{theirs}"
    )  # in the place of A's first line: installing again moves nothing
    once = merged(crontab, project(a), lines_a)
    assert merged(once, project(a), lines_a) == once
    assert merged(once, project(b), []) == f"# mine\n{lines_a[0]}{theirs}"
    last = "# last line, no newline"
    assert merged(f"{legacy_a}{last}", project(a), lines_a) == f"{lines_a[0]}{last}\n"


def test_projects_sharing_one_catalog_see_only_their_own_schedule(tmp_path: Path) -> None:
    """A catalog shared by two backup directories (as a team's PostgreSQL catalog is): the
    schedule events name their project, and status and check read only their own."""
    from catalog.events import ScheduleInstalled, decode
    from usecases.config.settings import Settings
    from usecases.context import App
    from usecases.health.facts import _schedule
    from usecases.schedule import service

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    a, b = tmp_path / "a", tmp_path / "b"
    units = tmp_path / "units"
    with (
        App.open(Settings(backup_dir=a / "backups", catalog_url=url)) as app_a,
        App.open(Settings(backup_dir=b / "backups", catalog_url=url)) as app_b,
    ):
        backend_a = SystemdBackend(units, project(a), run=FakeUserManager())
        service.install(app_a, backend_a, jobs(a))
        assert service.last_installed_backend(app_a, project(a)) == "systemd"
        assert _schedule(app_a)[0] == "installed (systemd, 4 slot(s))"
        assert service.last_installed_backend(app_b, project(b)) is None
        assert _schedule(app_b) == (None, None)  # B's check: not installed, though A's is

        service.uninstall(app_b, [SystemdBackend(units, project(b), run=FakeUserManager())])
        assert _schedule(app_a)[0] == "installed (systemd, 4 slot(s))"  # B's uninstall: nothing
        service.uninstall(app_a, [backend_a])
        assert _schedule(app_a) == (None, None)
        removed = app_a.catalog.events(types=["ScheduleRemoved"])
        assert [e.payload["project"] for e in removed] == [project(a).id]

        # An event from before projects (no project) counts for every project, as it did.
        app_a.catalog.append(ScheduleInstalled(backend="cron", slots=[], units=[]), actor="x")
        assert service.last_installed_backend(app_b, project(b)) == "cron"
        assert _schedule(app_b)[0] == "installed (cron, 0 slot(s))"
    v1 = {"backend": "cron", "slots": [], "units": [], "schema_version": 1}
    assert decode("ScheduleInstalled", v1) == ScheduleInstalled(
        backend="cron", slots=[], units=[], project=None
    )

"""Honest failures of the backup directory itself: a damaged catalog.db, a disk that fills up
exactly when BackupCompleted is written, a read-only backup directory. Real files, a real
size-limited tmpfs and a real read-only mount (tests/mounts.py); one line and the right exit
code each time, and a scheduled run notifies even when nothing can record its failure."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_notifications_cli import Endpoint
from tests.mounts import remount, tmpfs
from tests.support import catalog_of, cluster_env, wrapped_pg_dump
from tests.support import run_cli as run

READERS = (
    ("list",),
    ("list", "--json"),
    ("verify", "--all"),
    ("catalog", "verify"),
    ("audit",),
)


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    ep = Endpoint()
    ep.thread.start()
    yield ep
    ep.server.shutdown()
    ep.server.server_close()


def configure(backup_dir: Path, **extra: Any) -> None:
    backup_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    doc = {"health": {"min_free_bytes": 0}, "notifications": {"desktop": False}, **extra}
    (backup_dir / "backup-config.json").write_text(json.dumps(doc))


def one_line(stderr: str) -> bool:
    return stderr.count("\n") == 1 and "Traceback" not in stderr


@pytest.mark.parametrize("damage", ["pages", "header"])
def test_a_damaged_catalog_is_critical_for_check_and_one_line_elsewhere(
    tmp_path: Path, supabase_db: Any, damage: str
) -> None:
    backup_dir = tmp_path / "backups"
    configure(backup_dir)
    env = cluster_env(supabase_db.cluster, backup_dir)
    run(env, "backup", "--type", "nightly")
    db = backup_dir / "catalog.db"
    with db.open("r+b") as fh:  # the events table's pages, or the file header
        fh.seek(4096 * 2 if damage == "pages" else 0)
        fh.write(os.urandom(4096 * 8 if damage == "pages" else 100))

    done = run(env, "check", "--json", "--no-notify", check=False)
    assert done.returncode == 2, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "CRITICAL" and "Traceback" not in done.stderr
    catalog = next(c for c in report["checks"] if c["name"] == "catalog")
    assert catalog["status"] == "CRITICAL"
    assert "is damaged" in catalog["message"] or "malformed" in catalog["message"]
    for args in (*READERS, ("backup",)):
        done = run(env, *args, check=False)
        if done.returncode == 0:  # a command may read only pages the damage missed
            assert args[0] not in ("catalog", "audit"), args  # these read every event
            continue
        assert done.returncode == 1 and one_line(done.stderr), (args, done.stderr)
        assert f"the catalog at {db} is damaged" in done.stderr, (args, done.stderr)


def test_disk_full_when_the_completion_is_written_fails_in_one_line_and_notifies(
    tmp_path: Path, supabase_db: Any, endpoint: Endpoint
) -> None:
    """The backup directory (catalog, logs) on a small tmpfs, the store elsewhere; pg_dump's
    output passes through a pipeline that fills the tmpfs once the dump is through: the dumps
    and their read-back succeed, appending BackupCompleted meets a full disk."""
    with tmpfs(tmp_path / "small", size="2m") as small:
        backup_dir = small / "backups"
        configure(backup_dir, notifications={"desktop": False, "apprise_urls": [endpoint.url]})
        env = cluster_env(supabase_db.cluster, backup_dir)
        env["DUMPLEDGER_STORE"] = str(tmp_path / "store")
        run(env, "list")  # the catalog exists before the disk fills
        filler = small / ".filler"
        bindir = wrapped_pg_dump(
            supabase_db.cluster.bindir,
            tmp_path / "bin",
            then=f"{{ cat; dd if=/dev/zero of={filler} bs=4k >/dev/null 2>&1; true; }}",
        )
        env["DUMPLEDGER_PG_BINDIR"] = str(bindir)
        env["DUMPLEDGER_VIA"] = "scheduler"

        done = run(env, "backup", "--type", "nightly", check=False)
        assert done.returncode == 1 and one_line(done.stderr), done.stderr
        assert "the disk is full" in done.stderr
        assert "could not be recorded either" in done.stderr
        [sent] = endpoint.bodies
        assert "FAILED" in sent["title"] and "disk is full" in sent["message"]
        name = sent["title"].split()[2]
        assert name.startswith("auto_nightly_")

        filler.unlink()  # room again: the next command records what happened
        env["DUMPLEDGER_PG_BINDIR"] = str(supabase_db.cluster.bindir)
        [row] = json.loads(run(env, "list", "--json").stdout)
        assert (row["name"], row["status"]) == (name, "failed")
        with catalog_of(env) as cat:
            assert [e.type for e in cat.events(subject=name)] == ["BackupStarted", "BackupFailed"]
            assert cat.events(subject=name)[-1].payload["stage"] == "abandoned"
            assert cat.verify_chain().ok


@pytest.fixture
def read_only_copy(tmp_path: Path, supabase_db: Any) -> Iterator[tuple[dict[str, str], str]]:
    """A backup directory with one verified backup, then mounted read-only (an offsite disk)."""
    with tmpfs(tmp_path / "disk", size="64m") as disk:
        backup_dir = disk / "backups"
        configure(backup_dir)
        env = cluster_env(supabase_db.cluster, backup_dir)
        name = json.loads(run(env, "backup", "--type", "nightly", "--json").stdout)["name"]
        remount(disk, read_only=True)
        yield env, name
        remount(disk, read_only=False)


def test_read_only_commands_work_on_a_read_only_copy(
    read_only_copy: tuple[dict[str, str], str],
) -> None:
    env, name = read_only_copy
    backup_dir = Path(env["DUMPLEDGER_BACKUP_DIR"])
    before = sorted(p.name for p in backup_dir.rglob("*"))
    listed = json.loads(run(env, "list", "--json").stdout)
    assert [r["name"] for r in listed] == [name]
    assert json.loads(run(env, "info", name, "--json").stdout)["status"] == "completed"
    verified = run(env, "verify", "--all")
    assert verified.stdout.startswith(f"ok     {name}")
    assert "read-only: the results were not recorded" in verified.stderr
    assert run(env, "catalog", "verify").stdout.startswith("catalog ok")
    assert name in run(env, "audit").stdout
    assert run(env, "catalog", "export").stdout.count("\n") == 2
    checked = run(env, "check", "--json", "--no-notify", check=False)
    report = json.loads(checked.stdout)
    by_name = {c["name"]: c for c in report["checks"]}
    assert by_name["catalog"]["status"] == "OK"
    assert by_name["store"]["status"] == "CRITICAL"  # a backup could not be written here
    assert "Read-only file system" in by_name["store"]["message"]
    assert checked.returncode == 2 and "Traceback" not in checked.stderr
    assert sorted(p.name for p in backup_dir.rglob("*")) == before


def test_backup_into_a_read_only_directory_fails_in_one_line_and_notifies(
    read_only_copy: tuple[dict[str, str], str], endpoint: Endpoint, tmp_path: Path
) -> None:
    env, _name = read_only_copy
    done = run(env, "backup", check=False)
    assert done.returncode == 1 and one_line(done.stderr), done.stderr
    assert f"cannot write to {env['DUMPLEDGER_BACKUP_DIR']} (it is read-only)" in done.stderr
    assert endpoint.bodies == []  # a person ran it: no notification

    # A scheduled run: its config comes from .env here (the directory is read-only).
    project = tmp_path / "project"
    project.mkdir()
    urls = json.dumps([endpoint.url])
    (project / ".env").write_text(
        f"DUMPLEDGER_NOTIFICATIONS__APPRISE_URLS='{urls}'\nDUMPLEDGER_NOTIFICATIONS__DESKTOP=false\n"
    )
    done = run_in(project, {**env, "DUMPLEDGER_VIA": "scheduler"}, "backup", "--type", "noon")
    assert done.returncode == 1 and one_line(done.stderr), done.stderr
    [sent] = endpoint.bodies
    assert sent["title"] == "dumpledger: backup auto_noon (not started) FAILED"
    assert f"cannot write to {env['DUMPLEDGER_BACKUP_DIR']} (it is read-only)" in sent["message"]


def run_in(cwd: Path, env: dict[str, str], *args: str) -> Any:
    import subprocess

    from tests.support import DUMPLEDGER

    repo = Path(__file__).resolve().parents[2]
    env = {**env, "PYTHONPATH": str(repo)}
    return subprocess.run(
        [*DUMPLEDGER, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )

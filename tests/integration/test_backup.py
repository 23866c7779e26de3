"""Backups of the Supabase-like database with real pg_dump, real store, real catalog."""

from __future__ import annotations

import gzip
import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from catalog.queries import blob_rows, get_backup, list_backups
from pgtools.binaries import find_program
from pgtools.errors import PgClientMissing
from tests.support import app_for, settings_for, store_files, wrapped_pg_dump
from usecases.backup.run import BackupRequest, run_backup
from usecases.backup.verify import verify_one
from usecases.config.settings import Settings
from usecases.context import App
from usecases.errors import BackupFailedError, BadInput


@pytest.fixture
def app(tmp_path: Path, supabase_db: Any) -> Iterator[App]:
    with app_for(settings_for(tmp_path, supabase_db.cluster)) as a:
        yield a


def test_manual_backup_has_every_artifact_verified(app: App, supabase_db: Any) -> None:
    result = run_backup(app, BackupRequest(name="before-migration"))
    assert result.name.startswith("before-migration_")
    kinds = [a["kind"] for a in result.artifacts]
    assert kinds == ["full", "globals", "schema", "data", "custom"]
    row = get_backup(app.catalog.engine, result.name)
    assert row["status"] == "completed" and row["verified"] is True
    full = app.settings.database_dir / f"{result.name}_full.sql.gz"  # the newest: a real file
    sql = gzip.decompress(full.read_bytes()).decode()
    for needle in (
        "CREATE POLICY",
        "auth.users",
        "CREATE TRIGGER",
        "CREATE VIEW",
        "CREATE EVENT TRIGGER",
        "SCHEMA extensions",
        "🚀",
    ):
        assert needle in sql, needle
    counts = result.metadata["row_counts"]
    actual = supabase_db.cluster.psql("SELECT count(*) FROM public.todos").strip()
    assert counts["public.todos"] == int(actual) > 0
    assert "auth.users" in counts and "storage.objects" in counts
    assert result.metadata["latest_migration"] == "20261102181500"
    versions = result.metadata["versions"]
    assert versions["server"].split(".")[0] == versions["pg_dump"].split(".")[0]


def app_codec(art: dict[str, Any]) -> Any:
    from store import Codec

    return Codec(art["codec"])


def test_files_users_know(app: App) -> None:
    result = run_backup(app, BackupRequest(backup_type="nightly"))
    db_dir = app.settings.database_dir
    link = db_dir / f"{result.name}_full.sql.gz"
    assert link.is_file() and not link.is_symlink()  # a real file, not a link into the store
    assert subprocess.run(["gunzip", "-t", str(link)], check=False).returncode == 0
    meta = json.loads((db_dir / f"{result.name}_metadata.json").read_text())
    for key in (
        "backup_name",
        "backup_type",
        "timestamp",
        "database",
        "files",
        "sizes",
        "retention_days",
        "created_by",
        "git_commit",
        "git_branch",
        "verified",
    ):
        assert key in meta, key
    assert meta["retention_days"] == 60 and meta["verified"] is True
    assert meta["digests"]["full"] == "sha256:" + result.artifacts[0]["digest"]
    assert "password" not in json.dumps(meta["database"])
    assert (db_dir / "latest_auto.sql.gz").samefile(link)  # hard links of one file
    assert (db_dir / "latest_full.sql.gz").samefile(link)
    assert (app.settings.backup_dir / "restore-without-dumpledger.py").is_file()
    for path in [app.settings.backup_dir, *app.settings.backup_dir.rglob("*")]:
        if path.is_symlink():
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
    logs = list(app.settings.logs_dir.glob("backup_*.log"))
    assert logs and result.name in logs[0].read_text()


def test_unchanged_database_adds_no_stored_bytes(app: App) -> None:
    first = run_backup(app, BackupRequest(backup_type="morning"))
    size_before = sum(p.stat().st_size for p in store_files(app))
    second = run_backup(app, BackupRequest(backup_type="noon"))
    assert second.stored_bytes_added == 0
    assert [a["digest"] for a in first.artifacts] == [a["digest"] for a in second.artifacts]
    assert sum(p.stat().st_size for p in store_files(app)) == size_before
    assert {b["refcount"] for b in blob_rows(app.catalog.engine)} == {2}


def test_flipped_byte_fails_verification_naming_the_file(app: App) -> None:
    result = run_backup(app, BackupRequest(backup_type="evening"))
    assert verify_one(app, result.name).ok
    art = result.artifacts[0]
    blob = app.store.path_for(art["digest"], app_codec(art))
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    os.chmod(blob, 0o600)
    blob.write_bytes(bytes(data))
    outcome = verify_one(app, result.name)
    assert not outcome.ok
    [failure] = outcome.failures()
    assert failure["kind"] == "full" and failure["file"] == str(blob)
    assert get_backup(app.catalog.engine, result.name)["last_verify_ok"] is False


@pytest.mark.parametrize("name", ["../escape", "a/b", ".hidden", "x" * 200, "semi;colon", ""])
def test_unsafe_names_are_refused_before_anything_happens(app: App, name: str) -> None:
    with pytest.raises(BadInput, match="unsafe backup name"):
        run_backup(app, BackupRequest(name=name))
    assert app.catalog.count() == 0


def test_server_down_is_recorded_as_failed(tmp_path: Path, supabase_db: Any) -> None:
    from dataclasses import replace

    s = settings_for(tmp_path, supabase_db.cluster)
    s = replace(s, database=replace(s.database, host="127.0.0.1", port=free_port()))
    with app_for(s) as a:
        with pytest.raises(BackupFailedError, match=r"cannot connect.*is the database running"):
            run_backup(a, BackupRequest())
        [row] = a.catalog.events(types=["BackupFailed"])
        assert "cannot connect" in row.payload["reason"]
        assert list(a.settings.store_dir.rglob("*.gz")) == []


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_pg_dump_older_than_server_is_refused_with_the_version_needed() -> None:
    with pytest.raises(PgClientMissing, match=r"pg_dump 99 or newer.*postgresql-client-99"):
        find_program("pg_dump", 99)


def test_killed_pg_dump_fails_the_backup_and_commits_no_blob(
    tmp_path: Path, supabase_db: Any, killing_bindir: Path
) -> None:
    from dataclasses import replace

    s = replace(settings_for(tmp_path, supabase_db.cluster), pg_bindir=str(killing_bindir))
    with app_for(s) as a:
        with pytest.raises(BackupFailedError, match="killed by signal 9"):
            run_backup(a, BackupRequest(backup_type="nightly"))
        assert a.catalog.verify_chain().ok
        assert [e.type for e in a.catalog.events()] == ["BackupStarted", "BackupFailed"]
        assert not [p for p in store_files(a) if "full" in p.name]
        assert not list(a.settings.store_dir.rglob(".tmp-*"))


def test_settings_are_never_the_password(tmp_path: Path, supabase_db: Any) -> None:
    s: Settings = settings_for(tmp_path, supabase_db.cluster)
    assert "password" not in repr(s.database)


@pytest.fixture
def killing_bindir(tmp_path: Path, supabase_db: Any) -> Path:
    """Real client programs, except that pg_dump's process is SIGKILLed after 2 kB of output."""
    return wrapped_pg_dump(
        Path(supabase_db.cluster.bindir), tmp_path / "bin", then="head -c 2000\nkill -9 $$"
    )


def test_latest_links_never_point_at_a_missing_dump(app: App) -> None:
    """After a recover from a target that lacked the newest backup's blob, say."""
    from store import Codec
    from tests.support import fabricate_backup
    from usecases.backup.run import refresh_latest

    for name, sql in (
        ("auto_nightly_20261124_010000", b"-- old\n"),
        ("new_20261124_020000", b"-- new\n"),
    ):
        fabricate_backup(app, name, sql, row_counts={}, backup_type="nightly")
    old, new = (
        get_backup(app.catalog.engine, n)["artifacts"][0]
        for n in ("auto_nightly_20261124_010000", "new_20261124_020000")
    )
    app.store.delete(new["digest"], Codec.GZIP)
    refresh_latest(app)
    db = app.settings.database_dir
    for latest in ("latest_full.sql.gz", "latest_auto.sql.gz"):
        assert gzip.decompress((db / latest).read_bytes()) == b"-- old\n"
    assert old["digest"] != new["digest"]
    assert not (db / "new_20261124_020000_full.sql.gz").exists()
    assert (db / "auto_nightly_20261124_010000_full.sql.gz").samefile(db / "latest_full.sql.gz")


def test_completed_backups_are_read_a_page_at_a_time_in_list_order(app: App) -> None:
    from catalog.read import BackupFilter
    from tests.support import fabricate_backup
    from usecases.backup.run import _completed_newest_first, refresh_latest

    names = ["auto_nightly_20261120_010000"] + [f"m{i}_20261124_0{i}0000" for i in range(5)]
    for name in names:
        fabricate_backup(app, name, name.encode(), row_counts={}, backup_type="nightly")
    listed = list_backups(app.catalog.engine, BackupFilter(status="completed"))
    for page in (1, 2, 4, 50):
        assert [b["name"] for b in _completed_newest_first(app, page=page)] == [
            b["name"] for b in listed
        ]
    refresh_latest(app)  # the one automatic backup is the oldest
    db = app.settings.database_dir
    assert gzip.decompress((db / "latest_auto.sql.gz").read_bytes()) == names[0].encode()
    assert gzip.decompress((db / "latest_full.sql.gz").read_bytes()) == names[-1].encode()
    # the newest backup's files and the newest automatic one's dump; no other dump file
    assert sorted(p.name for p in db.glob("*_full.sql.gz") if p.name != "latest_full.sql.gz") == [
        f"{names[0]}_full.sql.gz",
        f"{names[-1]}_full.sql.gz",
    ]


def test_a_name_taken_by_another_process_at_the_same_moment(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A timer and a person start backups in the same second: the name is checked again under
    the catalog's lock; an automatic backup takes the next name, a named one is refused."""
    import usecases.backup.run as backup_mod
    from catalog.events import BackupStarted

    check = backup_mod._refuse_existing

    def raced(app_: App, name: str) -> None:
        check(app_, name)  # free when looked at; then another process starts it
        app_.catalog.append(
            BackupStarted(
                backup=name,
                backup_type="nightly",
                hostname="another-host",
                pid=1,
                database={},
                artifacts=["full", "globals"],
                codec="gzip",
            ),
            actor="bob@another-host via scheduler",
        )

    monkeypatch.setattr(backup_mod, "_refuse_existing", raced)
    done = run_backup(app, BackupRequest(backup_type="nightly"))
    assert done.name.endswith("_2")
    theirs = get_backup(app.catalog.engine, done.name.removesuffix("_2"))
    assert (theirs["status"], theirs["hostname"]) == ("running", "another-host")
    assert get_backup(app.catalog.engine, done.name)["status"] == "completed"

    with pytest.raises(BadInput, match="'emergency-fix' already exists"):
        run_backup(app, BackupRequest(name="emergency-fix"))
    assert get_backup(app.catalog.engine, "emergency-fix")["hostname"] == "another-host"

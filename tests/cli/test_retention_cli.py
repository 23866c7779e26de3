"""`cleanup`, `delete`, `pin`, `unpin` and `retention` as a person or a script runs them."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tests.support import cluster_env
from tests.support import run_cli as run

DUMPLEDGER = [sys.executable, "-m", "cli"]


def test_pin_delete_and_cleanup_from_the_command_line(tmp_path: Path, supabase_db: Any) -> None:
    env = cluster_env(supabase_db.cluster, tmp_path / "backups")
    first = json.loads(run(env, "backup", "--type", "nightly", "--json").stdout)
    assert first["retention"]["deleted"] == []  # retention ran after the automatic backup
    second = json.loads(run(env, "backup", "keep-me", "--json").stdout)["name"]
    old = first["name"]

    refused = run(env, "delete", old, check=False)
    assert refused.returncode == 2
    assert "confirmation" in refused.stderr and "--yes" in refused.stderr

    run(env, "pin", old, "--reason", "audit 2026")
    rows = {r["name"]: r for r in json.loads(run(env, "list", "--json").stdout)}
    assert rows[old]["pinned"] is True and rows[old]["pin_reason"] == "audit 2026"
    assert "pinned" in run(env, "list").stdout
    pinned = run(env, "delete", old, "--yes", check=False)
    assert pinned.returncode == 2
    assert "pinned (audit 2026)" in pinned.stderr and "--force" in pinned.stderr
    explained = json.loads(run(env, "retention", "explain", old, "--json").stdout)
    assert explained["rule"] == "pinned"

    dry = json.loads(run(env, "cleanup", "0", "--dry-run", "--json").stdout)
    assert {d["name"]: d["action"] for d in dry["decisions"]} == {old: "keep", second: "keep"}
    run(env, "unpin", old)
    dry = json.loads(run(env, "cleanup", "0", "--dry-run", "--json").stdout)
    actions = {d["name"]: (d["action"], d["rule"]) for d in dry["decisions"]}
    assert actions[old] == ("remove", "expired")
    assert actions[second] == ("keep", "newest-verified")

    out = run(env, "cleanup", "0").stdout
    assert "1 backup(s) removed" in out
    rows = {
        r["name"]: r for r in json.loads(run(env, "list", "--status", "deleted", "--json").stdout)
    }
    assert rows[old]["deleted_rule"] == "expired"
    audit = json.loads(run(env, "audit", "--action", "delete", "--json").stdout)
    assert [a["backup"] for a in audit] == [old]

    sim = json.loads(run(env, "retention", "simulate", "--no-new-backups", "3650", "--json").stdout)
    assert [k["name"] for k in sim["kept"]] == [second]

    run(env, "delete", second, "--yes")
    assert json.loads(run(env, "list", "--json").stdout) == []
    assert not list((tmp_path / "backups" / "store").rglob("*.sql.gz"))


def test_a_broken_retention_policy_is_one_clear_line(tmp_path: Path, supabase_db: Any) -> None:
    env = cluster_env(supabase_db.cluster, tmp_path / "backups")
    (tmp_path / "backups").mkdir()
    (tmp_path / "backups" / "backup-config.json").write_text(
        json.dumps({"retention": {"auto": {"keep_within": 30}}})
    )
    done = run(env, "cleanup", "--dry-run", check=False)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "retention: auto: unknown key(s) keep_within" in done.stderr


def test_retention_that_fails_after_an_automatic_backup_does_not_undo_it(
    tmp_path: Path, supabase_db: Any
) -> None:
    """The backup is done and verified; a retention step that fails (here: an old backup's
    metadata file is a directory, so it cannot be removed) is one line, not a traceback."""
    from datetime import UTC, datetime, timedelta

    from tests.support import fabricate_backup, settings_for
    from usecases.context import App

    old = datetime.now(UTC) - timedelta(days=90)
    name = f"auto_nightly_{old:%Y%m%d_%H%M%S}"
    with App.open(settings_for(tmp_path, supabase_db.cluster), clock=lambda: old) as app:
        fabricate_backup(app, name, b"-- old\n", row_counts={}, backup_type="nightly")
        meta = app.settings.database_dir / f"{name}_metadata.json"
    meta.unlink(missing_ok=True)
    meta.mkdir(parents=True)  # unlink() of a directory fails, even as root
    env = cluster_env(supabase_db.cluster, tmp_path / "backups")
    done = run(env, "backup", "--type", "nightly", "--json", check=False)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "the backup completed, but retention did not finish" in done.stderr
    new = json.loads(done.stdout)["name"]
    listed = {b["name"]: b["status"] for b in json.loads(run(env, "list", "--json").stdout)}
    assert listed[new] == "completed"


def test_files_a_deletion_could_not_remove_go_with_the_next_cleanup(
    tmp_path: Path, supabase_db: Any
) -> None:
    """BackupDeleted stands when a file of the backup cannot be removed; cleanup says which,
    exits 1, and removes it on a later run once the cause is gone."""
    from datetime import UTC, datetime, timedelta

    from tests.support import fabricate_backup, settings_for
    from usecases.context import App

    old = datetime.now(UTC) - timedelta(days=90)
    names = [f"auto_nightly_{old + timedelta(hours=h):%Y%m%d_%H%M%S}" for h in (0, 1)]
    from usecases.backup.run import refresh_views

    with App.open(settings_for(tmp_path, supabase_db.cluster), clock=lambda: old) as app:
        database = app.settings.database_dir
        for name in names:
            fabricate_backup(app, name, name.encode(), row_counts={}, backup_type="nightly")
            refresh_views(app, name)
    assert len(list(database.glob(f"{names[1]}_*"))) == 2  # the newest's full dump, metadata
    stuck = database / f"{names[0]}_metadata.json"
    stuck.unlink()
    (stuck / "in-the-way").mkdir(parents=True)  # unlink() of a directory fails, even as root
    (database / "notes_metadata.json").write_text("a user's file: no backup of that name")
    env = cluster_env(supabase_db.cluster, tmp_path / "backups")
    run(env, "backup", "keep-me")  # stays: the newest verified backup

    done = run(env, "cleanup", "0", "--json", check=False)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and f"cannot remove {stuck}" in done.stderr
    report = json.loads(done.stdout)
    assert sorted(report["deleted"]) == names
    assert report["files_not_removed"] == [f"{stuck}: Is a directory"]
    assert not list(database.glob(f"{names[1]}_*"))  # the other backup's files went
    assert {p.name for p in database.glob(f"{names[0]}_*")} == {stuck.name}

    again = run(env, "cleanup", "0", "--json", check=False)  # still in the way: said again
    assert again.returncode == 1 and json.loads(again.stdout)["deleted"] == []

    (stuck / "in-the-way").rmdir()
    stuck.rmdir()
    stuck.write_text("{}")  # the cause is fixed; the stale file is still there
    fixed = run(env, "cleanup", "0", "--json")
    assert json.loads(fixed.stdout)["files_not_removed"] == []
    assert not stuck.exists()
    assert (database / "notes_metadata.json").exists()  # not a deleted backup's: kept
    assert [p.name for p in database.glob("keep-me_*_full.sql.gz")]

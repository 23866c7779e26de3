"""Cleanup, delete, pin and blob collection against a real store, catalog and PostgreSQL."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from catalog.queries import blob_rows, get_backup, list_backups
from store import Codec
from tests.support import app_for, cluster_env, fabricate_backup, settings_for
from usecases.backup.run import BackupRequest, refresh_views, run_backup
from usecases.context import App
from usecases.errors import BadInput
from usecases.retention.cleanup import cleanup, delete_backup, explain, pin, simulate, unpin

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.fixture
def app(tmp_path: Path, supabase_db: Any) -> Iterator[App]:
    with app_for(settings_for(tmp_path, supabase_db.cluster)) as a:
        yield a


def blob_exists(app: App, art: dict[str, Any]) -> bool:
    return app.store.path_for(art["digest"], Codec(art["codec"])).is_file()


def test_a_shared_blob_stays_until_the_last_backup_using_it_is_deleted(app: App) -> None:
    first = run_backup(app, BackupRequest(name="one"))
    second = run_backup(app, BackupRequest(name="two"))
    shared = [a for a in second.artifacts if not a["created"]]
    assert shared, "an unchanged database must dedupe"
    delete_backup(app, first.name)
    assert all(blob_exists(app, a) for a in second.artifacts)
    assert not (app.settings.database_dir / f"{first.name}_metadata.json").exists()
    assert get_backup(app.catalog.engine, first.name)["deleted_rule"] == "person"
    report = delete_backup(app, second.name)
    assert {c.digest for c in report.collected} >= {a["digest"] for a in shared}
    assert not any(blob_exists(app, a) for a in second.artifacts)
    assert blob_rows(app.catalog.engine) == []
    assert not list(app.settings.database_dir.glob("latest_*"))
    assert app.catalog.verify_chain().ok


def test_pinned_backup_is_refused_without_force_and_kept_by_cleanup(app: App) -> None:
    b = run_backup(app, BackupRequest(backup_type="nightly"))
    newer = run_backup(app, BackupRequest(backup_type="nightly"))
    pin(app, b.name, "quarterly audit")
    with pytest.raises(BadInput, match="pinned"):
        delete_backup(app, b.name)
    report = cleanup(app, days=0)
    assert b.name not in report.deleted
    assert explain(app, b.name).rule == "pinned"
    assert explain(app, newer.name).rule == "newest-verified"
    unpin(app, b.name)
    assert explain(app, b.name, days=0).action == "remove"
    report = cleanup(app, days=0)
    assert report.deleted == [b.name]
    assert explain(app, b.name).action == "deleted"
    assert explain(app, b.name).rule == "expired"
    assert [d.name for d in simulate(app, 10_000).decisions if d.keep] == [newer.name]


def test_cleanup_days_over_the_old_systems_history(tmp_path: Path, supabase_db: Any) -> None:
    """240 automatic backups over 60 days plus manual and emergency ones; `cleanup 30`."""
    clock = {"now": NOW}
    settings = settings_for(tmp_path, supabase_db.cluster)
    with App.open(settings, clock=lambda: clock["now"]) as app:
        ages: dict[str, timedelta] = {}
        for i in range(240):
            ages[f"auto_nightly_{i:03d}"] = timedelta(hours=6 * i, minutes=1)
        for i in range(4):
            ages[f"manual_{i}"] = timedelta(days=20 * i + 3)
            ages[f"emergency-{i}"] = timedelta(days=25 * i + 2)
        for name, age in sorted(ages.items(), key=lambda kv: -kv[1]):
            clock["now"] = NOW - age
            record_backup(app, name)
        clock["now"] = NOW
        dry = cleanup(app, days=30, dry_run=True)
        expected = {n for n, age in ages.items() if n.startswith("auto_") and age > timedelta(30)}
        assert len(expected) == 120
        assert {d.name for d in dry.removals} == expected
        report = cleanup(app, days=30)
        assert set(report.deleted) == expected
        freed = report.collect.freed_bytes
        assert dry.would_free_bytes == freed > 0  # the dry run sized exactly what went
        left = {b["name"] for b in list_backups(app.catalog.engine)}
        assert left == set(ages) - expected
        assert len(report.collect.collected) == 120  # each had a blob of its own
        for name in expected:
            assert not (app.settings.database_dir / f"{name}_full.sql.gz").exists()
        assert (app.settings.database_dir / "auto_nightly_000_full.sql.gz").exists()
        latest = app.settings.database_dir / "latest_auto.sql.gz"
        assert latest.samefile(app.settings.database_dir / "auto_nightly_000_full.sql.gz")
        assert cleanup(app, days=30).deleted == []


def record_backup(app: App, name: str) -> None:
    btype = "nightly" if name.startswith("auto_") else name.split("_")[0].split("-")[0]
    fabricate_backup(app, name, f"-- dump of {name}\n".encode(), row_counts={}, backup_type=btype)
    refresh_views(app, name)


def tree_digest(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_symlink():
            out[str(p.relative_to(root))] = "link:" + os.readlink(p)
        elif p.is_file():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def test_dry_run_changes_nothing(tmp_path: Path, supabase_db: Any) -> None:
    env = cluster_env(supabase_db.cluster, tmp_path / "backups")
    cli = [sys.executable, "-m", "cli"]
    for _ in range(3):
        subprocess.run([*cli, "backup", "--type", "nightly"], env=env, check=True, cwd=ROOT)
    before = tree_digest(tmp_path / "backups")
    done = subprocess.run(
        [*cli, "cleanup", "0", "--dry-run"], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "would be removed" in done.stdout
    assert done.stdout.count("remove") >= 2
    assert tree_digest(tmp_path / "backups") == before


RACE_SCRIPT = textwrap.dedent(
    """
    import sys, psycopg
    from pathlib import Path
    from usecases.config.settings import load_settings
    from usecases.context import App
    from usecases.backup.run import BackupRequest, run_backup
    from usecases.retention.cleanup import cleanup

    role, rounds, stop_file = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    settings = load_settings()
    done = 0
    with App.open(settings) as app:
        if role == "backup":
            for i in range(rounds):
                with psycopg.connect(**app.settings.database.connect_kwargs()) as conn:
                    conn.execute("UPDATE t SET v = %s", (i % 3,))  # contents recur: digests too
                run_backup(app, BackupRequest(backup_type="nightly"))
                done += 1
        else:
            while done < rounds or not stop_file.exists():
                cleanup(app, days=0)
                done += 1
    print(done)
    """
)


def test_backups_and_cleanups_racing_never_lose_a_referenced_blob(
    tmp_path: Path, supabase_db: Any
) -> None:
    cluster = supabase_db.cluster
    cluster.psql("DROP DATABASE IF EXISTS race")
    cluster.psql("CREATE DATABASE race OWNER postgres")
    cluster.psql(
        "CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 0); "
        "ALTER TABLE t OWNER TO postgres",
        dbname="race",
    )
    env = {**cluster_env(cluster, tmp_path / "backups"), "SUPABASE_DB_NAME": "race"}
    env["PYTHONPATH"] = str(ROOT)
    script = tmp_path / "race.py"
    script.write_text(RACE_SCRIPT)
    stop = tmp_path / "stop"
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), role, "50", str(stop)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for role in ("backup", "cleanup")
    ]
    backup_out, backup_err = procs[0].communicate(timeout=900)
    stop.touch()  # also when the backup loop died: the cleanup loop must end
    cleanup_out, cleanup_err = procs[1].communicate(timeout=300)
    assert procs[0].returncode == 0, backup_err
    assert procs[1].returncode == 0, cleanup_err
    assert int(backup_out.strip()) == 50
    assert int(cleanup_out.strip()) >= 50
    base = settings_for(tmp_path, cluster)
    settings = dataclasses.replace(base, database=dataclasses.replace(base.database, dbname="race"))
    with App.open(settings) as app:
        completed = list_backups(app.catalog.engine)
        for b in completed:
            for art in get_backup(app.catalog.engine, b["name"])["artifacts"]:
                assert blob_exists(app, art), f"{b['name']} lost {art['kind']}"
        collected = app.catalog.events(types=["BlobCollected"])
        deleted = app.catalog.events(types=["BackupDeleted"])
        assert len(deleted) >= 40
        assert collected, "the race never collected anything: it tested nothing"
    done = subprocess.run(
        [sys.executable, "-m", "cli", "verify", "--all"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    cluster.psql("DROP DATABASE race")

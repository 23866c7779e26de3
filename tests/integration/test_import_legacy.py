"""`dumpledger import-legacy` on a directory laid out as the old scripts left it, with real
dumps of the Supabase-like fixture: metadata kept, a truncated gzip refused whole, a second run
importing nothing, verify and restore working on what was imported."""

from __future__ import annotations

import gzip
import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from catalog import Catalog, UnknownBackup
from catalog.queries import blob_rows, get_backup, list_backups
from store import LocalStore
from tests.compare import checksums
from tests.conftest import SupabaseDb
from tests.support import app_for, cluster_env, run_cli, settings_for
from usecases.retention.cleanup import backup_views

AUTO = "auto_morning_20251115_060000"
MANUAL = "backup_20251116_101500"
EMERGENCY = "emergency-fix_20251117_030000"
PRE = "pre-upgrade_20251119_120000"
BROKEN = "auto_nightly_20251118_235900"
TARGET_DB = "legacy_restored"


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(env, *args, check=False)  # the tests look at the exit code themselves


def pg_dump(db: SupabaseDb, *args: str) -> bytes:
    done = subprocess.run(
        [str(db.cluster.bindir / "pg_dump"), *args],
        env=db.cluster.env(user="supabase_admin"),
        capture_output=True,
        check=True,
    )
    return done.stdout


def write_metadata(path: Path, doc: dict[str, Any]) -> None:
    path.write_text(json.dumps(doc, indent=2))


def old_backup_dir(root: Path, db: SupabaseDb) -> Path:
    """As the old scripts left it: gzip -9 dumps, metadata JSON, a latest_ link, a log file.

    The dumps differ (plain, --column-inserts, --inserts) so each backup has its own blob.
    """
    d = root / "old" / "database"
    d.mkdir(parents=True)
    plain = pg_dump(db)
    (d / f"{AUTO}_full.sql.gz").write_bytes(gzip.compress(plain, 9))
    write_metadata(
        d / f"{AUTO}_metadata.json",
        {
            "backup_name": AUTO,
            "backup_type": "morning",
            "timestamp": "2025-11-15T06:00:03+01:00",
            "database": {"host": "127.0.0.1", "port": 54322, "name": "postgres"},
            "database_url": "postgresql://postgres:hunter2@127.0.0.1:54322/postgres",
            "db_password": "hunter2",
            "git_commit": "a1b2c3d4e5f6a7b8c9d0a1b2c3d4e5f6a7b8c9d0",
            "git_branch": "main",
            "created_by": "alice",
            "sizes": {"full": "1.2M"},
            "verified": True,
            "retention_days": 60,
        },
    )
    (d / f"{MANUAL}_full.sql.gz").write_bytes(gzip.compress(pg_dump(db, "--column-inserts"), 9))
    (d / f"{MANUAL}.dump").write_bytes(pg_dump(db, "--format=custom"))
    write_metadata(
        d / f"{MANUAL}_metadata.json",
        {
            "backup_name": MANUAL,
            "backup_type": "manual",
            "timestamp": "20251116_101500",
            "git_commit": "ffffeeee",
            "git_branch": "feature/x",
            "created_by": "bob",
            "verified": "false",
            "unknown_field": [1, 2, 3],
        },
    )
    (d / f"{EMERGENCY}_full.sql.gz").write_bytes(gzip.compress(pg_dump(db, "--inserts"), 9))
    (d / f"{PRE}_full.sql").write_bytes(plain)  # plain SQL, same content as AUTO's
    whole = gzip.compress(pg_dump(db, "--no-comments"), 9)
    (d / f"{BROKEN}_full.sql.gz").write_bytes(whole[: len(whole) // 2])
    (d / "latest_full.sql.gz").symlink_to(f"{AUTO}_full.sql.gz")
    (d / "backup.log").write_text("old log\n")
    return d


@pytest.fixture
def env(tmp_path: Path, supabase_db: SupabaseDb) -> dict[str, str]:
    e = cluster_env(supabase_db.cluster, tmp_path / "backups")
    e["SUPABASE_DB_USER"] = "supabase_admin"
    return e


def open_catalog(env: dict[str, str]) -> Catalog:
    return Catalog.open(f"sqlite:///{env['DUMPLEDGER_BACKUP_DIR']}/catalog.db")


def test_import_of_the_old_scripts_directory(
    tmp_path: Path, supabase_db: SupabaseDb, env: dict[str, str]
) -> None:
    old = old_backup_dir(tmp_path, supabase_db)

    preview = run(env, "import-legacy", str(old), "--timezone", "Europe/Berlin", "--dry-run")
    assert preview.returncode == 1, preview.stderr
    assert "would import" in preview.stdout and f"{BROKEN} not imported" in preview.stderr
    with open_catalog(env) as cat:
        assert cat.count() == 0  # a dry run appends nothing

    done = run(env, "import-legacy", str(old), "--timezone", "Europe/Berlin", "--json")
    assert done.returncode == 1, done.stderr  # the truncated one failed; the rest imported
    assert done.stderr.count("not imported") == 1 and BROKEN in done.stderr
    report = {o["backup"]: o for o in json.loads(done.stdout)["backups"]}
    assert {n: o["status"] for n, o in report.items()} == {
        AUTO: "imported",
        MANUAL: "imported",
        EMERGENCY: "imported",
        PRE: "imported",
        BROKEN: "failed",
    }
    assert "damaged" in report[BROKEN]["reason"] and "truncated" in report[BROKEN]["reason"]

    with open_catalog(env) as cat:
        rows = {b["name"]: b for b in list_backups(cat.engine)}
        assert set(rows) == {AUTO, MANUAL, EMERGENCY, PRE}
        assert {n: (b["backup_type"], b["status"]) for n, b in rows.items()} == {
            AUTO: ("morning", "completed"),
            MANUAL: ("manual", "completed"),
            EMERGENCY: ("emergency", "completed"),
            PRE: ("pre", "completed"),
        }
        # original times: metadata (with its offset), metadata without one, the name (Berlin)
        assert rows[AUTO]["started_at"] == "2025-11-15T05:00:03.000000Z"
        assert rows[MANUAL]["started_at"] == "2025-11-16T09:15:00.000000Z"
        assert rows[EMERGENCY]["started_at"] == "2025-11-17T02:00:00.000000Z"
        assert (rows[AUTO]["git_commit"], rows[AUTO]["git_branch"]) == (
            "a1b2c3d4e5f6a7b8c9d0a1b2c3d4e5f6a7b8c9d0",
            "main",
        )
        assert (rows[MANUAL]["git_commit"], rows[MANUAL]["git_branch"]) == ("ffffeeee", "feature/x")
        assert rows[EMERGENCY]["git_commit"] is None
        assert (rows[AUTO]["actor"], rows[MANUAL]["actor"]) == ("alice", "bob")
        assert [rows[n]["verified"] for n in (AUTO, MANUAL, EMERGENCY)] == [True, False, False]
        assert all(b["last_verify_ok"] is True for b in rows.values())  # read back on import
        manual = get_backup(cat.engine, MANUAL)
        assert [a["kind"] for a in manual["artifacts"]] == ["custom", "full"]
        assert manual["metadata"]["legacy"]["unknown_field"] == [1, 2, 3]
        with pytest.raises(UnknownBackup):
            get_backup(cat.engine, BROKEN)
        assert cat.events(subject=BROKEN) == []
        assert [e.type for e in cat.events()] == ["BackupImported"] * 4
        log_text = json.dumps([e.payload for e in cat.events()])
        assert "hunter2" not in log_text  # secrets in old metadata never reach the log
        # no blob of the truncated dump: every stored file is one the catalog references
        blobs = blob_rows(cat.engine)
        store = LocalStore(Path(env["DUMPLEDGER_BACKUP_DIR"]) / "store")
        stored = sorted(digest for digest, _, _ in store.iter_blobs())
        assert stored == sorted(b["digest"] for b in blobs)
        assert len(blobs) == 4  # AUTO and PRE hold the same dump: stored once
        refs = {b["digest"]: b["refcount"] for b in blobs}
        assert refs[get_backup(cat.engine, AUTO)["artifacts"][0]["digest"]] == 2
        before = cat.snapshot()
        cat.rebuild()
        assert cat.snapshot() == before

    with app_for(settings_for(tmp_path, supabase_db.cluster)) as app:
        judged = {v.name: v for v in backup_views(app)}  # what retention evaluates
    assert judged[AUTO].started_at == datetime(2025, 11, 15, 5, 0, 3, tzinfo=UTC)
    assert judged[AUTO].status == "completed" and judged[AUTO].verified
    assert not judged[EMERGENCY].verified  # no metadata: not verified by the old scripts

    views = Path(env["DUMPLEDGER_BACKUP_DIR"]) / "database"
    meta = json.loads((views / f"{AUTO}_metadata.json").read_text())
    assert meta["timestamp"] == "2025-11-15T05:00:03.000000Z" and meta["created_by"] == "alice"
    assert not list(views.glob(f"{BROKEN}*"))
    assert (
        gzip.decompress((views / f"{AUTO}_full.sql.gz").read_bytes())
        == (old / f"{PRE}_full.sql").read_bytes()
    )

    verified = run(env, "verify", AUTO, MANUAL, EMERGENCY, PRE)
    assert verified.returncode == 0, verified.stderr
    drilled = run(env, "drill", EMERGENCY, "--json")  # no row counts recorded: rows are read
    assert drilled.returncode == 0, drilled.stderr
    assert json.loads(drilled.stdout)["tables_checked"] > 0

    with open_catalog(env) as cat:
        count = cat.count()
    again = run(env, "import-legacy", str(old), "--timezone", "Europe/Berlin", "--json")
    assert again.returncode == 1  # the truncated file still fails
    statuses = {o["backup"]: o["status"] for o in json.loads(again.stdout)["backups"]}
    assert statuses == {
        AUTO: "skipped",
        MANUAL: "skipped",
        EMERGENCY: "skipped",
        PRE: "skipped",
    } | {BROKEN: "failed"}
    with open_catalog(env) as cat:
        assert cat.count() == count  # nothing new

    try:
        restored = run(env, "restore", MANUAL, "--target-db", TARGET_DB, "--yes")
        assert restored.returncode == 0, restored.stderr
        cluster = supabase_db.cluster
        assert checksums(cluster, TARGET_DB) == checksums(cluster)
    finally:
        supabase_db.cluster.psql(f"DROP DATABASE IF EXISTS {TARGET_DB} WITH (FORCE)")


def test_conflicts_unsafe_names_and_empty_groups_fail_the_others_import(
    tmp_path: Path, supabase_db: SupabaseDb, env: dict[str, str]
) -> None:
    old = tmp_path / "old"
    old.mkdir()
    plain = pg_dump(supabase_db)
    (old / "backup_20251101_000000_full.sql").write_bytes(plain)
    (old / "bad name_20251101_000000_full.sql").write_bytes(plain)
    (old / "orphan_20251101_000000_metadata.json").write_text("{}")
    # a good full dump beside a custom dump pg_restore cannot decode: none of it is stored
    (old / "half_20251102_000000_full.sql").write_bytes(pg_dump(supabase_db, "--column-inserts"))
    (old / "half_20251102_000000.dump").write_bytes(b"PGDMP" + b"\x00" * 200)
    first = run(env, "import-legacy", str(old), "--timezone", "UTC")
    assert first.returncode == 1
    assert "unsafe backup name" in first.stderr and "no full dump" in first.stderr
    assert "half_20251102_000000 not imported: half_20251102_000000.dump" in first.stderr
    with open_catalog(env) as cat:
        assert [b["name"] for b in list_backups(cat.engine)] == ["backup_20251101_000000"]
        store = LocalStore(Path(env["DUMPLEDGER_BACKUP_DIR"]) / "store")
        stored = [digest for digest, _, _ in store.iter_blobs()]
        assert stored == [b["digest"] for b in blob_rows(cat.engine)]
        assert get_backup(cat.engine, "backup_20251101_000000")["started_at"].startswith(
            "2025-11-01T00:00:00"
        )

    # the same name with other content is a conflict, reported, and the catalog keeps its own
    other = tmp_path / "other"
    other.mkdir()
    (other / "backup_20251101_000000_full.sql").write_bytes(pg_dump(supabase_db, "--inserts"))
    conflict = run(env, "import-legacy", str(other), "--json")
    assert conflict.returncode == 1
    (outcome,) = json.loads(conflict.stdout)["backups"]
    assert outcome["status"] == "failed" and "conflict" in outcome["reason"]
    with open_catalog(env) as cat:
        assert cat.count() == 1

    missing = run(env, "import-legacy", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "is not a directory" in missing.stderr
    zone = run(env, "import-legacy", str(old), "--timezone", "Mars/Olympus_Mons")
    assert zone.returncode == 2 and "unknown time zone" in zone.stderr


def test_an_encrypted_store_imports_old_dumps_sealed(
    tmp_path: Path, supabase_db: SupabaseDb
) -> None:
    """With encryption.recipients set, imported dumps go into sealed packs as a backup taken
    now would: nothing of them readable in the store (an offsite push moves only age files),
    their backups name who decrypts them, and they read back with the identity. Before: they
    were stored plain, whatever the configuration said."""
    from tests.age_keys import age_keys
    from tests.integration.test_encryption import encrypted_settings
    from usecases.backup.export import plain_stream
    from usecases.backup.legacy import ImportRequest, import_legacy
    from usecases.backup.verify import verify_one
    from usecases.integrity import verify_catalog

    old = old_backup_dir(tmp_path, supabase_db)
    keys = age_keys(tmp_path / "keys")
    settings = encrypted_settings(tmp_path, supabase_db.cluster, keys)
    with app_for(settings) as app:
        report = import_legacy(app, ImportRequest(directory=old, tz=UTC))
        imported = [o.backup for o in report.outcomes if o.status == "imported"]
        assert AUTO in imported and MANUAL in imported, report.to_json()
        packs = sorted((settings.store_dir / "packs").rglob("*.pack"))
        assert packs and all(p.read_bytes().startswith(b"age-encryption.org/v1") for p in packs)
        marker = b"CREATE TABLE public.todos"
        assert not any(marker in p.read_bytes() for p in packs)
        for name in imported:
            backup = get_backup(app.catalog.engine, name)
            assert backup["metadata"]["encryption"]["recipients"] == list(keys.recipients)
            assert all(a["codec"].endswith("+age") for a in backup["artifacts"]), backup
            assert verify_one(app, name, read_data=True).ok
        with plain_stream(app, AUTO, "full") as chunks:
            assert b"".join(chunks) == gzip.decompress((old / f"{AUTO}_full.sql.gz").read_bytes())
        plain_files = [
            p.name
            for p in settings.database_dir.iterdir()
            if p.name.endswith((".sql.gz", ".dump", ".sql"))
        ]
        assert plain_files == []  # the newest backup's files are .age too
        assert verify_catalog(app).ok

"""`dumpledger store migrate` by real processes: SIGKILLed at each step (chunked form stored,
BlobMigrated recorded, whole blob removed), every backup still verifies and gives the same
dump, and the next run finishes the job; the dry run and --json (issue 17, item 4)."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from store.chunked.crashpoint import VARIABLE
from tests.cli.test_pack_collection_cli import run_bytes
from tests.support import DUMPLEDGER, app_for, catalog_of, cluster_env, settings_for
from tests.support import run_cli as run
from usecases.backup.run import BackupRequest, run_backup

Template = tuple[Path, dict[str, dict[str, str]]]

# Each step of usecases/storage/migrate.py, per blob, in the order a run reaches them.
POINTS = [
    "migrate-chunked",  # the first blob stored chunked beside the whole one, read back
    "migrate-recorded",  # its BlobMigrated appended; the whole blob still there
    "migrate-removed",  # its whole blob removed; the others not converted yet
    "migrate-chunked:2",  # the second blob chunked, the first one done
]


def whole_blobs(backup_dir: Path) -> list[Path]:
    return sorted(p for p in (backup_dir / "store" / "sha256").rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, supabase_db: Any) -> Template:
    """A backup directory with two backups stored whole (the first layout), and the sha256 of
    each backup's dumps."""
    from store import LocalStore

    backup_dir = tmp_path_factory.mktemp("template") / "backups"
    settings = settings_for(backup_dir.parent, supabase_db.cluster, user="supabase_admin")
    names = []
    with app_for(settings) as app:
        app.store = LocalStore(app.settings.store_dir, chunked=False)
        for name in ("first", "second"):
            req = BackupRequest(name=name, all_formats=name == "second")
            names.append(run_backup(app, req).name)
    env = env_for(supabase_db, backup_dir)
    sums = {n: _sums(env, n) for n in names}
    return backup_dir, sums


def env_for(supabase_db: Any, backup_dir: Path) -> dict[str, str]:
    """The bootstrap superuser, as on Supabase: a drill or restore creates roles."""
    return cluster_env(supabase_db.cluster, backup_dir) | {"SUPABASE_DB_USER": "supabase_admin"}


def _sums(env: dict[str, str], name: str) -> dict[str, str]:
    info = json.loads(run(env, "info", name, "--json").stdout)
    kinds = [a["kind"] for a in info["artifacts"]]
    return {
        k: hashlib.sha256(run_bytes(env, "cat", name, "--artifact", k)).hexdigest() for k in kinds
    }


def _all_restorable(env: dict[str, str], sums: dict[str, dict[str, str]], out: Path) -> None:
    run(env, "verify", "--all", "--read-data")
    for name, kinds in sums.items():
        assert _sums(env, name) == kinds, name
        dest = out / f"{name}.sql.gz"  # the file form, checked against the catalog's record
        run(env, "export", name, "-o", str(dest))
        assert hashlib.sha256(gzip.decompress(dest.read_bytes())).hexdigest() == kinds["full"]
    run(env, "catalog", "verify")
    # Read as the catalog records it: nothing had to be accepted as another copy.
    with catalog_of(env) as catalog:
        assert catalog.events(types=["BlobRepaired"]) == []


def test_dry_run_counts_what_the_run_converts(
    template: Template, tmp_path: Path, supabase_db: Any
) -> None:
    backup_dir = tmp_path / "backups"
    shutil.copytree(template[0], backup_dir)
    env = env_for(supabase_db, backup_dir)
    blobs = whole_blobs(backup_dir)
    dry = json.loads(run(env, "store", "migrate", "--dry-run", "--json").stdout)
    assert whole_blobs(backup_dir) == blobs
    assert dry["counts"]["todo"] == len(blobs) and dry["freed_bytes_is_estimate"]
    assert dry["whole_bytes"] == sum(p.stat().st_size for p in blobs)
    text = run(env, "store", "migrate", "--dry-run").stdout
    assert f"would convert {len(blobs)} whole blob(s)" in text and "estimate" in text
    real = json.loads(run(env, "store", "migrate", "--json").stdout)
    assert real["counts"]["converted"] == dry["counts"]["todo"]
    assert real["whole_bytes"] == dry["whole_bytes"]
    assert [b["digest"] for b in real["blobs"]] == [b["digest"] for b in dry["blobs"]]
    assert whole_blobs(backup_dir) == []
    _all_restorable(env, template[1], tmp_path)
    again = json.loads(run(env, "store", "migrate", "--json").stdout)
    assert again["blobs"] == []


@pytest.mark.parametrize("point", POINTS)
def test_a_migrate_killed_at_each_step_loses_nothing_and_the_next_one_finishes(
    point: str, template: Template, tmp_path: Path, supabase_db: Any
) -> None:
    backup_dir = tmp_path / "backups"
    shutil.copytree(template[0], backup_dir)
    env = env_for(supabase_db, backup_dir)
    blobs = whole_blobs(backup_dir)
    killed = run(env | {VARIABLE: point}, "store", "migrate", check=False)
    assert killed.returncode == -9, killed.stderr  # the step was reached, and it died there
    left = whole_blobs(backup_dir)
    assert left and len(left) >= len(blobs) - 2  # the job was not finished
    _all_restorable(env, template[1], tmp_path)
    done = json.loads(run(env, "store", "migrate", "--json").stdout)
    assert done["counts"]["damaged"] == 0 and done["counts"]["skipped"] == 0
    assert whole_blobs(backup_dir) == []
    _all_restorable(env, template[1], tmp_path)
    latest = backup_dir / "database" / "latest_full.sql.gz"
    assert latest.is_file() and not latest.is_symlink()


def test_every_command_works_on_migrated_backups(
    template: Template, tmp_path: Path, supabase_db: Any
) -> None:
    """Pushed whole, migrated, pushed again: info, retention explain, report, drill, restore
    (plain and custom -j), export; a recover from the target alone (which holds both forms)
    gives backups that verify and give the same dumps; deleting a migrated backup frees its
    own chunked artifacts and the other stays restorable."""
    backup_dir = tmp_path / "backups"
    shutil.copytree(template[0], backup_dir)
    env = env_for(supabase_db, backup_dir)
    first, second = sorted(template[1])
    drive = tmp_path / "drive"
    run(env, "push", str(drive))
    run(env, "store", "migrate")
    assert whole_blobs(backup_dir) == []
    pushed = json.loads(run(env, "push", str(drive), "--json").stdout)
    assert pushed["backups"] == [first, second] and pushed["bytes_sent"] > 0
    run(env, "verify", "--target", str(drive))

    info = json.loads(run(env, "info", second, "--json").stdout)
    assert {a["stored_sha256"] for a in info["artifacts"]}.isdisjoint(
        {p.name.split(".")[0] for p in whole_blobs(template[0])}
    )
    explained = json.loads(run(env, "retention", "explain", first, "--json").stdout)
    assert explained
    run(env, "report", "--json", "--no-check")
    drill = run(env, "drill", second, "--json", check=False)
    assert json.loads(drill.stdout)["ok"], drill.stdout
    for args in ((), ("--artifact", "custom", "-j", "2")):
        run(env, "restore", second, "--target-db", f"migrated_{len(args)}", "--yes", *args)
    tables = supabase_db.cluster.psql(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", dbname="migrated_4"
    )
    assert int(tables) > 0

    recovered = tmp_path / "recovered" / "backups"
    renv = env_for(supabase_db, recovered)
    run(renv, "recover", "--from", str(drive))
    run(renv, "verify", "--all", "--read-data")
    for name, kinds in template[1].items():
        assert _sums(renv, name) == kinds, name

    deleted = json.loads(run(env, "delete", second, "--yes", "--json").stdout)
    assert deleted["freed_bytes"] > 0  # its custom, data and schema dumps
    _all_restorable(env, {first: template[1][first]}, tmp_path)


def test_backups_and_cleanups_during_a_migrate_lose_nothing(
    template: Template, tmp_path: Path, supabase_db: Any
) -> None:
    """A backup and a cleanup started while migrate runs take the same store locks: each
    finishes, nothing is lost, and a migrate that could not get the store says so (exit 1)
    and the next one finishes."""
    backup_dir = tmp_path / "backups"
    shutil.copytree(template[0], backup_dir)
    env = env_for(supabase_db, backup_dir)
    argvs = [
        ["store", "migrate", "--json"],
        ["backup", "during-a", "--json"],
        ["cleanup", "--json"],
        ["backup", "during-b", "--json"],
    ]
    procs = [
        subprocess.Popen(
            [*DUMPLEDGER, *argv],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for argv in argvs
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    codes = [p.returncode for p in procs]
    assert codes[1:] == [0, 0, 0], outs
    assert outs[0][0].strip(), outs[0][1]  # its JSON, or why not
    migrated = json.loads(outs[0][0])
    assert codes[0] == 0 or migrated["postponed"], outs[0]
    assert migrated["counts"]["damaged"] == 0
    run(env, "store", "migrate")
    assert whole_blobs(backup_dir) == []
    new = [json.loads(o[0])["name"] for o in (outs[1], outs[3])]
    sums = dict(template[1])
    _all_restorable(env, sums, tmp_path)
    for name in new:
        assert json.loads(run(env, "info", name, "--json").stdout)["status"] == "completed"


@pytest.fixture(scope="module")
def big_template(tmp_path_factory: pytest.TempPathFactory, supabase_db: Any) -> Template:
    """Two whole-blob backups of a database of its own big enough (about 20 MB of dumps) for
    a migrate to take a while: a kill from outside lands in the middle of its writes."""
    import dataclasses
    import secrets

    from store import LocalStore

    cluster = supabase_db.cluster
    dbname = f"migrate_{secrets.token_hex(4)}"
    cluster.create_database(dbname, owner="postgres")
    cluster.psql(
        "CREATE TABLE t (id int PRIMARY KEY, body text NOT NULL); INSERT INTO t "
        "SELECT i, md5(i::text) || md5((i * 7)::text) FROM generate_series(1, 150000) i",
        dbname=dbname,
        user="postgres",
    )
    backup_dir = tmp_path_factory.mktemp("big") / "backups"
    base = settings_for(backup_dir.parent, cluster, user="supabase_admin")
    settings = dataclasses.replace(base, database=dataclasses.replace(base.database, dbname=dbname))
    names = []
    with app_for(settings) as app:
        app.store = LocalStore(app.settings.store_dir, chunked=False)
        for name in ("first", "second"):
            names.append(run_backup(app, BackupRequest(name=name, all_formats=True)).name)
            cluster.psql("UPDATE t SET body = 'x' WHERE id = 75000", dbname=dbname, user="postgres")
    env = env_for(supabase_db, backup_dir) | {"SUPABASE_DB_NAME": dbname}
    return backup_dir, {n: _sums(env, n) for n in names}


def test_a_migrate_killed_from_outside_mid_write_loses_nothing(
    big_template: Template, tmp_path: Path, supabase_db: Any
) -> None:
    """SIGKILL from outside while it writes: a pack half written (a temp file in packs/), the
    first manifest just published, the first whole blob just removed; then one finishes."""
    import signal
    import time

    template = big_template
    backup_dir = tmp_path / "backups"
    shutil.copytree(template[0], backup_dir)
    env = env_for(supabase_db, backup_dir)
    store = backup_dir / "store"
    manifests = len(list(store.glob("manifests/??/*.manifest")))

    def half_written_pack() -> bool:
        return any(store.glob("packs/**/.tmp-*"))

    def new_manifest() -> bool:
        return len(list(store.glob("manifests/??/*.manifest"))) > manifests

    def blob_removed() -> bool:
        return len(whole_blobs(backup_dir)) < len(whole_blobs(template[0]))

    seen = []
    for moment in (half_written_pack, new_manifest, blob_removed):
        proc = subprocess.Popen(
            [*DUMPLEDGER, "store", "migrate"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while proc.poll() is None and not moment() and time.monotonic() < deadline:
            time.sleep(0.001)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        seen.append(proc.returncode)
        _all_restorable(env, template[1], tmp_path)
    assert seen == [-9, -9, -9]  # each was killed while it still had work to do
    assert whole_blobs(backup_dir)
    run(env, "store", "migrate")
    assert whole_blobs(backup_dir) == []
    _all_restorable(env, template[1], tmp_path)

"""A store shared by several catalogs, a catalog replaced, a catalog lost: blob collection
deletes nothing another catalog (or a lost one) still needs (issue 15, item 1)."""

from __future__ import annotations

import json
import secrets
import shutil
from pathlib import Path
from typing import Any

from tests.support import cluster_env
from tests.support import run_cli as run


def _database(cluster: Any, rows: int) -> str:
    """A database of its own, with `rows` rows: its full dump differs from any other's."""
    name = f"proj_{secrets.token_hex(4)}"
    cluster.create_database(name, owner="postgres")
    cluster.psql(
        f"CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, {rows})",
        dbname=name,
        user="postgres",
    )
    return name


def _env(cluster: Any, backup_dir: Path, dbname: str, **extra: str) -> dict[str, str]:
    env = cluster_env(cluster, backup_dir)
    env.update(SUPABASE_DB_NAME=dbname, **extra)
    return env


def _backup(env: dict[str, str], *args: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(run(env, "backup", "--no-all-formats", *args, "--json").stdout)
    return out


def _blob_files(store: Path) -> set[str]:
    """The artifacts the store holds (whole blobs, chunked artifacts' manifests), by name."""
    from store import LocalStore

    return {p.name for _, _, p in LocalStore(store).iter_blobs()}


def test_two_backup_directories_share_one_store(tmp_path: Path, supabase_db: Any) -> None:
    """(a) Project B's first automatic backup (and its cleanup) deleted project A's only
    backup. Now each keeps its own, and each collects what it alone wrote."""
    cluster = supabase_db.cluster
    store = tmp_path / "shared-store"
    env_a = _env(cluster, tmp_path / "a", _database(cluster, 10), DUMPLEDGER_STORE=str(store))
    env_b = _env(cluster, tmp_path / "b", _database(cluster, 20), DUMPLEDGER_STORE=str(store))
    a = _backup(env_a, "only-backup-of-a")
    b = _backup(env_b, "--type", "nightly")
    assert b["retention"]["blobs_collected"] == []
    run(env_a, "verify", a["name"])  # exit 0: every artifact of A is still there

    check = json.loads(run(env_b, "check", "--json", check=False).stdout)
    blobs = next(c for c in check["checks"] if c["name"] == "blobs")
    assert blobs["status"] == "OK" and "shared with 1 other catalog" in blobs["message"]
    deleted = json.loads(run(env_a, "delete", a["name"], "--yes", "--json").stdout)
    assert sorted(deleted["blobs_collected"]) == sorted(x["digest"] for x in a["artifacts"])
    run(env_b, "verify", b["name"])
    assert len(_blob_files(store)) == len(b["artifacts"])


def test_a_new_catalog_url_keeps_the_earlier_backups(tmp_path: Path, supabase_db: Any) -> None:
    """(b) Switching DUMPLEDGER_CATALOG_URL to a new catalog: the next automatic backup
    deleted every earlier blob. Now nothing of the first catalog goes, and a blob both
    catalogs reference (an unchanged database, stored once) stays while either does."""
    cluster = supabase_db.cluster
    dbname = _database(cluster, 10)
    env = _env(cluster, tmp_path / "backups", dbname)
    first = _backup(env, "--type", "nightly")
    new_catalog = dict(env, DUMPLEDGER_CATALOG_URL=f"sqlite:///{tmp_path / 'new.db'}")
    same = _backup(new_catalog, "same-state")  # stored once: both catalogs reference it
    assert {x["digest"] for x in same["artifacts"]} == {x["digest"] for x in first["artifacts"]}
    # the next full dump differs
    cluster.psql("INSERT INTO t VALUES (1000)", dbname=dbname, user="postgres")
    second = _backup(new_catalog, "--type", "nightly")
    assert second["retention"]["blobs_collected"] == []
    run(env, "verify", first["name"])  # the first catalog's backup is whole
    deleted = json.loads(run(new_catalog, "delete", same["name"], "--yes", "--json").stdout)
    assert deleted["blobs_collected"] == []  # the first catalog still references them
    run(env, "verify", first["name"])


def test_a_lost_catalog_is_rebuilt_from_the_store(tmp_path: Path, supabase_db: Any) -> None:
    """(c) catalog.db lost: `cleanup --dry-run` said 0 B, then `cleanup` freed every earlier
    backup. Now both free nothing, and `catalog rebuild --from-store` brings every earlier
    backup back, listed and restorable."""
    cluster = supabase_db.cluster
    dbname = _database(cluster, 10)
    backups = tmp_path / "backups"
    env = _env(cluster, backups, dbname)
    earlier = [_backup(env, "first")["name"]]
    cluster.psql("INSERT INTO t VALUES (1000)", dbname=dbname, user="postgres")
    earlier.append(_backup(env, "second")["name"])
    before = _blob_files(backups / "store")
    for suffix in ("", "-wal", "-shm"):
        (backups / f"catalog.db{suffix}").unlink(missing_ok=True)

    cluster.psql("INSERT INTO t VALUES (1001)", dbname=dbname, user="postgres")
    after_loss = _backup(env, "after-loss")["name"]
    dry = json.loads(run(env, "cleanup", "--dry-run", "--json").stdout)
    real = json.loads(run(env, "cleanup", "--json").stdout)
    assert dry["freed_bytes"] == real["freed_bytes"] == 0
    assert before <= _blob_files(backups / "store")

    rebuilt = run(env, "catalog", "rebuild", "--from-store")
    assert "2 backup(s) recovered" in rebuilt.stdout
    listed = {r["name"] for r in json.loads(run(env, "list", "--json").stdout)}
    assert listed == {*earlier, after_loss}
    run(env, "verify", "--all")
    drill = json.loads(run(env, "drill", earlier[0], "--json").stdout)
    assert drill["ok"] is True
    audit = json.loads(run(env, "audit", "--json").stdout)
    assert {e["backup"] for e in audit if e["event"] == "BackupImported"} == set(earlier)

    # The lost catalog's roots still hold its blobs; check names it, the person forgets it.
    check = json.loads(run(env, "check", "--json", check=False).stdout)
    blobs = next(c for c in check["checks"] if c["name"] == "blobs")
    assert blobs["status"] == "WARNING" and "replaced or lost" in blobs["message"]
    (lost,) = [
        c["id"]
        for c in json.loads(run(env, "store", "status", "--json").stdout)["catalogs"]
        if not c["this"]
    ]
    assert f"dumpledger store forget-catalog {lost}" in rebuilt.stdout
    run(env, "store", "forget-catalog", lost, "--yes")
    check = json.loads(run(env, "check", "--json", check=False).stdout)
    blobs = next(c for c in check["checks"] if c["name"] == "blobs")
    assert blobs["status"] == "OK", blobs["message"]
    assert json.loads(run(env, "cleanup", "--json").stdout)["freed_bytes"] == 0
    run(env, "verify", "--all")


def test_a_store_from_before_roots_upgrades_without_losing_anything(
    tmp_path: Path, supabase_db: Any
) -> None:
    """Every store written by an earlier version has no roots (some a `.catalog-id`): what it
    holds is kept until a person says every catalog using it has registered (store adopt)."""
    from store import Codec, LocalStore

    cluster = supabase_db.cluster
    dbname = _database(cluster, 10)
    backups = tmp_path / "backups"
    env = _env(cluster, backups, dbname)
    first = _backup(env, "--type", "nightly")
    cluster.psql("INSERT INTO t VALUES (1000)", dbname=dbname, user="postgres")
    _backup(env, "--type", "nightly")
    # As an earlier version left it: no roots, a marker, and a blob another catalog wrote.
    shutil.rmtree(backups / "store" / "roots")
    (backups / "store" / ".catalog-id").write_text("someone-else\n")
    foreign = LocalStore(backups / "store").put([b"-- another catalog's dump\n"], Codec.GZIP)
    first_full = next(x for x in first["artifacts"] if x["kind"] == "full")

    dry = json.loads(run(env, "cleanup", "0", "--dry-run", "--json").stdout)
    real = json.loads(run(env, "cleanup", "0", "--json").stdout)
    assert real["deleted"] == [first["name"]]
    assert dry["freed_bytes"] == real["freed_bytes"] == 0  # kept: from before roots
    files = _blob_files(backups / "store")
    assert any(first_full["digest"] in f for f in files)
    assert any(foreign.digest in f for f in files)
    check = json.loads(run(env, "check", "--json", check=False).stdout)
    blobs = next(c for c in check["checks"] if c["name"] == "blobs")
    assert blobs["status"] == "WARNING" and "dumpledger store adopt" in blobs["message"]

    refused = run(env, "store", "adopt", check=False)
    assert refused.returncode == 2 and "--yes" in refused.stderr
    adopted = json.loads(run(env, "store", "adopt", "--yes", "--json").stdout)
    assert adopted["legacy_released"] > 0 and adopted["adopted"] >= 1
    dry = json.loads(run(env, "cleanup", "--dry-run", "--json").stdout)
    real = json.loads(run(env, "cleanup", "--json").stdout)
    assert sorted(dry["blobs_collected"]) == sorted(real["blobs_collected"])
    assert set(real["blobs_collected"]) == {first_full["digest"], foreign.digest}
    assert dry["freed_bytes"] == real["freed_bytes"] > 0
    check = json.loads(run(env, "check", "--json", check=False).stdout)
    blobs = next(c for c in check["checks"] if c["name"] == "blobs")
    assert blobs["status"] == "OK", blobs["message"]

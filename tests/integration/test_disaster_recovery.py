"""The old guide's "Complete Database Loss", end to end with the real CLI: back up, push to an
offsite directory, lose the database, its roles and the whole backups/ directory, recover the
catalog and the store from the offsite copy alone, restore, and compare with the original."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from catalog import Catalog
from pgtools.cluster import Cluster
from tests.compare import UNGRANT_REPLICATION_ROLE, roles, state
from tests.s3server import S3_ENV, make_bucket, moto_server
from tests.support import cluster_env
from tests.support import run_cli as run

APP_ROLES = (
    "anon",
    "authenticated",
    "service_role",
    "authenticator",
    "supabase_auth_admin",
    "supabase_storage_admin",
    "dashboard_user",
    "supabase_read_only_user",
    "postgres",
)


def lose_everything(cluster: Cluster, backups: Path) -> None:
    """The database and its roles are gone; so is backups/ with the catalog and the store."""
    cluster.psql("DROP DATABASE postgres WITH (FORCE)", dbname="template1")
    cluster.psql(UNGRANT_REPLICATION_ROLE, dbname="template1")  # postgres owns that grant
    cluster.psql("".join(f"DROP ROLE {r};\n" for r in APP_ROLES), dbname="template1")
    shutil.rmtree(backups)


def test_complete_database_loss(tmp_path: Path, supabase_cluster: Cluster) -> None:
    cluster = supabase_cluster
    backups = tmp_path / "backups"
    env = cluster_env(cluster, backups)
    env["SUPABASE_DB_USER"] = "supabase_admin"
    drive = tmp_path / "external-drive" / "dumpledger"
    original, original_roles = state(cluster), roles(cluster)

    name = json.loads(run(env, "backup", "--type", "nightly", "--json").stdout)["name"]
    pushed = json.loads(run(env, "push", str(drive), "--json").stdout)
    assert pushed["backups"] == [name]
    with Catalog.open(f"sqlite:///{backups / 'catalog.db'}") as cat:
        original_events = [e.to_json() for e in cat.events()]

    lose_everything(cluster, backups)
    assert "postgres" not in cluster.psql("SELECT datname FROM pg_database", dbname="template1")
    left = cluster.psql("SELECT rolname FROM pg_roles", dbname="template1").split()
    assert not set(APP_ROLES) & set(left)

    # A backups/ that is not empty is refused before anything is read or written.
    (backups / "database").mkdir(parents=True)
    done = run(env, "recover", "--from", str(drive), check=False)
    assert done.returncode == 2 and "is not empty" in done.stderr
    shutil.rmtree(backups)

    # A blob damaged on the drive: recover fails, names it, and leaves nothing behind.
    blob = max(
        (p for p in (drive / "store").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size
    )
    good = blob.read_bytes()
    blob.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    done = run(env, "recover", "--from", str(drive), check=False)
    assert done.returncode == 1 and blob.name.split(".")[0] in done.stderr
    assert not backups.exists()  # as it was: run it again once the drive is fixed
    blob.write_bytes(good)

    done = run(env, "recover", "--from", str(drive))
    assert "hash chain intact" in done.stdout
    assert f"next: dumpledger restore {name}" in done.stdout
    with Catalog.open(f"sqlite:///{backups / 'catalog.db'}") as cat:
        assert cat.verify_chain().ok
        # The recovered log is the original one as pushed, event for event (ids, times,
        # hashes), then what recovery recorded: the target holds the backup.
        recovered = [e.to_json() for e in cat.events()]
        assert recovered[: pushed["log_seq"]] == original_events[: pushed["log_seq"]]
        assert [e["type"] for e in recovered[pushed["log_seq"] :]] == ["OffsitePushed"]
        # The recovered catalog is registered in the new store, its roots holding the backup.
        home = backups / "store" / "roots" / str(cat.identity())
        assert all(d["digest"] in (home / "refs").read_text() for d in pushed_artifacts(cat))
    assert (backups / "database" / f"{name}_full.sql.gz").resolve().is_file()
    assert run(env, "verify", name).returncode == 0
    assert json.loads(run(env, "list", "--json").stdout)[0]["offsite"] == [str(drive)]

    run(env, "restore", name, "--yes")
    assert roles(cluster) == original_roles
    assert state(cluster) == original
    # The new machine goes on where the old one stopped: the next push appends to the target.
    again = json.loads(run(env, "push", str(drive), "--json").stdout)
    assert again["digests_sent"] == [] and again["backups"][0] == name


def pushed_artifacts(cat: Catalog) -> list[dict[str, Any]]:
    return [a for e in cat.events(types=["BackupCompleted"]) for a in e.payload["artifacts"]]


def test_complete_loss_recovered_from_s3_and_restored_in_one_command(
    tmp_path: Path, supabase_cluster: Cluster
) -> None:
    cluster = supabase_cluster
    backups = tmp_path / "backups"
    env = {**cluster_env(cluster, backups), **S3_ENV, "SUPABASE_DB_USER": "supabase_admin"}
    original, original_roles = state(cluster), roles(cluster)
    with moto_server() as endpoint:
        make_bucket(endpoint, "recovery")
        name = json.loads(run(env, "backup", "--type", "nightly", "--json").stdout)["name"]
        run(env, "push", "s3://recovery/prod", "--endpoint-url", endpoint)
        lose_everything(cluster, backups)
        # A new machine: no configuration; the endpoint from the environment, as boto3 reads it.
        done = run(
            {**env, "AWS_ENDPOINT_URL": endpoint},
            "recover",
            "--from",
            "s3://recovery/prod",
            "--restore",
            "--yes",
            "--json",
        )
    report = json.loads(done.stdout)
    assert report["restored"] == name and report["backups"] == [name]
    assert report["blobs_fetched"] == 2 and report["incomplete"] == []
    assert f"restored {name} into postgres" in done.stderr
    assert roles(cluster) == original_roles
    assert state(cluster) == original

"""`dumpledger report` over a PostgreSQL catalog, and over backups and drills that really ran."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from catalog import Catalog
from pgtools.cluster import Cluster
from tests.catalog_urls import postgres_url
from tests.report_support import generate
from tests.support import DUMPLEDGER, cluster_env, run_cli

pytestmark = pytest.mark.slow


def test_a_postgresql_catalog_is_read_in_read_only_transactions(
    tmp_path: Path, pg_cluster: Cluster
) -> None:
    url = postgres_url(pg_cluster)
    backup_dir = tmp_path / "backups"
    expected = generate(backup_dir, datetime.now(UTC), days=12, catalog_url=url)
    with Catalog.open(url) as cat:
        events = cat.count()
    env = cluster_env(pg_cluster, backup_dir)
    data = json.loads(run_cli(env, "report", "--json").stdout)
    assert {k: v for k, v in data["slot_counts"].items() if k != "running"} == expected.slots
    assert len(data["backups"]) == len(expected.backups)
    assert [d["backup"] for d in data["drills"]] == [name for name, _, _ in expected.drills]
    assert data["events"] == events
    assert data["catalog"].startswith("postgresql+psycopg://") and "catalog_" in data["catalog"]
    checks = {c["name"]: c["status"] for c in data["check"]["checks"]}
    assert checks["catalog"] == "OK" and checks["database"] == "OK"
    with Catalog.open(url) as cat:
        assert cat.count() == events  # `check` inside the report notified nothing


def test_the_header_names_what_the_newest_real_backup_was_of(
    tmp_path: Path, pg_cluster: Cluster
) -> None:
    app = tmp_path / "app"  # the application's repository: backups record its commit
    app.mkdir()
    for args in (["init", "-q", "-b", "main"], ["commit", "-q", "--allow-empty", "-m", "v1"]):
        subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=app,
                       check=True)  # fmt: skip
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=app, capture_output=True, text=True, check=True
    ).stdout.strip()
    env = {
        **cluster_env(pg_cluster, tmp_path / "backups"),
        "SUPABASE_DB_USER": pg_cluster.superuser,
    }
    for args in (["backup", "--type", "nightly"], ["drill", "--latest"]):
        done = subprocess.run([*DUMPLEDGER, *args], cwd=app, env=env, capture_output=True,
                              text=True, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr
    data = json.loads(run_cli(env, "report", "--json").stdout)
    (backup,) = data["backups"]
    assert backup["outcome"] == "verified" and backup["new_bytes"] > 0
    newest = data["newest"]
    assert newest["name"] == backup["name"]
    assert newest["git_commit"] == head and newest["git_branch"] == "main"
    assert newest["database"] == f"postgres@{pg_cluster.socket_dir}:{pg_cluster.port}"
    (drill,) = data["drills"]
    assert drill["ok"] and drill["backup"] == backup["name"] and drill["restore_seconds"] > 0
    # the only backup: everything the store holds is what it added (chunks and manifests)
    assert data["store"][-1]["total"] == backup["new_bytes"]
    assert data["check"]["status"] in ("OK", "WARNING", "CRITICAL")

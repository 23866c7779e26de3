"""Pack collection by real `dumpledger` processes: a cleanup SIGKILLed at each step of pack
collection leaves every backup verifiable and restorable and the next cleanup finishes the
work; two backups and cleanups run at once lose nothing; a dry run frees exactly what the real
run frees (issue 17 item 2)."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from store.chunked.crashpoint import VARIABLE
from tests.churn import Clock, churn_dump, fabricate_churn
from tests.support import DUMPLEDGER, cluster_env
from tests.support import run_cli as run
from usecases.config.settings import Settings
from usecases.context import App

# Each step of store/chunked/repack.py, in the order a collection reaches them.
POINTS = [
    "manifest-set-aside",  # a removed backup's manifest renamed aside, its counts still there
    "counts-taken-back",  # the counts of the manifests set aside taken back, their files not
    "dead-pack-forgotten",  # a pack no manifest uses: its rows dropped, the file not yet
    "new-pack-written",  # a repack's new pack durable and published, not indexed
    "new-pack-indexed",  # its chunks' rows point to it; the old packs are still there
    "old-pack-forgotten",  # an old pack's rows dropped, its file not yet deleted
    "old-pack-deleted",  # one old pack deleted, the other still there
]


def store_state(backup_dir: Path) -> tuple[set[str], set[str]]:
    store = backup_dir / "store"
    packs = {p.name for p in store.glob("packs/??/*.pack")}
    return packs, {p.name for p in store.glob("manifests/??/*")}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A backup directory with eight automatic backups of a churning table, 80 to 10 days old:
    `cleanup 45` removes four, deletes one pack and repacks two into one."""
    backup_dir = tmp_path_factory.mktemp("template") / "backups"
    clock = Clock(datetime.now(UTC))
    with App.open(Settings(backup_dir=backup_dir), clock=clock) as app:
        names = fabricate_churn(app, clock)
    return backup_dir, names


@pytest.fixture(scope="module")
def reference(
    template: tuple[Path, list[str]], tmp_path_factory: pytest.TempPathFactory, supabase_db: Any
) -> tuple[set[str], set[str]]:
    """What an uninterrupted cleanup leaves; its dry run frees exactly what it frees."""
    backup_dir = tmp_path_factory.mktemp("reference") / "backups"
    shutil.copytree(template[0], backup_dir)
    env = cluster_env(supabase_db.cluster, backup_dir)
    dry = json.loads(run(env, "cleanup", "45", "--dry-run", "--json").stdout)
    real = json.loads(run(env, "cleanup", "45", "--json").stdout)
    assert dry["freed_bytes"] == real["freed_bytes"] > 0
    assert dry["freed"] == real["freed"]
    assert len(real["freed"]["packs_deleted"]) == 1 and len(real["freed"]["packs_repacked"]) == 2
    assert [d["frees_bytes"] > 0 for d in dry["decisions"] if d["action"] == "remove"] == [True] * 4
    return store_state(backup_dir)


@pytest.mark.parametrize("point", POINTS)
def test_a_cleanup_killed_at_each_step_loses_nothing_and_the_next_one_finishes(
    point: str,
    template: tuple[Path, list[str]],
    reference: tuple[set[str], set[str]],
    tmp_path: Path,
    supabase_db: Any,
) -> None:
    backup_dir = tmp_path / "backups"
    shutil.copytree(template[0], backup_dir)
    names = template[1]
    env = cluster_env(supabase_db.cluster, backup_dir)
    killed = run(env | {VARIABLE: point}, "cleanup", "45", check=False)
    assert killed.returncode == -9, killed.stderr  # the step was reached, and it died there
    assert store_state(backup_dir) != reference  # the work was not finished
    run(env, "verify", "--all", "--read-data")
    for name, v in zip(names[4:], range(4, 8), strict=True):
        assert run_bytes(env, "cat", name) == churn_dump(v)
    drill = json.loads(run(env, "drill", names[4], "--json").stdout)
    assert drill["ok"] and drill["tables_checked"] == 1
    again = json.loads(run(env, "cleanup", "45", "--json").stdout)
    assert again["deleted"] == [] and again["freed_bytes"] > 0
    assert store_state(backup_dir) == reference
    assert list((backup_dir / "store" / "packs").glob(".tmp-*")) == []
    run(env, "verify", "--all", "--read-data")


def run_bytes(env: dict[str, str], *args: str) -> bytes:
    done = subprocess.run(
        [*DUMPLEDGER, *args], env=env, capture_output=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_two_backups_and_cleanups_at_once_lose_nothing(tmp_path: Path, supabase_db: Any) -> None:
    cluster = supabase_db.cluster
    dbname = f"churn_{secrets.token_hex(4)}"
    cluster.create_database(dbname, owner="postgres")
    cluster.psql(
        "CREATE TABLE t (id int PRIMARY KEY, body text NOT NULL); INSERT INTO t "
        "SELECT i, md5(i::text) || md5((i * 7)::text) FROM generate_series(1, 150000) i",
        dbname=dbname,
        user="postgres",
    )
    backup_dir = tmp_path / "backups"
    backup_dir.mkdir()
    (backup_dir / "backup-config.json").write_text('{"store": {"repack_threshold": 0}}')
    env = cluster_env(cluster, backup_dir) | {"SUPABASE_DB_NAME": dbname}

    def churn(n: int) -> None:
        cluster.psql(
            f"UPDATE t SET body = body || '{n}' WHERE id % 10007 = {n}",  # ~15 rows
            dbname=dbname,
            user="postgres",
        )

    for n in range(2):  # chunks the concurrent backups deduplicate against
        churn(n)
        run(env, "backup", "--type", "nightly")
    cleanups: list[subprocess.CompletedProcess[str]] = []
    for n in range(2, 5):  # three rounds: two backups at once, cleanups all the while
        churn(n)
        backups = [
            subprocess.Popen(
                [*DUMPLEDGER, "backup", "--type", "nightly"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
            )
            for _ in range(2)
        ]

        def clean(backups: list[subprocess.Popen[bytes]] = backups) -> None:
            # every completed backup but the newest goes, and their packs with them
            ran = 0
            while ran < 2 or any(b.poll() is None for b in backups):
                cleanups.append(run(env, "cleanup", "0", check=False))
                ran += 1

        cleaner = threading.Thread(target=clean)
        cleaner.start()
        outs = [b.communicate(timeout=600) for b in backups]
        cleaner.join(timeout=600)
        for b, (_, err) in zip(backups, outs, strict=True):
            assert b.returncode == 0, err
    assert {c.returncode for c in cleanups} == {0}, [c.stderr for c in cleanups]
    assert any("repacked" in c.stdout for c in cleanups)
    listed = json.loads(run(env, "list", "--json").stdout)
    done = [b["name"] for b in listed if b["status"] == "completed"]
    assert done
    run(env, "verify", "--all", "--read-data")
    drill = json.loads(run(env, "drill", done[0], "--json").stdout)
    assert drill["ok"], drill
    final = json.loads(run(env, "cleanup", "0", "--json").stdout)
    assert final["collection_postponed"] is False
    run(env, "verify", "--all", "--read-data")
    after = json.loads(run(env, "cleanup", "0", "--dry-run", "--json").stdout)
    assert after["freed_bytes"] == 0  # threshold 0: nothing dead is left in any pack

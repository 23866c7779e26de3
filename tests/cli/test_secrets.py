"""The password: reaches pg_dump through its environment, and nothing else ever holds it."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from catalog import Catalog
from pgtools.cluster import Cluster, supabase_fixture_sql
from tests.support import DUMPLEDGER, cluster_env
from tests.support import run_cli as run

PASSWORD = "Sup3r-s3cret-Pa55word"


@pytest.fixture(scope="module")
def password_cluster() -> Iterator[Cluster]:
    """A Supabase-like cluster where TCP logins need a password (scram-sha-256)."""
    cluster = Cluster.create("supabase_admin").start()
    try:
        cluster.psql(supabase_fixture_sql())
        cluster.enable_password_auth("postgres", PASSWORD)
        yield cluster
    finally:
        cluster.destroy()


def tcp_env(cluster: Cluster, backup_dir: Path, password: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "SUPABASE_"))}
    env.update(
        SUPABASE_DB_HOST="127.0.0.1",
        SUPABASE_DB_PORT=str(cluster.port),
        SUPABASE_DB_USER="postgres",
        SUPABASE_DB_NAME="postgres",
        SUPABASE_DB_PASSWORD=password,
        DUMPLEDGER_BACKUP_DIR=str(backup_dir),
        DUMPLEDGER_PG_BINDIR=str(cluster.bindir),
    )
    return env


def all_cmdlines() -> dict[int, bytes]:
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                out[int(entry.name)] = (entry / "cmdline").read_bytes()
            except OSError:
                continue
    return out


def watch_argv(proc: subprocess.Popen[bytes], seen: Callable[[bytes], None]) -> None:
    while proc.poll() is None:
        for cmdline in all_cmdlines().values():
            seen(cmdline)


def test_password_in_no_argv_log_metadata_or_event(
    tmp_path: Path, password_cluster: Cluster
) -> None:
    backup_dir = tmp_path / "backups"
    env = tcp_env(password_cluster, backup_dir, PASSWORD)
    env["DUMPLEDGER_CACHE_DIR"] = str(tmp_path / "cache")
    cmdlines: list[bytes] = []
    proc = subprocess.Popen(
        [*DUMPLEDGER, "backup", "manual-check"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    watch_argv(proc, cmdlines.append)
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert any(b"pg_dump" in c and b"--snapshot" in c for c in cmdlines), "never saw pg_dump"
    assert not [c for c in cmdlines if PASSWORD.encode() in c]
    assert PASSWORD.encode() not in out + err
    assert (tmp_path / "cache" / "settings.json").is_file()  # the settings cache is scanned too
    for path in tmp_path.rglob("*"):
        if path.is_file() and not path.is_symlink() and "store" not in path.parts:
            assert PASSWORD.encode() not in path.read_bytes(), path
    with Catalog.open(f"sqlite:///{backup_dir}/catalog.db") as cat:
        events = json.dumps([e.to_json() for e in cat.events()])
    assert PASSWORD not in events
    assert '"host":"127.0.0.1"' in events.replace(" ", "")  # the coordinates are recorded


def test_wrong_password_is_one_clear_line(tmp_path: Path, password_cluster: Cluster) -> None:
    env = tcp_env(password_cluster, tmp_path / "backups", "wrong-" + PASSWORD)
    done = run(env, "backup", check=False)
    assert done.returncode == 1
    assert "password authentication failed" in done.stderr
    assert "SUPABASE_DB_PASSWORD" in done.stderr
    assert done.stderr.count("\n") == 1 and PASSWORD not in done.stderr
    with Catalog.open(f"sqlite:///{tmp_path}/backups/catalog.db") as cat:
        assert [e.type for e in cat.events()] == ["BackupStarted", "BackupFailed"]
        assert cat.verify_chain().ok


def test_role_password_hashes_stay_in_the_globals_dump(
    tmp_path: Path, password_cluster: Cluster
) -> None:
    """A superuser's backup keeps the hashes, in its globals dump only: never in a log, the
    metadata, an event, the settings cache, or what backup, restore --plan and restore print."""
    hashes = password_cluster.psql(
        "SELECT rolpassword FROM pg_authid WHERE rolpassword IS NOT NULL"
    ).split()
    assert len(hashes) >= 5 and all(h.startswith("SCRAM-SHA-256$") for h in hashes)
    backup_dir = tmp_path / "backups"
    env = cluster_env(password_cluster, backup_dir)
    env.update(SUPABASE_DB_USER="supabase_admin", DUMPLEDGER_CACHE_DIR=str(tmp_path / "cache"))
    done = run(env, "backup", "--json")
    name = json.loads(done.stdout)["name"]
    printed = [done.stdout + done.stderr]
    with Catalog.open(f"sqlite:///{backup_dir}/catalog.db") as cat:
        (art,) = [a for a in cat.events()[-1].payload["artifacts"] if a["kind"] == "globals"]
    view = backup_dir / "database" / f"{name}_globals.sql.gz"  # the newest backup's file
    assert art["digest"] == hashlib.sha256(gzip.decompress(view.read_bytes())).hexdigest()
    assert hashes[0].encode() in gzip.decompress(view.read_bytes())  # where pg_dumpall puts it
    for args in (("--plan",), ("--plan", "--json"), ("--target-db", "copy", "--yes")):
        done = run(env, "restore", name, *args)
        printed.append(done.stdout + done.stderr)

    needles = [h.encode() for h in hashes] + [b"SCRAM-SHA-256$"]
    assert not [n for n in needles for text in printed if n in text.encode()]
    for path in tmp_path.rglob("*"):
        if path.is_file() and not path.is_symlink() and "store" not in path.parts:
            assert not [n for n in needles if n in path.read_bytes()], path
    with Catalog.open(f"sqlite:///{backup_dir}/catalog.db") as cat:
        events = json.dumps([e.to_json() for e in cat.events()]).encode()
    assert not [n for n in needles if n in events]

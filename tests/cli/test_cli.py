"""The real `dumpledger` program: exit codes, output, and the catalog state afterwards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support import DUMPLEDGER, catalog_of, cluster_env, wrapped_pg_dump
from tests.support import run_cli as run


@pytest.fixture
def env(tmp_path: Path, supabase_db: Any) -> dict[str, str]:
    return cluster_env(supabase_db.cluster, tmp_path / "backups")


def test_backup_list_info_verify(env: dict[str, str]) -> None:
    out = json.loads(run(env, "backup", "--type", "nightly", "--json").stdout)
    name = out["name"]
    assert name.startswith("auto_nightly_") and out["stored_bytes_added"] > 0
    listed = json.loads(run(env, "list", "--json").stdout)
    assert [b["name"] for b in listed] == [name]
    assert name in run(env, "list").stdout
    info = json.loads(run(env, "info", name, "--json").stdout)
    assert [e["type"] for e in info["events"]] == ["BackupStarted", "BackupCompleted"]
    assert run(env, "verify", "--all").returncode == 0
    assert run(env, "catalog", "verify").stdout.startswith("catalog ok")
    with catalog_of(env) as cat:
        assert [e.type for e in cat.events()][-1] == "BackupVerified"


def test_bad_input_exits_2_with_one_line(env: dict[str, str]) -> None:
    done = run(env, "backup", "../../etc/passwd", check=False)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "unsafe backup name" in done.stderr
    done = run(env, "info", "no-such-backup", check=False)
    assert done.returncode == 2 and "no backup named" in done.stderr
    done = run(env, "list", "--since", "yesterday-ish", check=False)
    assert done.returncode == 2
    done = run(env, "backup", "--codec", "lz4", check=False)  # a flag is checked like a setting
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "--codec 'lz4': choose one of gzip, zstd" in done.stderr
    with catalog_of(env) as cat:
        assert [e.type for e in cat.events()] == []  # refused before anything started


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("info",), "Missing argument"),
        (("--bogus",), "No such option"),
        (("list", "--type"), "requires an argument"),
        (("no-such-command",), "No such command"),
    ],
)
def test_usage_errors_exit_2_without_a_traceback(
    tmp_path: Path, args: tuple[str, ...], says: str
) -> None:
    env = {**os.environ, "DUMPLEDGER_BACKUP_DIR": str(tmp_path / "backups")}
    done = run(env, *args, check=False)
    assert done.returncode == 2, done.stderr
    assert says in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "backups").exists()  # nothing ran


def test_server_down_exits_1_and_records_failure(env: dict[str, str]) -> None:
    env = {**env, "SUPABASE_DB_HOST": "127.0.0.1", "SUPABASE_DB_PORT": "1"}
    done = run(env, "backup", check=False)
    assert done.returncode == 1
    assert "is the database running" in done.stderr and "Traceback" not in done.stderr
    with catalog_of(env) as cat:
        assert [e.type for e in cat.events()] == ["BackupStarted", "BackupFailed"]


def test_corrupted_blob_is_named_and_exit_1(env: dict[str, str]) -> None:
    from tests.support import pack_of

    out = json.loads(run(env, "backup", "--type", "noon", "--json").stdout)
    name, full = out["name"], out["artifacts"][0]
    pack = pack_of(Path(env["DUMPLEDGER_BACKUP_DIR"]), full["digest"])
    data = bytearray(pack.read_bytes())
    data[len(data) // 3] ^= 0x01
    pack.write_bytes(bytes(data))
    done = run(env, "verify", name, check=False)
    assert done.returncode == 1
    assert str(pack) in done.stderr and f"{name}: full ({name}_full.sql.gz" in done.stderr


def test_tampered_event_fails_catalog_verify(env: dict[str, str]) -> None:
    run(env, "backup", "--type", "morning")
    import sqlite3

    db = sqlite3.connect(Path(env["DUMPLEDGER_BACKUP_DIR"]) / "catalog.db")
    db.execute("UPDATE events SET actor = 'someone-else' WHERE seq = 1")
    db.commit()
    db.close()
    done = run(env, "catalog", "verify", check=False)
    assert done.returncode == 1 and "seq 1" in done.stderr


def test_sigkill_mid_dump_leaves_no_blob_and_is_settled_later(
    env: dict[str, str], slow_bindir: Path
) -> None:
    slow_env = {**env, "DUMPLEDGER_PG_BINDIR": str(slow_bindir)}
    proc = subprocess.Popen(
        [*DUMPLEDGER, "backup", "--type", "evening"],
        env=slow_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    store = Path(env["DUMPLEDGER_BACKUP_DIR"]) / "store"
    deadline = time.monotonic() + 60
    while not list(store.rglob(".tmp-*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(store.rglob(".tmp-*")), "the backup never started writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    os.killpg(proc.pid, signal.SIGKILL)  # then the stalled pg_dump wrapper it left behind
    digest_named = [p for p in store.rglob("*.sql.gz")]
    with catalog_of(env) as cat:
        types = [e.type for e in cat.events()]
    assert "BackupCompleted" not in types
    # Only the small globals dump may have finished; the full one must not be under a digest.
    assert len(digest_named) <= 1
    listed = json.loads(run(env, "list", "--json").stdout)
    assert listed[0]["status"] == "failed"
    assert "ended without finishing" in listed[0]["failure_reason"]
    assert not list(store.rglob(".tmp-*"))
    with catalog_of(env) as cat:
        assert cat.verify_chain().ok


@pytest.fixture
def slow_bindir(tmp_path: Path, supabase_db: Any) -> Path:
    """Real client programs; pg_dump's output stalls for a minute after its first 64 kB."""
    return wrapped_pg_dump(
        Path(supabase_db.cluster.bindir),
        tmp_path / "slowbin",
        then="{ head -c 65536; sleep 60; cat; }",
    )


def test_help_prose_is_rewrapped_to_the_terminal_examples_kept() -> None:
    from cli.main import reflowed

    doc = """Do one thing.

    A paragraph wrapped at
    some width in the source.

    Examples:

      dumpledger one --two   # as written
      dumpledger three
    """
    assert reflowed(doc) == (
        "Do one thing.\n\nA paragraph wrapped at some width in the source.\n\nExamples:\n\n"
        "  dumpledger one --two   # as written\n  dumpledger three"
    )
    env = {**os.environ, "COLUMNS": "80"}
    done = subprocess.run(
        [*DUMPLEDGER, "cleanup", "--help"], env=env, capture_output=True, text=True, check=True
    )
    assert "changes it); manual, emergency-* and pre-* backups stay until" in done.stdout


def test_version_is_printed_without_touching_anything(tmp_path: Path) -> None:
    from importlib.metadata import version

    env = {**os.environ, "DUMPLEDGER_BACKUP_DIR": str(tmp_path / "backups")}
    done = run(env, "--version")
    assert done.stdout.startswith(f"dumpledger {version('dumpledger')} (Python 3.")
    assert not (tmp_path / "backups").exists()

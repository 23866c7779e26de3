"""A restore (and a backup) that is stopped part way, by a real signal to a real `dumpledger`
process: SIGKILL and SIGTERM mid-COPY, Ctrl-C, and a second restore into the same database
while one runs. The live table must be exactly as it was, and what happened is recorded and
told: by the process itself, or by the next command when it was killed outright."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgtools.cluster import Cluster
from tests.support import DUMPLEDGER, catalog_of, cluster_env, wrapped_pg_dump
from tests.support import run_cli as run

ROWS = 600_000
BIG = f"""
CREATE TABLE public.big (id bigint PRIMARY KEY, payload text NOT NULL);
INSERT INTO public.big SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, {ROWS}) g;
"""
FINGERPRINT = "SELECT count(*) || ':' || md5(string_agg(md5(payload), '' ORDER BY id)) FROM big"


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, Path, str]]:
    """A cluster whose `big` table takes a while to COPY, its custom-format dump, and the
    table's fingerprint (row count and checksum)."""
    cluster = Cluster.create("supabase_admin").start()
    try:
        cluster.psql(BIG)
        dump = tmp_path_factory.mktemp("dump") / "big.dump"
        subprocess.run(
            [str(cluster.bindir / "pg_dump"), "--format=custom", "-f", str(dump)],
            env=cluster.env(),
            check=True,
            capture_output=True,
        )
        yield cluster, dump, cluster.psql(FINGERPRINT).strip()
    finally:
        cluster.destroy()


@pytest.fixture
def env(tmp_path: Path, big: tuple[Cluster, Path, str]) -> dict[str, str]:
    e = cluster_env(big[0], tmp_path / "backups")
    e["SUPABASE_DB_USER"] = "supabase_admin"
    return e


def default_ctrl_c() -> None:
    """In the child, before exec: Ctrl-C at its default, as an interactive shell starts a
    command. A background job of a script (`make test &`) inherits SIGINT ignored, and Python
    then never raises KeyboardInterrupt: the test would see only the children stop."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_restore(env: dict[str, str], dump: Path) -> subprocess.Popen[str]:
    """`dumpledger restore --file ... --table public.big` in a session of its own, as a
    terminal would run it (Ctrl-C reaches the whole group)."""
    return subprocess.Popen(
        [*DUMPLEDGER, "restore", "--file", str(dump), "--table", "public.big", "--yes"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=default_ctrl_c,
    )


def connect(cluster: Cluster) -> psycopg.Connection[Any]:
    return psycopg.connect(**cluster.connect_kwargs(), autocommit=True)


def wait_for(cluster: Cluster, proc: subprocess.Popen[str], sql: str) -> None:
    """Until `sql` returns a row with a true first value; fails if the process ends first."""
    deadline = time.monotonic() + 240
    with connect(cluster) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(sql).fetchone()
            if row and row[0]:
                return
            if proc.poll() is not None:
                pytest.fail(f"the restore ended first (exit {proc.returncode}): {proc.stderr}")
            time.sleep(0.01)
    pytest.fail(f"timed out waiting for: {sql}")


# The restore's COPY into big has loaded rows (the safety backup's COPY out does not count).
MID_COPY = (
    "SELECT tuples_processed > 0 FROM pg_stat_progress_copy "
    "WHERE relid = 'public.big'::regclass AND command = 'COPY FROM'"
)


def wait_sessions_gone(cluster: Cluster) -> None:
    """The restore's psql (and lock) sessions have ended: what they left is final."""
    deadline = time.monotonic() + 60
    with connect(cluster) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'dumpledger%'"
            ).fetchone()
            if row and row[0] == 0:
                return
            time.sleep(0.05)
    pytest.fail("the restore's sessions did not end")


def reap(proc: subprocess.Popen[str], cluster: Cluster | None = None) -> tuple[int, str]:
    """Its exit code and stderr. The psql it fed is left to end by itself, as it would without
    a test around it (killing it would roll back what it was about to commit); then whatever
    is left of its process group goes."""
    _, err = proc.communicate(timeout=120)
    if cluster is not None:
        wait_sessions_gone(cluster)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode, err


def restore_events(env: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    with catalog_of(env) as cat:
        return [(e.type, e.payload) for e in cat.events(types=["RestoreStarted", "RestoreFailed"])]


def test_sigkill_mid_copy_commits_nothing_and_the_next_command_says_so(
    env: dict[str, str], big: tuple[Cluster, Path, str]
) -> None:
    """Before: psql took the end of its input for the end of the script and committed the rows
    it had (654k of 2M in the report); nothing recorded the failure."""
    cluster, dump, fingerprint = big
    proc = start_restore(env, dump)
    try:
        wait_for(cluster, proc, MID_COPY)
        os.kill(proc.pid, signal.SIGKILL)  # dumpledger only, as the OOM killer would
    finally:
        reap(proc, cluster)
    assert cluster.psql(FINGERPRINT).strip() == fingerprint

    later = run(env, "list")
    started = restore_events(env)[0][1]
    safety = started["safety_backup"]
    assert safety.startswith("pre-restore_postgres_")
    assert later.stderr.count("\n") == 1
    assert f"by process {proc.pid} was interrupted and is now recorded as failed" in later.stderr
    assert "postgres is as it was before" in later.stderr
    assert f"restore {safety} --target-db postgres --yes" in later.stderr
    failed = restore_events(env)[-1]
    assert failed[0] == "RestoreFailed" and failed[1]["stage"] == "interrupted"
    assert failed[1]["restore_id"] == started["restore_id"]
    assert run(env, "list").stderr == ""  # told once: it is recorded now

    doc = json.loads(run(env, "check", "--json", "--no-notify", check=False).stdout)
    restore_check = next(c for c in doc["checks"] if c["name"] == "restore")
    assert restore_check["status"] == "WARNING"
    assert "was interrupted" in restore_check["message"]
    assert f"dumpledger restore {safety} --target-db postgres --yes" in restore_check["message"]


def test_sigterm_mid_copy_commits_nothing_and_records_itself(
    env: dict[str, str], big: tuple[Cluster, Path, str]
) -> None:
    cluster, dump, fingerprint = big
    proc = start_restore(env, dump)
    try:
        wait_for(cluster, proc, MID_COPY)
        os.kill(proc.pid, signal.SIGTERM)  # as `timeout` or a service manager would
    finally:
        code, err = reap(proc, cluster)
    assert cluster.psql(FINGERPRINT).strip() == fingerprint
    assert code == 143, err
    assert err.count("\n") == 1
    assert "failed (restore): terminated (SIGTERM). postgres was left as it was." in err
    safety = restore_events(env)[0][1]["safety_backup"]
    assert f"restore {safety} --target-db postgres --yes" in err
    failed = restore_events(env)[-1]
    assert failed[0] == "RestoreFailed" and failed[1]["reason"] == "terminated (SIGTERM)"
    assert run(env, "list").stderr == ""  # nothing left for the next command to settle


def test_ctrl_c_in_a_restore_says_what_was_left(
    env: dict[str, str], big: tuple[Cluster, Path, str]
) -> None:
    """Before: Ctrl-C printed nothing useful (click's "Aborted!") and exited 1."""
    cluster, dump, fingerprint = big
    proc = start_restore(env, dump)
    try:
        wait_for(cluster, proc, MID_COPY)
        os.killpg(proc.pid, signal.SIGINT)  # the terminal's Ctrl-C: the whole process group
    finally:
        code, err = reap(proc, cluster)
    assert cluster.psql(FINGERPRINT).strip() == fingerprint
    assert code == 130, err
    assert err.count("\n") == 1
    assert "interrupted (Ctrl-C). postgres was left as it was. To go back to the safety" in err
    assert restore_events(env)[-1][1]["reason"] == "interrupted (Ctrl-C)"


def test_a_second_restore_into_the_same_database_is_refused(
    tmp_path: Path, env: dict[str, str], big: tuple[Cluster, Path, str]
) -> None:
    """Before: both ran, and the second failed with "tuple concurrently updated" (or worse)."""
    cluster, dump, fingerprint = big
    with connect(cluster) as holder:
        holder.execute("BEGIN")
        holder.execute("SELECT 1 FROM public.big LIMIT 1")  # the first restore waits at TRUNCATE
        first = start_restore(env, dump)
        try:
            wait_for(
                cluster,
                first,
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE application_name LIKE 'dumpledger-restore-%' AND wait_event_type = 'Lock'",
            )
            same_dir = run(
                env, "restore", "--file", str(dump), "--table", "public.big", "--yes", check=False
            )
            other_env = {**env, "DUMPLEDGER_BACKUP_DIR": str(tmp_path / "other-backups")}
            other_dir = run(
                other_env,
                "restore",
                "--file",
                str(dump),
                "--table",
                "public.big",
                "--yes",
                check=False,
            )
        finally:
            holder.execute("ROLLBACK")
        code, err = reap(first, cluster)
    assert code == 0, err
    running = f"another restore into postgres is running (pid {first.pid} on {socket.gethostname()}"
    for second in (same_dir, other_dir):
        assert second.returncode == 1, second.stderr
        assert running in second.stderr and "nothing was done" in second.stderr
        assert second.stderr.count("\n") == 1
    assert [t for t, _ in restore_events(env)] == ["RestoreStarted"]
    with catalog_of(other_env) as cat:
        assert cat.events(types=["RestoreStarted"]) == []
    assert cluster.psql(FINGERPRINT).strip() == fingerprint


def test_ctrl_c_in_a_backup_says_it_was_recorded_and_nothing_kept(
    tmp_path: Path, env: dict[str, str], big: tuple[Cluster, Path, str]
) -> None:
    """Before: Ctrl-C printed nothing useful (click's "Aborted!") and exited 1."""
    stalled = tmp_path / "stalled"
    slow = wrapped_pg_dump(
        big[0].bindir,
        tmp_path / "slowbin",
        then=f"{{ head -c 65536; touch {stalled}; sleep 60; cat; }}",
    )
    proc = subprocess.Popen(
        [*DUMPLEDGER, "backup", "nightly-by-hand"],
        env={**env, "DUMPLEDGER_PG_BINDIR": str(slow)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=default_ctrl_c,
    )
    deadline = time.monotonic() + 60
    while not stalled.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stalled.exists(), "the backup never started dumping"
    os.killpg(proc.pid, signal.SIGINT)  # the terminal's Ctrl-C: pg_dump gets it too
    code, err = reap(proc)
    assert code == 130, err
    assert err.count("\n") == 1
    assert "interrupted (Ctrl-C): recorded as failed, and nothing of it is kept" in err
    listed = json.loads(run(env, "list", "--json").stdout)
    assert [(b["status"], b["failure_reason"]) for b in listed] == [
        ("failed", "interrupted (Ctrl-C)")
    ]
    store = Path(env["DUMPLEDGER_BACKUP_DIR"]) / "store"
    assert not list(store.rglob(".tmp-*"))
    assert not list((Path(env["DUMPLEDGER_BACKUP_DIR"]) / "database").glob("nightly-by-hand*"))


def test_sigkill_in_a_whole_restore_leaves_an_empty_scratch_database(
    env: dict[str, str], big: tuple[Cluster, Path, str]
) -> None:
    """The plain path (whole database into a scratch database, then the swap) commits nothing
    either. Before: the scratch database kept the tables and rows psql had when its input ended."""
    cluster = big[0]
    name = json.loads(run(env, "backup", "--type", "nightly", "--json").stdout)["name"]
    proc = subprocess.Popen(
        [*DUMPLEDGER, "restore", name, "--target-db", "copy_of_big", "--yes"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=default_ctrl_c,
    )
    try:
        wait_for(
            cluster,
            proc,
            "SELECT bool_or(tuples_processed > 0) FROM pg_stat_progress_copy "
            "WHERE datname LIKE 'copy_of_big_dlrestore_%' AND command = 'COPY FROM'",
        )
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        reap(proc, cluster)
    scratch = cluster.psql(
        "SELECT datname FROM pg_database WHERE datname LIKE 'copy_of_big_dlrestore_%'"
    ).strip()
    assert scratch, "the scratch database is left, as a killed restore leaves it"
    assert (
        cluster.psql("SELECT count(*) FROM pg_class WHERE relname = 'big'", dbname=scratch).strip()
        == "0"
    )
    assert "copy_of_big" not in cluster.psql("SELECT datname FROM pg_database").split()
    later = run(env, "list").stderr
    assert "copy_of_big is as it was, unless the restore had reached its swap" in later
    assert f'DROP DATABASE "{scratch}";' in later
    cluster.psql(f'DROP DATABASE "{scratch}"')

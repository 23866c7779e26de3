"""A table locked by another session: the backup waits database.lock_wait_timeout_seconds, then
fails naming the table and the session that holds it, and records BackupFailed."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import psycopg

from tests.support import catalog_of, cluster_env
from tests.support import run_cli as run


def test_a_locked_table_fails_the_backup_fast_naming_who_holds_it(
    tmp_path: Path, supabase_cluster: Any
) -> None:
    backup_dir = tmp_path / "backups"
    backup_dir.mkdir()
    (backup_dir / "backup-config.json").write_text(
        json.dumps({"database": {"lock_wait_timeout_seconds": 2}})
    )
    env = cluster_env(supabase_cluster, backup_dir)
    holder = psycopg.connect(
        **supabase_cluster.connect_kwargs(user="postgres"), application_name="migration-tool"
    )
    try:
        holder.execute("BEGIN")
        holder.execute("LOCK TABLE public.profiles IN ACCESS EXCLUSIVE MODE")
        pid = holder.info.backend_pid
        t0 = time.monotonic()
        done = run(env, "backup", "--type", "nightly", check=False)
        took = time.monotonic() - t0
    finally:
        holder.close()
    assert done.returncode == 1, done.stderr
    assert took < 60  # not for ever (the default would wait 300 s)
    line = done.stderr
    assert line.count("\n") == 1 and "Traceback" not in line
    assert (
        "locked by another session for longer than database.lock_wait_timeout_seconds (2 s)" in line
    )
    assert f"public.profiles is held in ACCESS EXCLUSIVE mode by pid {pid}" in line
    assert "user postgres" in line and "application 'migration-tool'" in line
    assert "transaction since 20" in line
    assert f"pg_terminate_backend({pid})" in line
    with catalog_of(env) as cat:
        types = [e.type for e in cat.events()]
        failed = cat.events(types=["BackupFailed"])
    assert types == ["BackupStarted", "BackupFailed"]
    assert "public.profiles" in failed[0].payload["reason"]

    # Lock gone: the same settings back up, with pg_dump told how long to wait.
    out = json.loads(run(env, "backup", "--type", "nightly", "--json").stdout)
    with catalog_of(env) as cat:
        [done_event] = cat.events(subject=out["name"], types=["BackupCompleted"])
    options = done_event.payload["metadata"]["dump_options"]["full"]
    assert "--lock-wait-timeout=2000" in options


def test_pg_dump_gives_up_on_a_locked_table_and_says_what_and_where(supabase_cluster: Any) -> None:
    """pg_dump's own wait (--lock-wait-timeout): its error line and its detail line (the
    statement that failed) both reach the message, not just the last line."""
    from pgtools.dump import artifact_specs, run_dump
    from pgtools.locks import PgLockTimeout
    from pgtools.session import SnapshotSession
    from pgtools.target import DbTarget

    target = DbTarget(
        host=str(supabase_cluster.socket_dir),
        port=supabase_cluster.port,
        user="postgres",
        dbname="postgres",
    )
    holder = psycopg.connect(**supabase_cluster.connect_kwargs(user="postgres"))
    try:
        with SnapshotSession(target) as snap:
            holder.execute("BEGIN")
            holder.execute("LOCK TABLE public.todos IN ACCESS EXCLUSIVE MODE")
            spec = artifact_specs(snap.snapshot_id, lock_wait_timeout_ms=500)["full"]
            assert "--lock-wait-timeout=500" in spec.args
            t0 = time.monotonic()
            try:
                run_dump(spec, supabase_cluster.bindir, target, lambda chunks: list(chunks))
            except PgLockTimeout as exc:
                message = str(exc)
            else:
                raise AssertionError("pg_dump did not give up")
            assert time.monotonic() - t0 < 30
    finally:
        holder.close()
    assert message.startswith("pg_dump (full) failed with exit code 1: pg_dump: error:")
    assert "canceling statement due to statement timeout" in message
    assert "LOCK TABLE public.todos IN ACCESS SHARE MODE" in message  # the detail line

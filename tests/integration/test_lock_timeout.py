"""A table locked by another session: the backup waits database.lock_wait_timeout_seconds, then
fails naming the table and the session that holds it, and records BackupFailed."""

from __future__ import annotations

import json
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
        # run_cli gives up after 300 s, the default wait: ending at all is the 2 s applied
        done = run(env, "backup", "--type", "nightly", check=False)
    finally:
        holder.close()
    assert done.returncode == 1, done.stderr
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
            try:
                run_dump(spec, supabase_cluster.bindir, target, lambda chunks: list(chunks))
            except PgLockTimeout as exc:
                message = str(exc)
            else:
                raise AssertionError("pg_dump did not give up")
    finally:
        holder.close()
    assert message.startswith("pg_dump (full) failed with exit code 1: pg_dump: error:")
    assert "canceling statement due to statement timeout" in message
    assert "LOCK TABLE public.todos IN ACCESS SHARE MODE" in message  # the detail line


def test_a_table_restore_behind_an_open_transaction_is_cancelled_and_changes_nothing(
    tmp_path: Path, supabase_cluster: Any
) -> None:
    """restore --table writes into the live database: its TRUNCATE waits behind the
    application's open transaction (and every other query on the table would queue behind
    it). After database.lock_wait_timeout_seconds it is cancelled, nothing is changed, and the
    session it waited for is named; once that transaction ends, the same restore works."""
    backup_dir = tmp_path / "backups"
    backup_dir.mkdir()
    (backup_dir / "backup-config.json").write_text(
        json.dumps({"database": {"lock_wait_timeout_seconds": 2}})
    )
    env = {**cluster_env(supabase_cluster, backup_dir), "SUPABASE_DB_USER": "supabase_admin"}
    name = json.loads(run(env, "backup", "--type", "manual", "--json").stdout)["name"]
    kwargs = supabase_cluster.connect_kwargs(user="postgres")
    with psycopg.connect(**kwargs, autocommit=True) as conn:
        conn.execute("DELETE FROM public.profiles WHERE id IN (SELECT id FROM public.profiles "
                     "ORDER BY id LIMIT 1)")  # fmt: skip
        before = conn.execute("SELECT count(*) FROM public.profiles").fetchone()
    holder = psycopg.connect(**kwargs, application_name="reporting-job")
    try:
        holder.execute("SELECT count(*) FROM public.profiles")  # ACCESS SHARE, held: no commit
        pid = holder.info.backend_pid
        # run_cli gives up after 300 s, the default wait: ending at all is the 2 s applied
        done = run(env, "restore", name, "--table", "public.profiles", "--yes", check=False)
        assert holder.execute("SELECT 1").fetchone() == (1,)  # the application's session lives
    finally:
        holder.close()
    assert done.returncode == 1, done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert "waited longer than database.lock_wait_timeout_seconds (2 s)" in line
    assert "public.profiles" in line and f"pid {pid}" in line
    assert "application 'reporting-job'" in line and f"pg_terminate_backend({pid})" in line
    assert "nothing was changed" in line
    with psycopg.connect(**kwargs, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM public.profiles").fetchone() == before
    with catalog_of(env) as cat:
        [failed] = cat.events(types=["RestoreFailed"])
    assert "lock_wait_timeout_seconds" in failed.payload["reason"]

    run(env, "restore", name, "--table", "public.profiles", "--yes")
    with psycopg.connect(**kwargs, autocommit=True) as conn:
        after = conn.execute("SELECT count(*) FROM public.profiles").fetchone()
    assert after is not None and before is not None and after[0] == before[0] + 1

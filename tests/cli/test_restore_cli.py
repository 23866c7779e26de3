"""`dumpledger restore`, `drill` and `audit` as a person or a script runs them: the
confirmation on a terminal (a real pseudo-terminal), refusals, drills that pass and fail, and
"who restored what when"."""

from __future__ import annotations

import json
import os
import pty
import subprocess
from pathlib import Path

import pytest

from pgtools.cluster import Cluster
from tests.compare import checksums
from tests.support import (
    DUMPLEDGER,
    app_for,
    catalog_of,
    cluster_env,
    fabricate_backup,
    pack_of,
    settings_for,
)
from tests.support import run_cli as run


def run_on_terminal(env: dict[str, str], answer: str, *args: str) -> tuple[int, str]:
    """Run with a pseudo-terminal as stdin (and stdout), typing `answer` at the prompt."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [*DUMPLEDGER, *args], env=env, stdin=slave, stdout=slave, stderr=slave, close_fds=True
    )
    os.close(slave)
    out = b""
    sent = False
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        out += data
        if not sent and b"Type the database name" in out:
            os.write(master, answer.encode() + b"\n")
            sent = True
    os.close(master)
    return proc.wait(timeout=120), out.decode("utf-8", "replace")


@pytest.fixture
def env(tmp_path: Path, supabase_cluster: Cluster) -> dict[str, str]:
    e = cluster_env(supabase_cluster, tmp_path / "backups")
    e["SUPABASE_DB_USER"] = "supabase_admin"
    return e


def event_types(env: dict[str, str]) -> list[str]:
    with catalog_of(env) as cat:
        return [e.type for e in cat.events()]


def test_confirmation_on_a_terminal(env: dict[str, str], supabase_cluster: Cluster) -> None:
    name = json.loads(run(env, "backup", "--type", "nightly", "--json").stdout)["name"]
    supabase_cluster.psql("DELETE FROM public.todos")

    code, out = run_on_terminal(env, "not-the-name", "restore", name)
    assert code == 2, out
    assert "did not match" in out and "nothing was changed" in out
    assert "terminated" in out  # the prompt says other sessions will be ended
    assert "RestoreStarted" not in event_types(env)
    assert checksums(supabase_cluster)["public.todos"].startswith("0:")

    code, out = run_on_terminal(env, "postgres", "restore", name)
    assert code == 0, out
    assert "restored" in out and "safety backup: pre-restore_postgres_" in out
    assert checksums(supabase_cluster)["public.todos"].startswith("200:")


def test_no_terminal_and_no_yes_refuses(env: dict[str, str], supabase_cluster: Cluster) -> None:
    name = json.loads(run(env, "backup", "--type", "nightly", "--json").stdout)["name"]
    supabase_cluster.psql("DELETE FROM public.todos")
    done = run(env, "restore", name, check=False)
    assert done.returncode == 2
    assert done.stderr.strip().endswith("run it in a terminal, or pass --yes")
    assert done.stderr.count("\n") == 1
    assert "RestoreStarted" not in event_types(env)
    assert checksums(supabase_cluster)["public.todos"].startswith("0:")


def test_damaged_backup_is_refused_by_the_cli(
    env: dict[str, str], supabase_cluster: Cluster
) -> None:
    out = json.loads(run(env, "backup", "--type", "nightly", "--json").stdout)
    full = next(a for a in out["artifacts"] if a["kind"] == "full")
    path = pack_of(Path(env["DUMPLEDGER_BACKUP_DIR"]), full["digest"])
    path.write_bytes(path.read_bytes()[:-20])
    done = run(env, "restore", out["name"], "--yes", check=False)
    assert done.returncode == 1
    assert str(path) in done.stderr and "nothing was touched" in done.stderr
    assert "RestoreStarted" not in event_types(env)


def test_plan_json_and_audit_of_restores(env: dict[str, str], supabase_cluster: Cluster) -> None:
    name = json.loads(run(env, "backup", "--type", "nightly", "--json").stdout)["name"]
    plan = json.loads(run(env, "restore", name, "--plan", "--json").stdout)
    assert plan["target"]["name"] == "postgres" and plan["method"] == "swap"
    assert plan["safety_backup"].startswith("pre-restore_postgres_")
    assert "RestoreStarted" not in event_types(env)

    done = json.loads(run(env, "restore", name, "--yes", "--json").stdout)
    audit = json.loads(run(env, "audit", "--action", "restore", "--json").stdout)
    assert [a["event"] for a in audit] == ["RestoreCompleted", "RestoreStarted"]
    newest = audit[0]
    assert newest["backup"] == name
    assert newest["target"].endswith("/postgres")
    assert newest["actor"].endswith("via cli") and "@" in newest["actor"]
    assert newest["when"] and newest["outcome"] == "completed"
    assert newest["payload"]["safety_backup"] == done["safety_backup"]
    text = run(env, "audit", "--action", "restore").stdout
    assert "RestoreCompleted" in text and name in text
    # Only restores: the backups and verifications are not in this answer.
    assert "BackupCompleted" not in text
    bad = run(env, "audit", "--action", "teleport", check=False)
    assert bad.returncode == 2 and "unknown action" in bad.stderr


def test_drill_passes_and_list_info_show_it(env: dict[str, str]) -> None:
    name = json.loads(run(env, "backup", "--type", "nightly", "--json").stdout)["name"]
    out = json.loads(run(env, "drill", "--latest", "--json").stdout)
    assert out["ok"] and out["backup"] == name and out["tables_checked"] >= 6
    assert out["mismatches"] == []
    listed = json.loads(run(env, "list", "--json").stdout)[0]
    assert listed["last_drill_ok"] is True and listed["last_drill_seconds"] is not None
    assert "passed in" in run(env, "info", name).stdout
    assert f"drill passed: {name}" in run(env, "drill", name).stdout
    with catalog_of(env) as cat:
        tested = cat.events(types=["RestoreTested"])
    assert len(tested) == 2 and all(t.payload["ok"] for t in tested)
    assert tested[0].payload["target"]["name"].startswith("dumpledger_drill_")


def test_drill_fails_when_recorded_row_counts_do_not_match(
    tmp_path: Path, env: dict[str, str], supabase_cluster: Cluster
) -> None:
    sql = (
        b"CREATE TABLE public.widgets (id int PRIMARY KEY, label text);\n"
        b"INSERT INTO public.widgets SELECT g, 'w' || g FROM generate_series(1, 10) g;\n"
        b"--\n-- PostgreSQL database dump complete\n--\n"
    )
    with app_for(settings_for(tmp_path, supabase_cluster, user="supabase_admin")) as app:
        fabricate_backup(
            app,
            "drifted_20261124_120000",
            sql,
            row_counts={"public.widgets": 11, "public.gone": 3},
        )
    done = run(env, "drill", "drifted_20261124_120000", check=False)
    assert done.returncode == 1
    assert "public.widgets: 10 rows restored, 11 recorded" in done.stderr
    assert "public.gone: missing after restore" in done.stderr
    with catalog_of(env) as cat:
        tested = cat.events(types=["RestoreTested"])[-1].payload
    assert tested["ok"] is False and len(tested["mismatches"]) == 2
    listed = {b["name"]: b for b in json.loads(run(env, "list", "--json").stdout)}
    assert listed["drifted_20261124_120000"]["last_drill_ok"] is False
    # The scratch database is gone.
    assert "dumpledger_drill_" not in supabase_cluster.psql("SELECT datname FROM pg_database")


def test_table_restore_of_a_referenced_table_with_an_exact_plan(
    env: dict[str, str], supabase_cluster: Cluster
) -> None:
    """Before: the guide's `restore NAME --table ...` failed without --artifact custom, --plan
    said "replaced: auth (1 tables), public (...)", and auth.users, which profiles and todos
    reference, could not be restored at all (TRUNCATE refused it)."""
    name = json.loads(run(env, "backup", "deploy", "--json").stdout)["name"]  # all formats
    before = checksums(supabase_cluster)
    supabase_cluster.psql("UPDATE auth.users SET email = 'lost@example.com' WHERE email LIKE 'a%'")
    plan = run(env, "restore", name, "--table", "auth.users", "--plan").stdout
    assert "rows replaced: auth.users\n" in plan
    assert "emptied with:  DELETE, triggers suspended" in plan
    assert "public.profiles (profiles_id_fkey) -> auth.users" in plan
    assert "public.todos (todos_user_id_fkey) -> auth.users" in plan
    assert "untouched:     every other table" in plan
    assert "replaced:      " not in plan
    run(env, "restore", name, "--table", "auth.users", "--yes")
    assert checksums(supabase_cluster) == before

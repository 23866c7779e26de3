"""`restore --file` and psql meta-commands: a plain dump from outside the catalog that holds
one (`\\! cmd` runs a shell command on this machine) is refused before anything is touched,
plain, gzip or zstd, unless --allow-meta-commands; a backslash in COPY data is data. And a
dump that carries `\\unrestrict` with the backup directory's fixed key cannot unlock psql."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import zstandard

from catalog.events import RestoreStarted
from pgtools.cluster import Cluster
from tests.support import app_for, catalog_of, cluster_env, fabricate_backup, settings_for
from tests.support import run_cli as run

TRAILER = "\n--\n-- PostgreSQL database dump complete\n--\n"


@pytest.fixture
def env(tmp_path: Path, pg_cluster: Cluster) -> dict[str, str]:
    e = cluster_env(pg_cluster, tmp_path / "backups")
    e["SUPABASE_DB_USER"] = "supabase_admin"
    return e


def write(path: Path, text: str) -> Path:
    data = text.encode()
    if path.suffix == ".gz":
        data = gzip.compress(data)
    elif path.suffix == ".zst":
        data = zstandard.ZstdCompressor().compress(data)
    path.write_bytes(data)
    return path


def databases(cluster: Cluster) -> list[str]:
    return cluster.psql("SELECT datname FROM pg_database").split()


@pytest.mark.parametrize("suffix", [".sql", ".sql.gz", ".sql.zst"])
def test_a_file_with_a_meta_command_is_refused(
    tmp_path: Path, env: dict[str, str], pg_cluster: Cluster, suffix: str
) -> None:
    """Before: the restore ran it: `\\!` executed a shell command as the restoring user."""
    marker = tmp_path / "ran"
    dump = write(
        tmp_path / f"evil{suffix}",
        f"CREATE TABLE public.t (id int);\nSELECT 1; \\! touch {marker}\n{TRAILER}",
    )
    target = f"meta_{suffix.replace('.', '_')}"
    done = run(env, "restore", "--file", str(dump), "--target-db", target, "--yes", check=False)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1
    assert f"{dump} line 2: psql meta-command \\!" in done.stderr
    assert "--allow-meta-commands" in done.stderr
    assert not marker.exists()
    assert target not in databases(pg_cluster)
    with catalog_of(env) as cat:
        assert cat.events(types=["RestoreStarted"]) == []


def test_copy_data_and_pg_dumps_own_lines_are_not_meta_commands(
    tmp_path: Path, env: dict[str, str], pg_cluster: Cluster
) -> None:
    dump = write(
        tmp_path / "data.sql.gz",
        "\\restrict abc123\n"
        "CREATE TABLE public.t (note text, id int);\n"
        "COPY public.t (note, id) FROM stdin;\n"
        "\\\\! not a command\t1\n"
        "\\N\t2\n"
        "\\.\n"
        f"{TRAILER}\n\\unrestrict abc123\n",
    )
    run(env, "restore", "--file", str(dump), "--target-db", "copydata", "--yes")
    rows = pg_cluster.psql(
        "SELECT id, coalesce(note, 'NULL') FROM t ORDER BY id", dbname="copydata"
    )
    assert rows.split("\n")[:2] == ["1|\\! not a command", "2|NULL"]


def test_allow_meta_commands_runs_them_but_never_connect(
    tmp_path: Path, env: dict[str, str], pg_cluster: Cluster
) -> None:
    marker = tmp_path / "ran"
    dump = write(
        tmp_path / "trusted.sql", f"CREATE TABLE t (id int);\n\\! touch {marker}\n{TRAILER}"
    )
    args = ("restore", "--file", str(dump), "--target-db", "trusted", "--yes")
    run(env, *args, "--allow-meta-commands")
    assert marker.exists()

    hop = write(tmp_path / "hop.sql", f"CREATE TABLE t (id int);\n\\connect postgres\n{TRAILER}")
    done = run(
        env,
        "restore",
        "--file",
        str(hop),
        "--target-db",
        "hop",
        "--yes",
        "--allow-meta-commands",
        check=False,
    )
    assert done.returncode == 2
    assert "line 2: psql meta-command \\connect switches databases" in done.stderr
    bad = run(env, "restore", "some_backup", "--allow-meta-commands", "--yes", check=False)
    assert bad.returncode == 2 and "--allow-meta-commands is for --file" in bad.stderr


def test_the_fixed_restrict_key_of_a_backup_unlocks_nothing(
    tmp_path: Path, env: dict[str, str], pg_cluster: Cluster
) -> None:
    """A catalog dump that carries `\\unrestrict KEY` with the key pg_dump was given (the same in
    every dump of this backup directory, so anyone who read one dump knows it), followed by a
    meta-command. Before: psql ran it; now the restore runs under a key of its own."""
    marker = tmp_path / "ran"
    key = "k" * 20
    sql = (
        f"\\restrict {key}\nCREATE TABLE public.planted (id int);\n"
        f"\\unrestrict {key}\n\\! touch {marker}\n\\restrict {key}\n"
        f"{TRAILER}\n\\unrestrict {key}\n"
    )
    with app_for(settings_for(tmp_path, pg_cluster, user="supabase_admin")) as app:
        fabricate_backup(app, "planted_20261124_120000", sql.encode(), row_counts={})
    done = run(
        env, "restore", "planted_20261124_120000", "--target-db", "planted", "--yes", check=False
    )
    assert done.returncode == 1
    assert "\\unrestrict: wrong key" in done.stderr
    assert not marker.exists()
    assert "planted" not in databases(pg_cluster)
    with catalog_of(env) as cat:
        started = cat.events(types=["RestoreStarted"])[-1].event()
    assert isinstance(started, RestoreStarted) and started.pid is not None

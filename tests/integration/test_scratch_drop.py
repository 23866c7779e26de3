"""Dropping a scratch database (after a drill, or a failed restore) as a role that is no
superuser: an autovacuum worker busy in it does not stop the drop (CI once left a drill's
scratch database behind this way), nor counts as a session a restore would end; a
superuser's session in it is a clear error."""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg
import pytest

from pgtools.cluster import Cluster
from pgtools.databases import drop_database
from pgtools.errors import PgError
from pgtools.restore import server_facts
from pgtools.target import DbTarget

SCRATCH = "dumpledger_drill_autovacuum"


def _owner_target(cluster: Cluster) -> DbTarget:
    cluster.psql("CREATE ROLE app LOGIN CREATEDB")
    cluster.psql(f'CREATE DATABASE "{SCRATCH}" OWNER app')
    return DbTarget(host=str(cluster.socket_dir), port=cluster.port, user="app", dbname="postgres")


def _databases(cluster: Cluster) -> set[str]:
    return set(cluster.psql("SELECT datname FROM pg_database").split())


def _wait_for_autovacuum(cluster: Cluster, dbname: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    query = (
        "SELECT count(*) FROM pg_stat_activity "
        f"WHERE backend_type = 'autovacuum worker' AND datname = '{dbname}'"
    )
    while time.monotonic() < deadline:
        if cluster.psql(query).strip() != "0":
            return
        time.sleep(0.2)
    raise AssertionError(f"no autovacuum worker started in {dbname} within {seconds} s")


def test_an_autovacuum_worker_in_the_scratch_database_does_not_stop_its_drop(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster("supabase_admin")
    cluster.psql("ALTER SYSTEM SET autovacuum_naptime = 1")
    cluster.psql("SELECT pg_reload_conf()")
    target = _owner_target(cluster)
    # A table autovacuum visits at once and crawls through (one page, then a long nap).
    cluster.psql(
        "CREATE TABLE t (id int, pad text) WITH (autovacuum_vacuum_threshold = 0, "
        "autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_cost_delay = 100, "
        "autovacuum_vacuum_cost_limit = 1);"
        "INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series(1, 200000) g;"
        "DELETE FROM t;",
        dbname=SCRATCH,
        user="app",
    )
    _wait_for_autovacuum(cluster, SCRATCH)
    in_scratch = DbTarget(host=target.host, port=target.port, user="app", dbname=SCRATCH)
    assert server_facts(in_scratch).other_sessions == 0  # autovacuum is nobody's session
    with psycopg.connect(**cluster.connect_kwargs(dbname=SCRATCH, user="app")):
        assert server_facts(in_scratch).other_sessions == 1  # a client is
    drop_database(target, SCRATCH)
    assert SCRATCH not in _databases(cluster)


def test_a_superusers_session_in_the_scratch_database_is_named_and_nothing_is_dropped(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster("supabase_admin")
    target = _owner_target(cluster)
    holder = psycopg.connect(**cluster.connect_kwargs(dbname=SCRATCH))  # as supabase_admin
    try:
        with pytest.raises(PgError) as caught:
            drop_database(target, SCRATCH)
    finally:
        holder.close()
    message = str(caught.value)
    assert message.startswith(f"cannot drop database {SCRATCH}: ")
    assert "supabase_admin" in message and "superuser" in message
    assert SCRATCH in _databases(cluster)

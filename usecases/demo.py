"""The built-in demo: a throwaway Supabase-like database, backed up, verified and listed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pgtools.cluster import Cluster, supabase_fixture_sql
from pgtools.target import DbTarget
from usecases.config.settings import Settings


@contextmanager
def demo_database(say: Callable[[str], None]) -> Iterator[Cluster]:
    """Start a throwaway cluster (superuser supabase_admin), load sample data, stop it after."""
    say("starting a throwaway PostgreSQL server ...")
    cluster = Cluster.create("supabase_admin").start()
    try:
        say(f"  listening on 127.0.0.1:{cluster.port} (data in {cluster.base})")
        say("loading a Supabase-like database: roles, auth, storage, public, RLS, sample rows")
        cluster.psql(supabase_fixture_sql())
        yield cluster
    finally:
        say("stopping the throwaway server")
        cluster.destroy()


def demo_settings(cluster: Cluster, backup_dir: Path) -> Settings:
    """Back up the demo database as the demoted `postgres` role, as on Supabase."""
    return Settings(
        backup_dir=backup_dir,
        database=DbTarget(
            host=str(cluster.socket_dir), port=cluster.port, user="postgres", dbname="postgres"
        ),
        pg_bindir=str(cluster.bindir),
    )

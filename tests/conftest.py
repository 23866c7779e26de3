"""Fixtures: throwaway PostgreSQL clusters the suite starts itself, and a frozen clock.

No test needs a server that is already running. When no server binaries can be found, the
fixtures fail with what to install; they never skip.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import settings

from pgtools.cluster import Cluster, supabase_fixture_sql


@dataclass(frozen=True)
class SupabaseDb:
    cluster: Cluster
    dbname: str = "postgres"
    user: str = "postgres"


@pytest.fixture(scope="session", autouse=True)
def settings_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The suite's own settings cache (usecases.config.cache), not the user's ~/.cache."""
    path = tmp_path_factory.mktemp("settings-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DUMPLEDGER_CACHE_DIR", str(path))
        yield path


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """One cluster for the session; its bootstrap superuser is `supabase_admin`, as on Supabase."""
    cluster = Cluster.create("supabase_admin").start()
    try:
        cluster.psql(supabase_fixture_sql())
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="session")
def supabase_db(pg_cluster: Cluster) -> SupabaseDb:
    """The Supabase-like fixture database, loaded into `postgres` as on a Supabase project."""
    return SupabaseDb(cluster=pg_cluster)


@pytest.fixture
def make_cluster() -> Iterator[Callable[..., Cluster]]:
    """Factory for extra clusters (fresh restore targets and the like), destroyed afterwards."""
    made: list[Cluster] = []

    def make(superuser: str = "supabase_admin") -> Cluster:
        cluster = Cluster.create(superuser).start()
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.destroy()


@pytest.fixture
def supabase_cluster(make_cluster: Callable[..., Cluster]) -> Cluster:
    """A cluster of its own with the Supabase-like database: for tests that change it."""
    cluster = make_cluster("supabase_admin")
    cluster.psql(supabase_fixture_sql())
    return cluster


@pytest.fixture
def frozen_now() -> datetime:
    return datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


# Hypothesis: no per-example deadline; the suite shares two cores with PostgreSQL servers.
settings.register_profile("dumpledger", deadline=None)
settings.load_profile("dumpledger")

"""Catalog URLs for the tests: every catalog test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

_counter = itertools.count()


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'backups' / 'catalog.db'}"


def postgres_url(cluster: Any) -> str:
    """A fresh database in the session's throwaway cluster, reached over its socket."""
    name = f"catalog_{next(_counter)}"
    cluster.create_database(name)
    return (
        f"postgresql+psycopg://{cluster.superuser}@/{name}"
        f"?host={cluster.socket_dir}&port={cluster.port}"
    )

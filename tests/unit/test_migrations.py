"""Migrations: the head the code knows is Alembic's head; the migrations produce exactly the
tables of catalog.schema; and a new catalog, created from catalog.schema without Alembic, is
the same database Alembic would have made (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from catalog import Catalog
from catalog.db import alembic_config, create_catalog_engine
from catalog.read import HEAD_REVISION
from catalog.schema import metadata
from tests.catalog_urls import postgres_url, sqlite_url


def test_head_revision_constant_is_alembics_head() -> None:
    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD_REVISION


@pytest.fixture(params=["sqlite", "postgresql"])
def two_urls(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "a"), sqlite_url(tmp_path / "b")
    cluster = request.getfixturevalue("pg_cluster")
    return postgres_url(cluster), postgres_url(cluster)


def structure(conn: Connection) -> dict[str, Any]:
    """Every table's columns, keys and indexes, as the database reports them."""
    insp = inspect(conn)
    out: dict[str, Any] = {}
    for table in sorted(insp.get_table_names()):
        out[table] = {
            "columns": sorted(
                (c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(table)
            ),
            "pk": insp.get_pk_constraint(table)["constrained_columns"],
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in insp.get_indexes(table)
            ),
            "unique": sorted(tuple(u["column_names"]) for u in insp.get_unique_constraints(table)),
        }
    return out


def test_a_new_catalog_is_what_the_migrations_make(two_urls: tuple[str, str]) -> None:
    created_url, migrated_url = two_urls
    with Catalog.open(created_url) as cat, cat.engine.connect() as conn:
        created = structure(conn)
        stamped = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    engine = create_catalog_engine(migrated_url)
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "head")
    with engine.connect() as conn:
        migrated = structure(conn)
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
        assert MigrationContext.configure(conn).get_current_revision() == HEAD_REVISION
    engine.dispose()
    assert stamped == HEAD_REVISION
    assert created == migrated


def test_alembic_accepts_a_new_catalog_as_at_head(tmp_path: Path) -> None:
    with Catalog.open(sqlite_url(tmp_path)) as cat, cat.engine.begin() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == HEAD_REVISION
        command.upgrade(alembic_config(conn), "head")  # nothing to do, nothing fails
        command.downgrade(alembic_config(conn), "0004")  # and it walks back like any other
        assert MigrationContext.configure(conn).get_current_revision() == "0004"

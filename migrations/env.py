"""Alembic environment: always runs on a connection handed over by catalog.db (never offline)."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from catalog.schema import metadata


def run_migrations_online() -> None:
    connection: Connection | None = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "migrations run through dumpledger (catalog.db.open_engine), not by hand"
        )
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()

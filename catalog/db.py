"""Engines for the catalog: SQLite (WAL, busy timeout, BEGIN IMMEDIATE) or PostgreSQL.

Opening a catalog applies the Alembic migrations under a writer lock, so several processes
opening a fresh catalog at once migrate it exactly once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from catalog.errors import CatalogUnavailable
from catalog.read import BUSY_TIMEOUT_MS, HEAD_REVISION

if TYPE_CHECKING:
    from alembic.config import Config

WRITE_OPTION = "dumpledger_write"  # execution option of the connections `writing` opens
# Any constant: the advisory lock that serialises writers of a PostgreSQL catalog.
PG_WRITER_LOCK = 0x64756D70
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def normalize_url(url: str) -> str:
    """Plain ``postgresql://`` URLs use psycopg 3; relative SQLite paths get their folder made."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def create_catalog_engine(url: str) -> Engine:
    parsed = make_url(normalize_url(url))
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed.database)
    if parsed.get_backend_name() == "postgresql":
        return create_engine(parsed, pool_pre_ping=True)
    raise CatalogUnavailable(
        f"catalog URL {parsed.render_as_string(hide_password=True)!r} is neither sqlite:// "
        "nor postgresql://; fix `catalog_url` in backups/backup-config.json"
    )


def _sqlite_engine(database: str | None) -> Engine:
    if database and database != ":memory:":
        try:
            Path(database).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise CatalogUnavailable(
                f"cannot open the catalog at {database}: {exc.strerror}; "
                "check `catalog_url` and that the directory is writable"
            ) from None
    engine = create_engine(
        f"sqlite:///{database}", connect_args={"timeout": BUSY_TIMEOUT_MS / 1000}
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy's "begin" event issues the BEGIN
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A writer takes the write lock up front, so it waits its turn (busy timeout) instead
        # of failing when it upgrades; a reader takes none and never blocks a writer (WAL).
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    if database and database != ":memory:":
        _restrict(Path(database))
    return engine


def _restrict(path: Path) -> None:
    """The catalog holds who did what: readable by its owner only."""
    if not path.exists():
        path.touch(mode=0o600)
    os.chmod(path, 0o600)


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """One write transaction, serialised with every other writer of the catalog: SQLite's
    BEGIN IMMEDIATE, PostgreSQL's advisory lock. Committed when the block ends normally."""
    with engine.connect() as conn:
        conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            lock_writers(conn)
            yield conn


def lock_writers(conn: Connection) -> None:
    """Serialise writers. SQLite already holds its write lock (BEGIN IMMEDIATE)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_WRITER_LOCK})


def alembic_config(conn: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if conn is not None:
        cfg.attributes["connection"] = conn
    return cfg


def current_revision(conn: Connection) -> str | None:
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def migrate(engine: Engine) -> None:
    """Upgrade to head unless already there; one writer migrates, the others wait and see."""
    try:
        with writing(engine) as conn:
            if current_revision(conn) != HEAD_REVISION:
                from alembic import command

                command.upgrade(alembic_config(conn), "head")
    except SQLAlchemyError as exc:
        raise CatalogUnavailable(
            f"cannot open the catalog at {engine.url.render_as_string(hide_password=True)}: "
            f"{exc.__class__.__name__}: {str(exc).splitlines()[0]}; check `catalog_url` "
            "and that the directory is writable"
        ) from exc

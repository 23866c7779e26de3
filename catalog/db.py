"""Engines for the catalog: SQLite (WAL, busy timeout, BEGIN IMMEDIATE) or PostgreSQL.

Opening a catalog applies the Alembic migrations under a writer lock, so several processes
opening a fresh catalog at once migrate it exactly once.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Connection, Engine, ExceptionContext, make_url
from sqlalchemy.exc import SQLAlchemyError

from catalog.errors import CatalogUnavailable, explain_database_error
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


def create_catalog_engine(url: str, *, read_only: bool = False) -> Engine:
    """An engine for the catalog; `read_only` for a catalog on a read-only filesystem (a
    mounted offsite disk): nothing is created or changed, writes are refused."""
    parsed = make_url(normalize_url(url))
    if parsed.get_backend_name() == "sqlite":
        if read_only:
            engine = _sqlite_read_only_engine(parsed.database)
        else:
            engine = _sqlite_engine(parsed.database)
    elif parsed.get_backend_name() == "postgresql":
        engine = create_engine(parsed, pool_pre_ping=True)
    else:
        raise CatalogUnavailable(
            f"catalog URL {parsed.render_as_string(hide_password=True)!r} is neither sqlite:// "
            "nor postgresql://; fix `catalog_url` in backups/backup-config.json"
        )
    _explain_errors(engine)
    return engine


def catalog_location(engine: Engine) -> str:
    """Where the catalog is, for messages: the file, or the URL without its password."""
    if engine.dialect.name == "sqlite" and engine.url.database:
        return str(engine.url.database)
    return engine.url.render_as_string(hide_password=True)


def _explain_errors(engine: Engine) -> None:
    """A damaged file, a full disk, a read-only filesystem, a server gone: one CatalogError
    naming the catalog and what to do, instead of a driver traceback. Errors that mean a bug
    (integrity, programming) stay as they are."""
    where = catalog_location(engine)

    @event.listens_for(engine, "handle_error")
    def _on_error(ctx: ExceptionContext) -> None:
        orig = ctx.original_exception
        if engine.dialect.name == "sqlite":
            damaged = type(orig) is sqlite3.DatabaseError  # "malformed", "not a database"
            known = damaged or isinstance(orig, sqlite3.OperationalError)
        else:
            import psycopg

            known = isinstance(orig, psycopg.OperationalError)
        if known:
            raise explain_database_error(str(orig), where) from orig


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


def _sqlite_read_only_engine(database: str | None) -> Engine:
    """Query-only connections that create nothing: `mode=ro`, and `immutable=1` where the
    filesystem cannot hold SQLite's shared-memory file (a read-only mount) and no write-ahead
    log is waiting to be read."""
    path = Path(database or "")
    if not database or not path.is_file():
        raise CatalogUnavailable(f"no catalog at {path}; check --backup-dir and `catalog_url`")
    wal = path.with_name(path.name + "-wal")
    pending = wal.is_file() and wal.stat().st_size > 0
    immutable = not os.access(path.parent, os.W_OK) and not pending
    uri = f"file:{quote(str(path.resolve()))}?mode=ro" + ("&immutable=1" if immutable else "")

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
        conn.isolation_level = None
        conn.execute("PRAGMA query_only=ON")
        return conn

    engine = create_engine("sqlite://", creator=connect)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN")

    return engine


def check_revision(engine: Engine) -> None:
    """A read-only catalog is read as it is: only at the schema this dumpledger knows."""
    with engine.connect() as conn:
        found = current_revision(conn)
    if found != HEAD_REVISION:
        raise CatalogUnavailable(
            f"the catalog at {catalog_location(engine)} is read-only and at schema "
            f"{found or 'none'}, not {HEAD_REVISION}: open it once where it is writable, "
            "so that it is upgraded"
        )


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

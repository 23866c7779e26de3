"""What `dumpledger report` reads, and the openers that cannot write.

The statements are plain SQL run through ``catalog.read.Query`` (sqlite3 directly, or
SQLAlchemy for PostgreSQL and for `check`), like `list`'s. A report changes nothing:

- a SQLite catalog opens ``mode=ro`` with ``query_only``; where this user cannot write the
  directory (a read-only copy, another user's backups), SQLite cannot make the WAL index a
  ``mode=ro`` reader needs, so it opens ``immutable=1`` instead: read as the file is, no lock;
- a PostgreSQL catalog is read in read-only transactions (``default_transaction_read_only``).

A catalog at another schema revision is refused with the way out; migrating is a write.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from catalog.errors import CatalogUnavailable
from catalog.read import BUSY_TIMEOUT_MS, HEAD_REVISION, Query

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

# The columns of `backups` a report shows for each backup: not the metadata, whose row counts
# make it the bulk of a row (10,000 of them would cost more to parse than the rest of the
# report), nor what only the newest backup's line needs (see newest_backup).
BACKUP_COLUMNS = (
    "name",
    "backup_type",
    "status",
    "started_at",
    "verified",
    "last_verified_at",
    "last_verify_ok",
    "raw_size",
    "stored_size",
    "failure_reason",
    "last_drill_at",
    "last_drill_ok",
    "last_drill_seconds",
    "pinned",
    "pin_reason",
    "deleted_rule",
)


def sqlite_uri(path: Path, *, immutable: bool) -> str:
    mode = "immutable=1" if immutable else "mode=ro"
    return f"file:{quote(str(path.resolve()))}?{mode}"


def connect_sqlite(path: Path, *, immutable: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(
        sqlite_uri(path, immutable=immutable),
        uri=True,
        timeout=BUSY_TIMEOUT_MS / 1000,
        isolation_level=None,
        check_same_thread=False,
    )
    conn.execute("PRAGMA query_only=ON")
    return conn


def open_sqlite_readonly(path: Path) -> tuple[sqlite3.Connection, bool] | None:
    """A read-only connection to the catalog file and whether it had to be `immutable`; None
    when there is no file. CatalogUnavailable when it is no catalog at this schema revision."""
    if not path.is_file():
        return None
    for immutable in (False, True):
        try:
            conn = connect_sqlite(path, immutable=immutable)
            revision = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.OperationalError as exc:
            if not immutable and _cannot_write_beside(exc):
                continue
            raise CatalogUnavailable(f"cannot read the catalog at {path}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise CatalogUnavailable(f"{path} is not a dumpledger catalog: {exc}") from None
        check_revision(revision[0] if revision else None, str(path))
        conn.row_factory = sqlite3.Row
        return conn, immutable
    return None  # pragma: no cover (the loop returns or raises)


def _cannot_write_beside(exc: sqlite3.OperationalError) -> bool:
    """A `mode=ro` reader of a WAL database needs to make its -shm file."""
    text = str(exc).lower()
    return "readonly" in text or "read-only" in text or "unable to open" in text


def check_revision(revision: str | None, where: str) -> None:
    if revision == HEAD_REVISION:
        return
    if revision is not None and revision < HEAD_REVISION:
        raise CatalogUnavailable(
            f"the catalog at {where} has schema {revision}, this dumpledger reads {HEAD_REVISION}: "
            "run `dumpledger list` once (it upgrades the catalog), then the report"
        )
    raise CatalogUnavailable(
        f"the catalog at {where} has schema {revision or 'none'}, this dumpledger reads "
        f"{HEAD_REVISION}: upgrade dumpledger"
    )


def sqlite_engine(path: Path, *, immutable: bool) -> Engine:
    """SQLAlchemy over the same read-only connection (what `check`'s facts read through)."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import StaticPool

    conn = connect_sqlite(path, immutable=immutable)
    return create_engine("sqlite://", creator=lambda: conn, poolclass=StaticPool)


def postgres_engine(url: str) -> Engine:
    """A PostgreSQL catalog in read-only transactions; CatalogUnavailable when it cannot be
    read or is at another schema revision."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    from catalog.db import normalize_url

    engine = create_engine(
        normalize_url(url),
        connect_args={"options": "-c default_transaction_read_only=on"},
        pool_pre_ping=True,
    )
    shown = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as conn:
            revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except SQLAlchemyError as exc:
        engine.dispose()
        raise CatalogUnavailable(
            f"cannot read the catalog at {shown}: {str(exc).splitlines()[0]}; check `catalog_url`"
        ) from None
    check_revision(revision, shown)
    return engine


def backups(query: Query, since: str) -> list[Mapping[str, Any]]:
    """The backups started since then (deleted ones included) and every one that holds or
    will hold data (retention judges them all), oldest first."""
    sql = (
        f"SELECT {', '.join(BACKUP_COLUMNS)} FROM backups "
        "WHERE started_at >= :since OR status IN ('running', 'completed') "
        "ORDER BY started_at, name"
    )
    return list(query(sql, {"since": since}))


def first_automatic(query: Query) -> str | None:
    """When the first automatic backup the catalog knows started."""
    sql = "SELECT min(started_at) AS first FROM backups WHERE substr(name, 1, 5) = 'auto_'"
    rows = list(query(sql, {}))
    return rows[0]["first"] if rows else None


# Of a completion's payload only the artifacts and the original times (of an import) are
# read: JSON functions of the database cut them out, so the row counts and the rest of the
# metadata are not parsed 10,000 times in Python.
_COMPLETION_FIELDS = {
    "sqlite": (
        "json_extract(payload, '$.artifacts') AS artifacts, "
        "json_extract(payload, '$.started_at') AS started_at, "
        "json_extract(payload, '$.finished_at') AS finished_at"
    ),
    "postgresql": (
        "(payload::json -> 'artifacts')::text AS artifacts, "
        "payload::json ->> 'started_at' AS started_at, "
        "payload::json ->> 'finished_at' AS finished_at"
    ),
}


def completions(query: Query, dialect: str) -> Iterator[Mapping[str, Any]]:
    """BackupCompleted and BackupImported in log order: seq, type, occurred_at, subject, and
    from the payload `artifacts` (JSON text), `started_at` and `finished_at` (of an import)."""
    sql = (
        f"SELECT seq, type, occurred_at, subject, {_COMPLETION_FIELDS[dialect]} FROM events "
        "WHERE type IN ('BackupCompleted', 'BackupImported') ORDER BY seq"
    )
    yield from query(sql, {})


def newest_backup(query: Query) -> dict[str, Any] | None:
    """The newest completed backup with its metadata (database, git commit, versions)."""
    sql = (
        "SELECT * FROM backups WHERE status = 'completed' "
        "ORDER BY started_at DESC, name DESC LIMIT 1"
    )
    rows = [dict(r) for r in query(sql, {})]
    return rows[0] if rows else None


def events(
    query: Query, types: Sequence[str], since: str | None = None
) -> Iterator[Mapping[str, Any]]:
    """Events of these types (since then), in log order, payload as stored (JSON text)."""
    marks = ", ".join(f":t{i}" for i in range(len(types)))
    params: dict[str, Any] = {f"t{i}": t for i, t in enumerate(types)}
    sql = (
        "SELECT seq, type, occurred_at, actor, subject, payload FROM events "
        f"WHERE type IN ({marks})"
    )
    if since is not None:
        sql += " AND occurred_at >= :since"
        params["since"] = since
    yield from query(sql + " ORDER BY seq", params)


def failed_verifications(query: Query, since: str) -> list[Mapping[str, Any]]:
    """BackupVerified events since then that may have failed, newest first: a backup is
    verified many times and almost always passes, so only payloads that say `"ok":false`
    (canonical JSON, no whitespace) are read; the caller checks the parsed payload."""
    sql = (
        "SELECT seq, type, occurred_at, actor, subject, payload FROM events "
        "WHERE type = 'BackupVerified' AND occurred_at >= :since "
        "AND payload LIKE :failed ORDER BY seq DESC"
    )
    return list(query(sql, {"since": since, "failed": '%"ok":false%'}))


def artifact_refs(query: Query) -> list[tuple[str, str, str]]:
    """(backup, digest, codec) of every artifact of a backup that still exists."""
    sql = "SELECT backup_name, digest, codec FROM artifacts"
    return [(r["backup_name"], r["digest"], r["codec"]) for r in query(sql, {})]


def blob_sizes(query: Query) -> list[tuple[str, str, int, int]]:
    """(digest, codec, stored_size, refcount) of every blob the store holds."""
    sql = "SELECT digest, codec, stored_size, refcount FROM blobs"
    return [
        (r["digest"], r["codec"], int(r["stored_size"]), int(r["refcount"])) for r in query(sql, {})
    ]


def event_count(query: Query) -> int:
    rows = list(query("SELECT count(*) AS n FROM events", {}))
    return int(rows[0]["n"]) if rows else 0

"""What `list` reads, as plain SQL any connection can run; the standard library only.

`dumpledger list` over 100,000 backups spends 4 ms in its query and the rest starting up, so
its statements must not need SQLAlchemy to run: the CLI's read path executes them on sqlite3
directly (see ``open_sqlite``), everything else through SQLAlchemy (``catalog.queries``). One
statement text, bound by name (``:since``), serves SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The newest migration in migrations/versions (a test keeps the two in step). Knowing it here
# lets an up-to-date catalog open without importing Alembic, and tells the read path whether
# it may read the catalog as it is.
HEAD_REVISION = "0006"
BUSY_TIMEOUT_MS = 60_000

# Runs one statement with named parameters; returns the rows as mappings.
Query = Callable[[str, Mapping[str, Any]], Iterable[Mapping[str, Any]]]

# What `audit --action` names, as event types.
ACTIONS: dict[str, tuple[str, ...]] = {
    "backup": ("BackupStarted", "BackupCompleted", "BackupFailed"),
    "verify": ("BackupVerified",),
    "restore": ("RestoreStarted", "RestoreCompleted", "RestoreFailed"),
    "drill": ("RestoreTested",),
    "delete": ("BackupDeleted",),
    "collect": ("BlobCollected",),
    "import": ("BackupImported",),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class BackupFilter:
    backup_type: str | None = None
    status: str | None = None
    since: str | None = None  # UTC ISO, inclusive
    until: str | None = None  # UTC ISO, exclusive
    commit_prefix: str | None = None
    branch: str | None = None
    include_deleted: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditFilter:
    actions: tuple[str, ...] = ()
    actor: str | None = None  # substring: "alice" matches "alice@laptop via cli"
    backup: str | None = None
    since: str | None = None  # UTC ISO, inclusive
    until: str | None = None  # UTC ISO, exclusive
    limit: int | None = None


def backups_where(flt: BackupFilter) -> tuple[str, dict[str, Any]]:
    """The WHERE clause over `backups b` that `flt` describes, and its parameters."""
    terms: list[str] = []
    params: dict[str, Any] = {}
    if flt.backup_type:
        terms.append("b.backup_type = :backup_type")
        params["backup_type"] = flt.backup_type
    if flt.status:
        terms.append("b.status = :status")
        params["status"] = flt.status
    elif not flt.include_deleted:
        terms.append("b.status <> 'deleted'")
    if flt.since:
        terms.append("b.started_at >= :since")
        params["since"] = flt.since
    if flt.until:
        terms.append("b.started_at < :until")
        params["until"] = flt.until
    if flt.commit_prefix:  # substr, not LIKE: nothing in the prefix is a wildcard
        terms.append("substr(b.git_commit, 1, :commit_len) = :commit")
        params["commit"] = flt.commit_prefix.lower()
        params["commit_len"] = len(flt.commit_prefix)
    if flt.branch:
        terms.append("b.git_branch = :branch")
        params["branch"] = flt.branch
    return (" WHERE " + " AND ".join(terms) if terms else ""), params


def list_backups(
    query: Query, flt: BackupFilter | None = None, *, limit: int | None = None, offset: int = 0
) -> list[dict[str, Any]]:
    """Newest first; `limit` rows from `offset` on when given (pages of a long history)."""
    where, params = backups_where(flt or BackupFilter())
    sql = f"SELECT b.* FROM backups b{where} ORDER BY b.started_at DESC, b.name DESC"
    if limit is not None:
        sql += " LIMIT :limit OFFSET :offset"
        params.update(limit=limit, offset=offset)
    return [backup_dict(r) for r in query(sql, params)]


def offsite_targets(query: Query, flt: BackupFilter | None = None) -> dict[str, list[str]]:
    """Backup name -> the offsite targets holding all of it, sorted; only backups `flt` lists
    (all of them without one)."""
    sql = "SELECT o.backup_name, o.target FROM offsite_copies o"
    params: dict[str, Any] = {}
    if flt is not None:
        where, params = backups_where(flt)
        sql += f" JOIN backups b ON b.name = o.backup_name{where}"
    sql += " ORDER BY o.backup_name, o.target"
    out: dict[str, list[str]] = {}
    for r in query(sql, params):
        out.setdefault(r["backup_name"], []).append(r["target"])
    return out


def backup_dict(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A `backups` row as the commands show it: JSON metadata parsed, flags as booleans."""
    out = dict(row)
    out["metadata"] = json.loads(out["metadata"] or "{}")
    out["verified"] = bool(out["verified"])
    out["pinned"] = bool(out["pinned"])
    for key in ("last_verify_ok", "last_drill_ok"):
        if out[key] is not None:
            out[key] = bool(out[key])
    return out


def sqlite_file(url: str) -> Path | None:
    """The file of a plain ``sqlite:///path`` URL; None for any other (PostgreSQL, in-memory,
    URL options), which only the full path through SQLAlchemy reads."""
    prefix = "sqlite:///"
    rest = url[len(prefix) :] if url.startswith(prefix) else ""
    if not rest or "?" in rest or rest == ":memory:":
        return None
    return Path(rest)


def open_sqlite(path: Path) -> sqlite3.Connection | None:
    """A query-only sqlite3 connection to an existing catalog at HEAD_REVISION, else None
    (missing, older or newer schema, not a catalog): then the caller opens it the full way,
    which creates or migrates it and says what is wrong."""
    if not path.is_file():
        return None
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    try:
        conn.execute("PRAGMA query_only=ON")
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        conn.close()
        return None
    if row is None or row[0] != HEAD_REVISION:
        conn.close()
        return None
    conn.row_factory = sqlite3.Row
    return conn


def sqlite_query(conn: sqlite3.Connection) -> Query:
    def run(sql: str, params: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
        cursor: Iterable[Mapping[str, Any]] = conn.execute(sql, params)
        return cursor

    return run

"""Read-side queries over the projections: what `list` and `info` show."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, and_, bindparam, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.sql.selectable import TableValuedAlias

from catalog.errors import UnknownBackup
from catalog.recorded import Recorded
from catalog.schema import artifacts, backups, blobs, events, offsite_copies


@dataclass(frozen=True, slots=True, kw_only=True)
class BackupFilter:
    backup_type: str | None = None
    status: str | None = None
    since: str | None = None  # UTC ISO, inclusive
    until: str | None = None  # UTC ISO, exclusive
    commit_prefix: str | None = None
    branch: str | None = None
    include_deleted: bool = False


def list_backups(engine: Engine, flt: BackupFilter | None = None) -> list[dict[str, Any]]:
    """Newest first."""
    flt = flt or BackupFilter()
    q = select(backups).order_by(backups.c.started_at.desc(), backups.c.name.desc())
    if flt.backup_type:
        q = q.where(backups.c.backup_type == flt.backup_type)
    if flt.status:
        q = q.where(backups.c.status == flt.status)
    elif not flt.include_deleted:
        q = q.where(backups.c.status != "deleted")
    if flt.since:
        q = q.where(backups.c.started_at >= flt.since)
    if flt.until:
        q = q.where(backups.c.started_at < flt.until)
    if flt.commit_prefix:
        q = q.where(backups.c.git_commit.startswith(flt.commit_prefix.lower()))
    if flt.branch:
        q = q.where(backups.c.git_branch == flt.branch)
    with engine.connect() as conn:
        return [_backup_dict(r) for r in conn.execute(q)]


def get_backup(engine: Engine, name: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(select(backups).where(backups.c.name == name)).first()
        if row is None:
            raise UnknownBackup(name)
        out = _backup_dict(row)
        arts = conn.execute(
            select(artifacts).where(artifacts.c.backup_name == name).order_by(artifacts.c.kind)
        )
        out["artifacts"] = [dict(a._mapping) for a in arts]
    return out


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
class AuditFilter:
    actions: tuple[str, ...] = ()
    actor: str | None = None  # substring: "alice" matches "alice@laptop via cli"
    backup: str | None = None
    since: str | None = None  # UTC ISO, inclusive
    until: str | None = None  # UTC ISO, exclusive
    limit: int | None = None


def audit_events(engine: Engine, flt: AuditFilter) -> list[Recorded]:
    """Events matching the filter, newest first."""
    q = select(events).order_by(events.c.seq.desc())
    types = [t for a in flt.actions for t in ACTIONS[a]]
    if types:
        q = q.where(events.c.type.in_(types))
    if flt.actor:
        q = q.where(events.c.actor.contains(flt.actor, autoescape=True))
    if flt.backup:
        q = q.where(events.c.subject == flt.backup)
    if flt.since:
        q = q.where(events.c.occurred_at >= flt.since)
    if flt.until:
        q = q.where(events.c.occurred_at < flt.until)
    if flt.limit:
        q = q.limit(flt.limit)
    with engine.connect() as conn:
        return [Recorded.from_row(r) for r in conn.execute(q)]


def retention_rows(engine: Engine) -> Sequence[Sequence[Any]]:
    """Every backup that still holds (or will hold) data, as rows of the columns retention needs,
    to unpack in this order: name, status, started_at, verified, last_verify_ok, pinned,
    pin_reason. (100,000 rows turned into dicts cost a second.)"""
    q = select(
        backups.c.name,
        backups.c.status,
        backups.c.started_at,
        backups.c.verified,
        backups.c.last_verify_ok,
        backups.c.pinned,
        backups.c.pin_reason,
    ).where(backups.c.status.in_(("running", "completed")))
    with engine.connect() as conn:
        return conn.execute(q).all()


def bytes_freed_without(engine: Engine, names: Collection[str]) -> int:
    """Stored bytes of the blobs that only `names` reference: what removing them would free.

    A blob goes when the artifacts of `names` hold all its references (refcount, as the
    projections count them); a blob shared with a backup that stays does not. One read-only
    query: the names go in as one JSON array that the database turns into rows, so 100,000
    names cost neither inserts nor a temporary table.
    """
    if not names:
        return 0
    with engine.connect() as conn:
        # Sorted, so the artifact lookups walk the primary key in order.
        going = _json_rows(conn.dialect.name, sorted(set(names)))
        per_blob = (
            select(artifacts.c.digest, artifacts.c.codec, func.count().label("n"))
            .select_from(going)
            .join(artifacts, artifacts.c.backup_name == going.c.value)
            .group_by(artifacts.c.digest, artifacts.c.codec)
            .subquery()
        )
        freed = (
            select(func.coalesce(func.sum(blobs.c.stored_size), 0))
            .select_from(per_blob)
            .join(
                blobs, and_(blobs.c.digest == per_blob.c.digest, blobs.c.codec == per_blob.c.codec)
            )
            .where(blobs.c.refcount - per_blob.c.n <= 0)
        )
        return int(conn.execute(freed).scalar_one())


def _json_rows(dialect: str, values: list[str]) -> TableValuedAlias:
    """`values` as a table of one column, `value`: SQLite's json_each or PostgreSQL's
    json_array_elements_text over one JSON array bound as a single parameter."""
    array = bindparam("values", values, type_=JSON)
    unnest = func.json_array_elements_text if dialect == "postgresql" else func.json_each
    return unnest(array).table_valued("value")


def running_backups(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(backups).where(backups.c.status == "running"))
        return [_backup_dict(r) for r in rows]


def blob_rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(blobs).order_by(blobs.c.digest))]


def offsite_targets(engine: Engine) -> dict[str, list[str]]:
    """Backup name -> the offsite targets that hold every one of its artifacts, sorted."""
    q = select(offsite_copies.c.backup_name, offsite_copies.c.target).order_by(
        offsite_copies.c.backup_name, offsite_copies.c.target
    )
    out: dict[str, list[str]] = {}
    with engine.connect() as conn:
        for r in conn.execute(q):
            out.setdefault(r.backup_name, []).append(r.target)
    return out


def _backup_dict(row: Any) -> dict[str, Any]:
    out = dict(row._mapping)
    out["metadata"] = json.loads(out["metadata"] or "{}")
    out["verified"] = bool(out["verified"])
    out["pinned"] = bool(out["pinned"])
    for key in ("last_verify_ok", "last_drill_ok"):
        if out[key] is not None:
            out[key] = bool(out[key])
    return out


def blob_encryption(engine: Engine, digest: str, codec: str) -> dict[str, Any] | None:
    """The "encryption" entry recorded by the backup that first referenced this blob, if any.

    An encrypted blob is written once; a later backup of the same dump reuses it, so it is
    encrypted to the recipients of that first backup, not necessarily to today's.
    """
    key = (blobs.c.digest == digest) & (blobs.c.codec == codec)
    with engine.connect() as conn:
        first = conn.execute(select(blobs.c.first_seq).where(key)).scalar()
        if first is None:
            return None
        payload = conn.execute(select(events.c.payload).where(events.c.seq == first)).scalar()
    for art in json.loads(payload or "{}").get("artifacts", []):
        if isinstance(art, dict) and art.get("digest") == digest and art.get("codec") == codec:
            found = art.get("encryption")
            return dict(found) if isinstance(found, dict) else None
    return None

"""Read-side queries over the projections: what `list` and `info` show."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sqlalchemy import JSON, and_, bindparam, func, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.selectable import TableValuedAlias

from catalog import read
from catalog.errors import UnknownBackup
from catalog.read import ACTIONS, AuditFilter, BackupFilter, Query, backup_dict
from catalog.recorded import Recorded
from catalog.schema import artifacts, backups, blobs, events


def engine_query(engine: Engine) -> Query:
    """catalog.read's statements, run through SQLAlchemy (any catalog URL)."""

    def run(sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        with engine.connect() as conn:
            return [dict(r) for r in conn.execute(text(sql), dict(params)).mappings()]

    return run


def list_backups(
    engine: Engine, flt: BackupFilter | None = None, *, limit: int | None = None, offset: int = 0
) -> list[dict[str, Any]]:
    """Newest first; `limit` rows from `offset` on when given."""
    return read.list_backups(engine_query(engine), flt, limit=limit, offset=offset)


def get_backup(engine: Engine, name: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(select(backups).where(backups.c.name == name)).first()
        if row is None:
            raise UnknownBackup(name)
        out = backup_dict(row._mapping)
        shown = [c for c in artifacts.c if c.name != "recipients"]  # in metadata.encryption
        arts = conn.execute(
            select(*shown).where(artifacts.c.backup_name == name).order_by(artifacts.c.kind)
        )
        out["artifacts"] = [dict(a._mapping) for a in arts]
        out["anchor"] = _anchor(conn, name)
    return out


ANCHOR_EVENTS = ("BackupCompleted", "BackupImported")


def _anchor(conn: Connection, name: str) -> dict[str, Any] | None:
    """The event that made backup `name` complete: its seq, type and hash. The backup's
    metadata file records it, outside the catalog, so that `catalog verify` can tell when the
    log was cut short or rewritten since (see usecases.integrity)."""
    row = conn.execute(
        select(events.c.seq, events.c.type, events.c.hash)
        .where(events.c.subject == name, events.c.type.in_(ANCHOR_EVENTS))
        .order_by(events.c.seq.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return {"seq": int(row.seq), "event": row.type, "hash": row.hash}


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


def blobs_freed_without(
    engine: Engine, names: Collection[str], *, among: Collection[str] | None = None
) -> list[tuple[str, str]]:
    """(digest, codec) of the blobs that only `names` reference: what removing them releases
    (only those whose digest is `among`, when given: the blobs a store holds).

    A blob is released when the artifacts of `names` hold all its references (refcount, as
    the projections count them); a blob shared with a backup that stays is not. One read-only
    query: the names go in as one JSON array that the database turns into rows, so 100,000
    names cost neither inserts nor a temporary table.
    """
    if not names or (among is not None and not among):
        return []
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
            select(blobs.c.digest, blobs.c.codec)
            .select_from(per_blob)
            .join(
                blobs, and_(blobs.c.digest == per_blob.c.digest, blobs.c.codec == per_blob.c.codec)
            )
            .where(blobs.c.refcount - per_blob.c.n <= 0)
        )
        if among is not None:
            held = _json_rows(conn.dialect.name, sorted(set(among)), "among")
            freed = freed.where(blobs.c.digest.in_(select(held.c.value)))
        return [(str(d), str(c)) for d, c in conn.execute(freed)]


def _json_rows(dialect: str, values: list[str], name: str = "values") -> TableValuedAlias:
    """`values` as a table of one column, `value`: SQLite's json_each or PostgreSQL's
    json_array_elements_text over one JSON array bound as a single parameter."""
    array = bindparam(name, values, type_=JSON)
    unnest = func.json_array_elements_text if dialect == "postgresql" else func.json_each
    return unnest(array).table_valued("value")


def deleted_among(engine: Engine, names: Collection[str]) -> set[str]:
    """Those of `names` that the catalog records as deleted (unknown names are not)."""
    wanted, found = sorted(names), set[str]()
    with engine.connect() as conn:
        for i in range(0, len(wanted), 500):
            q = select(backups.c.name).where(
                backups.c.name.in_(wanted[i : i + 500]), backups.c.status == "deleted"
            )
            found.update(conn.execute(q).scalars())
    return found


def running_backups(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(backups).where(backups.c.status == "running"))
        return [backup_dict(r._mapping) for r in rows]


def blob_refs(
    engine: Engine, *, among: Collection[str] | None = None
) -> list[tuple[str, str, int]]:
    """(digest, codec, refcount) of every blob the catalog knows (whose digest is `among`,
    when given): what it references (> 0) and what it released (<= 0, not collected yet)."""
    if among is not None and not among:
        return []
    q = select(blobs.c.digest, blobs.c.codec, blobs.c.refcount)
    with engine.connect() as conn:
        if among is not None:
            held = _json_rows(conn.dialect.name, sorted(set(among)), "among")
            q = q.where(blobs.c.digest.in_(select(held.c.value)))
        return [(str(d), str(c), int(n)) for d, c, n in conn.execute(q)]


def backups_with_blob(engine: Engine, digest: str, codec: str) -> list[str]:
    """The backups that have an artifact stored in this blob."""
    q = select(artifacts.c.backup_name).where(
        artifacts.c.digest == digest, artifacts.c.codec == codec
    )
    with engine.connect() as conn:
        return sorted({str(n) for n in conn.execute(q).scalars()})


def blob_rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(blobs).order_by(blobs.c.digest))]


def offsite_targets(engine: Engine) -> dict[str, list[str]]:
    """Backup name -> the offsite targets that hold every one of its artifacts, sorted."""
    return read.offsite_targets(engine_query(engine))


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

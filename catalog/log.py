"""The catalog: an append-only, hash-chained event log with projections kept in step."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.engine import Connection, Engine

from catalog import projections, replay
from catalog.canonical import GENESIS_HASH, canonical_json, chain_hash, utc_iso
from catalog.db import catalog_location, check_revision, create_catalog_engine, migrate, writing
from catalog.errors import CatalogReadOnly
from catalog.events import BackupDeleted, BackupStarted, BlobCollected, Event
from catalog.recorded import Recorded
from catalog.schema import backups, blobs, checkpoints, events

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class ChainReport:
    ok: bool
    events: int
    problems: list[str] = field(default_factory=list)


class Catalog:
    """Open with :meth:`open`; every state change goes through :meth:`append`."""

    def __init__(self, engine: Engine, *, clock: Clock = _utcnow) -> None:
        self.engine = engine
        self._clock = clock
        self.read_only = False  # opened with read_only=True: every append is refused

    @classmethod
    def open(cls, url: str, *, clock: Clock = _utcnow, read_only: bool = False) -> Catalog:
        """Open (creating or upgrading it); `read_only`: as it is, for reading only (a catalog
        on a read-only filesystem), every append refused with CatalogReadOnly."""
        engine = create_catalog_engine(url, read_only=read_only)
        try:
            check_revision(engine) if read_only else migrate(engine)
        except BaseException:
            engine.dispose()
            raise
        catalog = cls(engine, clock=clock)
        catalog.read_only = read_only
        return catalog

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------------------

    def append(self, event: Event, *, actor: str) -> Recorded:
        """Append one event and fold it into the projections, in one transaction."""
        return self.append_all([event], actor=actor)[0]

    def append_all(
        self,
        batch: Sequence[Event],
        *,
        actor: str,
        precondition: Callable[[Connection], bool] | None = None,
    ) -> list[Recorded]:
        """Append in one transaction; with `precondition`, only if it holds under the lock."""
        self._refuse_if_read_only()
        with writing(self.engine) as conn:
            if precondition is not None and not precondition(conn):
                return []
            last = conn.execute(
                select(events.c.seq, events.c.hash).order_by(events.c.seq.desc()).limit(1)
            ).first()
            seq, prev = (int(last.seq), last.hash) if last else (0, GENESIS_HASH)
            out = []
            for event in batch:
                seq += 1
                rec = self._record(seq, prev, event, actor)
                conn.execute(insert(events), _row(rec))
                projections.fold(conn, rec)
                out.append(rec)
                prev = rec.hash
            if out:
                projections.move_checkpoint(conn, out[-1])
            return out

    def collect_blob(self, digest: str, codec: str, *, actor: str) -> Recorded | None:
        """Record that a blob goes, if (re-checked under the writers' lock) nothing references it.

        Returns None when a backup referenced it since the caller looked: keep the file.
        """

        def unreferenced(conn: Connection) -> bool:
            row = conn.execute(
                select(blobs.c.refcount).where(blobs.c.digest == digest, blobs.c.codec == codec)
            ).first()
            return row is None or int(row.refcount) <= 0

        done = self.append_all(
            [BlobCollected(digest=digest, codec=codec)], actor=actor, precondition=unreferenced
        )
        return done[0] if done else None

    def delete_backup(
        self, event: BackupDeleted, *, actor: str, allow_pinned: bool = False
    ) -> Recorded | None:
        """Append BackupDeleted if, under the writers' lock, the backup is still deletable:
        not running, not already deleted, and not pinned (unless `allow_pinned`)."""

        def deletable(conn: Connection) -> bool:
            row = conn.execute(
                select(backups.c.status, backups.c.pinned).where(backups.c.name == event.backup)
            ).first()
            if row is None or row.status in ("running", "deleted"):
                return False
            return allow_pinned or not row.pinned

        done = self.append_all([event], actor=actor, precondition=deletable)
        return done[0] if done else None

    def start_backup(self, event: BackupStarted, *, actor: str) -> Recorded | None:
        """Append BackupStarted if, under the writers' lock, no backup has that name yet; None
        when another process took the name since the caller looked (a backup is never started
        twice under one name: the second BackupStarted would reset the first's row)."""

        def unused(conn: Connection) -> bool:
            taken = select(backups.c.name).where(backups.c.name == event.backup)
            return conn.execute(taken).first() is None

        done = self.append_all([event], actor=actor, precondition=unused)
        return done[0] if done else None

    def identity(self) -> str | None:
        """The id of the first event: names this catalog (None while it is empty)."""
        with self.engine.connect() as conn:
            return conn.execute(select(events.c.id).where(events.c.seq == 1)).scalar()

    def _record(self, seq: int, prev: str, event: Event, actor: str) -> Recorded:
        body = {
            "seq": seq,
            "id": str(uuid.uuid4()),
            "type": type(event).__name__,
            "occurred_at": utc_iso(self._clock()),
            "actor": actor,
            "subject": event.subject,
            "payload": event.payload(),
        }
        return Recorded(**body, prev_hash=prev, hash=chain_hash(prev, body))  # type: ignore[arg-type]

    def _refuse_if_read_only(self) -> None:
        if self.read_only:
            raise CatalogReadOnly(
                f"the catalog at {catalog_location(self.engine)} was opened read-only (the "
                "backup directory is not writable): this command must record what it does; "
                "run it where the backup directory is writable"
            )

    def rebuild(self) -> None:
        """Drop the projections and replay them from the log alone."""
        self._refuse_if_read_only()
        with writing(self.engine) as conn:
            projections.rebuild(conn, list(self._iter_events(conn)))  # not lazily: same conn

    # -- reading ---------------------------------------------------------------------------

    def events(
        self, *, subject: str | None = None, types: Sequence[str] | None = None
    ) -> list[Recorded]:
        query = select(events).order_by(events.c.seq)
        if subject is not None:
            query = query.where(events.c.subject == subject)
        if types:
            query = query.where(events.c.type.in_(list(types)))
        with self.engine.connect() as conn:
            return [Recorded.from_row(r) for r in conn.execute(query)]

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(events)).scalar_one())

    def _iter_events(self, conn: Connection) -> Iterator[Recorded]:
        for row in conn.execute(select(events).order_by(events.c.seq)):
            yield Recorded.from_row(row)

    def snapshot(self) -> dict[str, list[tuple[object, ...]]]:
        with self.engine.connect() as conn:
            return projections.snapshot(conn)

    def projection_differences(self) -> list[str]:
        """Every projection row that differs from the fold of the log (in a scratch database;
        the catalog is only read): the tables edited by hand, or left behind by an upgrade."""
        with self.engine.connect() as conn:
            folded = replay.fold(self._iter_events(conn))
            try:
                with folded.connect() as mine:
                    return replay.differences(conn, mine)
            finally:
                folded.dispose()

    def backup_by_log(self, name: str) -> dict[str, Any] | None:
        """Backup `name` as its events in the log describe it (status, artifacts), not as the
        projection tables say; None when the log never started or imported it. A new stored
        form of one of its blobs (BlobRepaired, BlobMigrated: their subject is the digest) is
        part of what the log says of it."""
        own = self.events(subject=name)
        digests = {
            str(a.get("digest"))
            for r in own
            for a in (r.payload.get("artifacts") or [])
            if isinstance(a, dict)
        }
        if digests:
            blob_events = self.events(types=["BlobRepaired", "BlobMigrated"])
            own = sorted([*own, *(r for r in blob_events if r.subject in digests)], key=_seq)
        return replay.backup_of(own, name)

    def verify_chain(self) -> ChainReport:
        """Detect edited, deleted, inserted or reordered rows.

        Rows are hashed as stored (fast_row_hash: no JSON parsing); only a row whose stored
        text does not give its hash is decoded and judged the exact way (Recorded)."""
        problems: list[str] = []
        columns = ", ".join(ROW_COLUMNS)
        with self.engine.connect() as conn:
            rows = conn.exec_driver_sql(f"SELECT {columns} FROM events ORDER BY seq").fetchall()
            head = conn.execute(select(checkpoints)).first()
        prev, expected_seq = GENESIS_HASH, 1
        for row in rows:
            seq, row_prev, row_hash = int(row[0]), row[7], row[8]
            if seq != expected_seq or row_prev != prev or fast_row_hash(row) != row_hash:
                rec = Recorded.from_row(_Row(dict(zip(ROW_COLUMNS, row, strict=True))))
                problems.extend(_check_row(rec, prev, expected_seq))
            prev, expected_seq = row_hash, seq + 1
        last = (int(rows[-1][0]), rows[-1][8]) if rows else (0, GENESIS_HASH)
        problems.extend(_check_head(last, head))
        return ChainReport(ok=not problems, events=len(rows), problems=problems)


def _seq(rec: Recorded) -> int:
    return rec.seq


def _check_row(rec: Recorded, prev: str, expected_seq: int) -> list[str]:
    problems = []
    if rec.seq != expected_seq:
        problems.append(f"event seq {rec.seq}: expected seq {expected_seq} (rows deleted or moved)")
    if rec.prev_hash != prev:
        problems.append(f"event seq {rec.seq}: prev_hash does not match the previous row's hash")
    if rec.expected_hash() != rec.hash:
        problems.append(f"event seq {rec.seq} ({rec.type} {rec.subject}): content was edited")
    return problems


ROW_COLUMNS = (
    "seq",
    "id",
    "type",
    "occurred_at",
    "actor",
    "subject",
    "payload",
    "prev_hash",
    "hash",
)


class _Row:
    """What Recorded.from_row reads: a `_mapping`."""

    def __init__(self, mapping: dict[str, Any]) -> None:
        self._mapping = mapping


def fast_row_hash(row: Sequence[Any]) -> str:
    """chain_hash of a stored row without parsing its payload: the payload column holds its
    canonical JSON (written by `_row`), so the body's canonical JSON is assembled around it,
    keys in sorted order. Equal to Recorded.expected_hash() whenever the stored payload is
    canonical; a row whose text differs gives another hash and is judged the exact way."""
    seq, id_, type_, occurred_at, actor, subject, payload, prev, _ = row
    if not isinstance(payload, str):
        return ""
    text = (
        f'{{"actor":{_dumps(actor)},"id":{_dumps(id_)},"occurred_at":{_dumps(occurred_at)},'
        f'"payload":{payload},"seq":{int(seq)},"subject":{_dumps(subject)},"type":{_dumps(type_)}}}'
    )
    return hashlib.sha256((prev + text).encode("utf-8")).hexdigest()


_ESCAPED = re.compile(r'["\\\x00-\x1f]')  # what json.dumps(ensure_ascii=False) escapes


def _dumps(value: Any) -> str:
    if isinstance(value, str) and not _ESCAPED.search(value):
        return f'"{value}"'
    return json.dumps(value, ensure_ascii=False)


def _check_head(last: tuple[int, str], head: object) -> list[str]:
    last_seq = getattr(head, "last_seq", 0) if head is not None else 0
    last_hash = getattr(head, "head_hash", GENESIS_HASH) if head is not None else GENESIS_HASH
    actual_seq, actual_hash = last
    if (actual_seq, actual_hash) != (last_seq, last_hash):
        return [f"chain head is seq {actual_seq} but the checkpoint recorded seq {last_seq}"]
    return []


def _row(rec: Recorded) -> dict[str, object]:
    return {
        **rec.body(),
        "payload": canonical_json(rec.payload),
        "prev_hash": rec.prev_hash,
        "hash": rec.hash,
    }

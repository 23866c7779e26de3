"""`dumpledger store migrate`: the whole blobs (the first layout) this catalog's backups
reference become chunked artifacts, so they deduplicate with each other and with newer
backups; their whole-blob files go.

Per blob, under the store's exclusive lock (as collection: no backup, restore or cleanup
runs meanwhile): stored chunked beside the blob and read back whole (store/convert.py), then
BlobMigrated appended (every artifact of the blob expects the manifest from then on), then
the blob file removed. Killed anywhere, every backup stays restorable (the store reads the form
the catalog expects while both are there) and the next run finishes the job. An encrypted
blob is decrypted with the identity and its chunks go into sealed packs, encrypted to the
configured recipients. Never converted: an encrypted blob this host cannot read, or could not
read back sealed (store/convert.sealed_reason), a blob another catalog sharing the store
references or wrote (its catalog expects the whole blob), a damaged one (reported:
`dumpledger verify`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from catalog.events import BlobMigrated
from catalog.queries import get_backup, list_backups
from catalog.read import BackupFilter
from catalog.schema import artifacts, blobs
from store import BlobCorrupted, Codec, DecryptionKeyError, LocalStore, Ref
from store.chunked import crashpoint
from store.convert import (
    Converted,
    chunk_whole,
    drop_whole,
    held_by_others,
    read_back,
    sealed_reason,
)
from store.convert import whole_size as whole_size_of
from usecases.context import App
from usecases.errors import BadInput, UseCaseError
from usecases.storage.roots import attach, catalog_refs

ProgressFn = Callable[[str, int], None]
HELD = {
    "other": "another catalog sharing the store references it: it stays whole for that catalog",
    "legacy": "kept from before the store had roots (a catalog not registered yet may "
    "reference it): once every catalog using the store is registered, `dumpledger store "
    "adopt`, then migrate again",
}


@dataclass(slots=True, kw_only=True)
class Outcome:
    digest: str
    codec: str
    backups: list[str]
    whole_size: int  # the whole blob's bytes
    status: str = "todo"  # converted, skipped, damaged (a dry run: todo, skipped)
    reason: str = ""
    added_bytes: int = 0  # new packs and the manifest the conversion stored

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "codec": self.codec,
            "backups": self.backups,
            "whole_bytes": self.whole_size,
            "status": self.status,
            "reason": self.reason,
            "added_bytes": self.added_bytes,
        }


@dataclass(slots=True, kw_only=True)
class MigrateReport:
    dry_run: bool
    outcomes: list[Outcome] = field(default_factory=list)
    postponed: bool = False  # a backup, restore or cleanup held the store: run again
    links_removed: list[str] = field(default_factory=list)  # first-layout symlinks to blobs

    def of(self, status: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == status]

    @property
    def whole_bytes(self) -> int:
        """Bytes of the whole blobs converted (a dry run: that it would convert)."""
        return sum(o.whole_size for o in self.of("todo" if self.dry_run else "converted"))

    @property
    def freed_bytes(self) -> int:
        """Converted: the whole blobs removed less the packs and manifests they added. A
        dry run: an upper bound (what the new chunks take back is known once chunked)."""
        done = self.of("todo" if self.dry_run else "converted")
        return sum(o.whole_size - o.added_bytes for o in done)

    @property
    def damaged(self) -> bool:
        return bool(self.of("damaged"))

    def to_json(self) -> dict[str, Any]:
        counts = {s: len(self.of(s)) for s in ("todo", "converted", "skipped", "damaged")}
        return {
            "dry_run": self.dry_run,
            "postponed": self.postponed,
            "counts": counts,
            "whole_bytes": self.whole_bytes,
            "freed_bytes": self.freed_bytes,
            "freed_bytes_is_estimate": self.dry_run,
            "links_removed": self.links_removed,
            "blobs": [o.to_json() for o in self.outcomes],
        }


def migrate(
    app: App,
    names: Collection[str] = (),
    *,
    dry_run: bool = False,
    wait: float = 5.0,
    progress: ProgressFn | None = None,
) -> MigrateReport:
    """Convert the whole blobs of `names` (every backup when empty); a dry run changes
    nothing and counts exactly the blobs a real run converts (but damaged ones)."""
    store = app.store
    if not isinstance(store, LocalStore):
        raise BadInput("store migrate needs a local store")
    report = MigrateReport(dry_run=dry_run)
    owner = app.catalog.identity() if dry_run else attach(app)
    report.outcomes = _candidates(app, store, names, owner)
    if dry_run:
        return report
    for item in report.outcomes:
        if item.status != "todo":
            continue
        with store.collecting(wait=wait) as alone:
            if not alone:
                report.postponed = True
                break
            _convert(app, store, owner, item, progress)
    try:
        _refresh_views(app, store, report)
    except OSError as exc:
        raise UseCaseError(
            f"{len(report.of('converted'))} blob(s) converted and recorded, but the files under "
            f"{app.settings.database_dir} could not be refreshed ({exc.strerror or exc}); the "
            "backups are safe: run `dumpledger store migrate` again"
        ) from None
    return report


def _candidates(
    app: App, store: LocalStore, names: Collection[str], owner: str | None
) -> list[Outcome]:
    """The whole blobs the backups reference, each with what a run does with it."""
    by_ref: dict[Ref, list[str]] = {}
    for name in _backups(app, names):
        for art in get_backup(app.catalog.engine, name)["artifacts"]:
            by_ref.setdefault(Ref(art["digest"], Codec(art["codec"])), []).append(name)
    others = {}
    if owner is not None:  # a dry run reads the store as this catalog's registration leaves it
        known = None if store.registered(owner) else catalog_refs(app).known
        others = held_by_others(store, owner, known=known)
    out = []
    for ref, backups in sorted(by_ref.items()):
        size = whole_size_of(store, ref.digest, ref.codec)
        if size is None:
            continue  # chunked already
        item = Outcome(
            digest=ref.digest, codec=ref.codec.value, backups=sorted(set(backups)), whole_size=size
        )
        if ref in others:
            item.status, item.reason = "skipped", HELD[others[ref]]
        elif ref.codec.sealed and (why := _sealed_reason(store, ref)) is not None:
            item.status, item.reason = "skipped", why
        out.append(item)
    return out


def _sealed_reason(store: LocalStore, ref: Ref) -> str | None:
    path = store.blob_file(ref.digest, ref.codec)
    if path is None:
        return None
    try:
        return sealed_reason(store, path)
    except DecryptionKeyError as exc:  # the identity file itself: one line, nothing changed
        raise BadInput(str(exc)) from None


def _backups(app: App, names: Collection[str]) -> list[str]:
    rows = list_backups(app.catalog.engine, BackupFilter(status="completed"))
    completed = [b["name"] for b in rows]
    if not names:
        return sorted(completed)
    missing = sorted(set(names) - set(completed))
    if missing:
        raise BadInput(
            f"no completed backup named {missing[0]!r}; `dumpledger list` shows the backups"
        )
    return sorted(set(names))


def _convert(
    app: App, store: LocalStore, owner: str | None, item: Outcome, progress: ProgressFn | None
) -> None:
    """One blob, under the store's exclusive lock: chunked and read back, recorded, removed."""
    digest, codec = item.digest, Codec(item.codec)
    row = _blob_row(app, digest, item.codec)
    if row is None or int(row.refcount) <= 0:
        item.status, item.reason = "skipped", "no longer referenced: cleanup collects it"
        return
    held = held_by_others(store, owner).get(Ref(digest, codec)) if owner else None
    if held is not None:  # registered since the plan
        item.status, item.reason = "skipped", HELD[held]
        return
    report = (lambda n: progress(digest[:12], n)) if progress else None
    done = read_back(store, digest, codec)  # a killed run's chunked form
    if done is None:
        try:
            done = chunk_whole(
                store,
                digest,
                codec,
                expected_stored_sha256=row.stored_sha256,
                chunk_codec=Codec(app.settings.codec),
                level=app.settings.level,
                threads=app.settings.threads,
                progress=report,
            )
        except BlobCorrupted as exc:
            item.status = "damaged"
            item.reason = f"{exc}; not converted: run `dumpledger verify --all`"
            return
        item.added_bytes = done.added_bytes
    crashpoint.reached("migrate-chunked")
    _record(app, done, row.stored_sha256)
    crashpoint.reached("migrate-recorded")
    drop_whole(store, digest, codec)
    crashpoint.reached("migrate-removed")
    item.status = "converted"


def _blob_row(app: App, digest: str, codec: str) -> Any:
    with app.catalog.engine.connect() as conn:
        return conn.execute(
            select(blobs.c.stored_sha256, blobs.c.refcount).where(
                blobs.c.digest == digest, blobs.c.codec == codec
            )
        ).first()


def _record(app: App, done: Converted, previous_sha256: str) -> None:
    """BlobMigrated, unless every artifact of the blob expects the chunked form already (a
    run killed after recording it)."""

    def needed(conn: Any) -> bool:
        key = (artifacts.c.digest == done.digest) & (artifacts.c.codec == done.codec.value)
        rows = conn.execute(select(artifacts.c.stored_sha256).where(key)).all()
        return any(r.stored_sha256 != done.stored_sha256 for r in rows)

    app.catalog.append_all(
        [
            BlobMigrated(
                digest=done.digest,
                codec=done.codec.value,
                stored_sha256=done.stored_sha256,
                stored_size=done.stored_size,
                previous_sha256=previous_sha256,
                previous_size=done.previous_size,
                # its chunks are in packs sealed to today's recipients (a put uses no other)
                recipients=list(app.settings.encryption.recipients) if done.codec.sealed else None,
            )
        ],
        actor=app.actor,
        precondition=needed,
    )


def _refresh_views(app: App, store: LocalStore, report: MigrateReport) -> None:
    """Metadata files follow the new stored sizes; the newest backup's files and latest_*
    stay real, valid files; a first-layout symlink to a removed blob goes (`dumpledger export
    NAME` writes that backup's file)."""
    from usecases.backup.run import refresh_latest
    from usecases.backup.views import write_backup_views

    names = sorted({n for o in report.of("converted") for n in o.backups})
    for name in names:
        b = get_backup(app.catalog.engine, name)
        write_backup_views(app.settings.database_dir, b, app.settings.retention)
    database_dir = app.settings.database_dir
    if database_dir.is_dir():
        for path in sorted(database_dir.iterdir()):
            if path.is_symlink() and _to_a_removed_blob(path, store.blobs_dir):
                path.unlink()
                report.links_removed.append(path.name)
    refresh_latest(app)


def _to_a_removed_blob(link: Path, blobs_dir: Path) -> bool:
    """A symlink into store/sha256/ whose blob is gone (converted, by this run or a killed
    one; or collected): it restores nothing any more."""
    target = Path(os.readlink(link))
    if not target.is_absolute():
        target = link.parent / target
    target = Path(os.path.normpath(target))
    return target.is_relative_to(os.path.normpath(blobs_dir)) and not target.exists()

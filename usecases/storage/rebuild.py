"""`catalog rebuild --from-store`: bring back the backups of a lost catalog from what the
backup directory still holds: each `backups/database/<name>_metadata.json` names the blobs of
its artifacts, and the store holds them.

Each blob is read back whole (decompressed and re-hashed to the digest it is stored under)
before anything refers to it; the catalog's roots in the store take the artifacts first, then
BackupImported is appended (with `recovered_from: store`), then the views are rewritten. A
backup the catalog already has is skipped; a blob missing or damaged fails that backup only.
Afterwards the roots of other catalogs registered in the store are compared with this one's:
the lost catalog's roots are covered in full, and can be forgotten.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from catalog.canonical import utc_iso
from catalog.errors import UnknownBackup
from catalog.events import BackupImported
from catalog.queries import get_backup
from store import Codec, OwnerInfo, Ref
from store.codecs import SUFFIXES
from usecases.backup.legacy_files import legacy_type, read_metadata
from usecases.backup.names import BACKUP_TYPES, validate_name
from usecases.backup.run import refresh_latest
from usecases.backup.views import METADATA_SUFFIX, artifact_filename, write_backup_views
from usecases.context import App
from usecases.errors import BadInput
from usecases.storage.roots import catalog_refs, referencing

# Fields of a dumpledger metadata file that go back into the backup's metadata.
KEPT = ("row_counts", "versions", "latest_migration", "durations", "encryption", "database")


@dataclass(frozen=True, slots=True, kw_only=True)
class Recovered:
    backup: str
    status: str  # recovered, skipped, failed
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OtherCatalog:
    """Another catalog registered in the store, and how much of it this one now covers."""

    id: str
    label: dict[str, str]
    refs: int
    covered: int  # of its refs, how many this catalog references now

    @property
    def fully_covered(self) -> bool:
        return self.covered == self.refs


@dataclass(slots=True, kw_only=True)
class RebuildReport:
    directory: str
    outcomes: list[Recovered] = field(default_factory=list)
    others: list[OtherCatalog] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def failed(self) -> bool:
        return self.count("failed") > 0

    def to_json(self) -> dict[str, Any]:
        return {
            "directory": self.directory,
            "backups": [asdict(o) for o in self.outcomes],
            "counts": {s: self.count(s) for s in ("recovered", "skipped", "failed")},
            "other_catalogs": [
                {**asdict(o), "fully_covered": o.fully_covered} for o in self.others
            ],
        }


class _Refused(Exception):
    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def rebuild_from_store(app: App) -> RebuildReport:
    directory = app.settings.database_dir
    if not directory.is_dir():
        raise BadInput(
            f"{directory} does not exist: there are no metadata files to rebuild from "
            "(dumpledger recover rebuilds from an offsite copy)"
        )
    report = RebuildReport(directory=str(directory))
    with app.store.protect():  # nothing is collected while blobs are held but not referenced
        for path in sorted(directory.glob(f"*{METADATA_SUFFIX}")):
            report.outcomes.append(_recover(app, path))
    if report.count("recovered"):
        refresh_latest(app)
    mine = catalog_refs(app).referenced
    report.others = [
        OtherCatalog(id=o.id, label=o.label, refs=len(held), covered=len(held & mine))
        for o, held in _other_roots(app, app.catalog.identity())
    ]
    return report


def _other_roots(app: App, owner: str | None) -> list[tuple[OwnerInfo, set[Ref]]]:
    return [(o, app.store.roots_of(o.id)) for o in app.store.owners() if o.id != owner]


def _recover(app: App, path: Path) -> Recovered:
    name = path.name.removesuffix(METADATA_SUFFIX)
    try:
        validate_name(name)
        _absent(app, name)
        event = _event(app, name, path)
        refs = [Ref(a["digest"], Codec(a["codec"])) for a in event.artifacts]
        referencing(app, refs, lambda: app.catalog.append(event, actor=app.actor))
    except _Refused as refused:
        return Recovered(backup=name, status=refused.status, reason=str(refused))
    except BadInput as exc:
        return Recovered(backup=name, status="failed", reason=str(exc))
    write_backup_views(
        app.settings.database_dir, get_backup(app.catalog.engine, name), app.settings.retention
    )
    kinds = ", ".join(a["kind"] for a in event.artifacts)
    return Recovered(backup=name, status="recovered", reason=f"{kinds}, every blob read back")


def _absent(app: App, name: str) -> None:
    try:
        status = get_backup(app.catalog.engine, name)["status"]
    except UnknownBackup:
        return
    raise _Refused("skipped", f"already in the catalog ({status})")


def _event(app: App, name: str, path: Path) -> BackupImported:
    try:
        meta = read_metadata(path, None)
    except ValueError as exc:
        raise _Refused("failed", str(exc)) from None
    doc = meta.original
    if doc.get("backup_name") not in (None, name):
        raise _Refused("failed", f"{path.name} describes {doc.get('backup_name')!r}")
    if doc.get("status") not in (None, "completed"):
        raise _Refused("skipped", f"{path.name} says the backup is {doc.get('status')}")
    digests = doc.get("digests")
    if not isinstance(digests, dict) or not digests:
        raise _Refused(
            "skipped",
            f"{path.name} names no digests: not written by dumpledger (dumpledger import-legacy "
            "imports the old scripts' backups)",
        )
    if meta.started_at is None:
        raise _Refused("failed", f"{path.name} holds no timestamp")
    artifacts = [_artifact(app, name, kind, doc, path) for kind in sorted(digests)]
    btype = doc.get("backup_type")
    return BackupImported(
        backup=name,
        backup_type=btype if btype in BACKUP_TYPES else legacy_type(name, meta.backup_type),
        artifacts=artifacts,
        started_at=utc_iso(meta.started_at),
        finished_at=utc_iso(meta.finished_at) if meta.finished_at else None,
        verified=meta.verified,
        source_files=[str(path)],
        metadata={
            **{k: doc[k] for k in KEPT if doc.get(k) is not None},
            "git": {"commit": meta.git_commit, "branch": meta.git_branch},
            "created_by": meta.created_by,
            "imported_from": str(path.parent),
            "time_source": "metadata",
            "recovered_from": "store",
        },
    )


def _artifact(app: App, name: str, kind: str, doc: dict[str, Any], path: Path) -> dict[str, Any]:
    digest = str(doc["digests"][kind]).removeprefix("sha256:")
    codec = _codec(name, kind, (doc.get("files") or {}).get(kind))
    if codec is None:
        raise _Refused("failed", f"{path.name}: no file name with a known suffix for {kind}")
    try:
        present = app.store.exists(digest, codec)
    except ValueError:
        raise _Refused("failed", f"{path.name}: {kind} digest {digest!r} is not SHA-256") from None
    if not present:
        raise _Refused(
            "failed",
            f"{kind} blob {digest[:12]} is not in the store; a copy pushed offsite can be "
            "recovered into a new backup directory (dumpledger recover --backup-dir NEW)",
        )
    result = app.store.verify(digest, codec)
    if not result.ok:
        raise _Refused("failed", f"{kind}: {result.error}")
    sizes = (doc.get("sizes") or {}).get(kind) or {}
    return {
        "kind": kind,
        "digest": digest,
        "codec": codec.value,
        "raw_size": result.raw_size or int(sizes.get("raw") or 0),  # 0: encrypted, no key
        "stored_size": result.stored_size,
        "stored_sha256": result.stored_sha256,
        "created": False,
        "source": artifact_filename(name, kind, codec.value),
    }


def _codec(name: str, kind: str, filename: Any) -> Codec | None:
    for codec in sorted(SUFFIXES, key=lambda c: -len(SUFFIXES[c])):
        if filename == artifact_filename(name, kind, codec.value):
            return codec
    return None

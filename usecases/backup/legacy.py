"""Import the old shell scripts' backups: check every file completely, store it by content,
append BackupImported with the original name, type, time, git commit/branch, creator and
verified flag, then write the backups/database/ views. Idempotent by name and content."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from catalog.canonical import utc_iso
from catalog.errors import UnknownBackup
from catalog.events import BackupImported
from catalog.queries import get_backup
from catalog.schema import backups
from pgtools.binaries import find_program
from pgtools.dump import PLAIN_TRAILERS, check_custom_dump
from pgtools.errors import PgDumpFailed, PgError
from store import Codec
from store.codecs import decompress
from store.local import read_chunks
from usecases.backup.dumping import artifact_encryption, encryption_summary
from usecases.backup.legacy_files import (
    Ignored,
    LegacyFile,
    LegacyGroup,
    LegacyMeta,
    legacy_type,
    name_time,
    read_metadata,
    scan,
)
from usecases.backup.names import validate_name
from usecases.backup.run import refresh_latest
from usecases.backup.views import write_backup_views
from usecases.context import App
from usecases.errors import BadInput
from usecases.storage.roots import attach, record_repairs, referencing, refs_of


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportRequest:
    directory: Path
    dry_run: bool = False
    tz: tzinfo | None = None  # how to read times without an offset; None: this machine's zone


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportOutcome:
    backup: str
    status: str  # imported, would-import, skipped, failed
    reason: str
    files: list[str]
    kinds: list[str]
    started_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "backup": self.backup,
            "status": self.status,
            "reason": self.reason,
            "files": self.files,
            "kinds": self.kinds,
            "started_at": self.started_at,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportReport:
    directory: str
    dry_run: bool
    outcomes: list[ImportOutcome]
    ignored: list[Ignored] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(o.status == "failed" for o in self.outcomes)

    def counts(self) -> dict[str, int]:
        out = {"imported": 0, "would-import": 0, "skipped": 0, "failed": 0}
        for o in self.outcomes:
            out[o.status] += 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "directory": self.directory,
            "dry_run": self.dry_run,
            "backups": [o.to_json() for o in self.outcomes],
            "ignored": [{"file": i.path.name, "reason": i.reason} for i in self.ignored],
            "counts": self.counts(),
        }


class _Refused(Exception):
    """This backup is not imported: `status` (skipped or failed) and the message say why."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True, slots=True)
class _Checked:
    digest: str
    raw_size: int


def import_legacy(app: App, req: ImportRequest) -> ImportReport:
    directory = req.directory.expanduser().resolve()
    groups, ignored = scan(directory)
    with app.store.protect():  # blobs written here are referenced before collection may run
        if not req.dry_run:
            attach(app)  # the store journals what this writes as this catalog's
        outcomes = [_import_group(app, g, req, directory) for g in groups]
    if any(o.status == "imported" for o in outcomes):
        refresh_latest(app)
    return ImportReport(
        directory=str(directory), dry_run=req.dry_run, outcomes=outcomes, ignored=ignored
    )


def _import_group(app: App, g: LegacyGroup, req: ImportRequest, directory: Path) -> ImportOutcome:
    def outcome(status: str, reason: str, started_at: str | None = None) -> ImportOutcome:
        files = [p.name for p in g.all_paths()]
        return ImportOutcome(
            backup=g.name,
            status=status,
            reason=reason,
            files=files,
            kinds=sorted(g.files),
            started_at=started_at,
        )

    try:
        validate_name(g.name)
        if g.problems:
            raise _Refused("failed", "; ".join(g.problems))
        meta = _metadata(g, req.tz)
        checked = {kind: _inspect(app, f) for kind, f in sorted(g.files.items())}
        _compare_with_catalog(app, g.name, checked)
        started, source = _start_time(g, meta, req.tz)
        if req.dry_run:
            return outcome("would-import", f"time from the {source}", utc_iso(started))
        event = _store(app, g, meta, checked, (started, source), directory)
        appended = referencing(
            app,
            refs_of(event.artifacts),
            lambda: app.catalog.append_all([event], actor=app.actor, precondition=_absent(g.name)),
        )
        if not appended:
            raise _Refused("skipped", "another import added this name meanwhile")
    except _Refused as refused:
        return outcome(refused.status, str(refused))
    except BadInput as exc:  # an unsafe name: the others go on
        return outcome("failed", str(exc))
    # data first, then the event, then the files users see (as a backup does)
    write_backup_views(
        app.settings.database_dir, get_backup(app.catalog.engine, g.name), app.settings.retention
    )
    return outcome("imported", f"time from the {source}", event.started_at)


def _metadata(g: LegacyGroup, tz: tzinfo | None) -> LegacyMeta:
    if g.metadata_path is None:
        return LegacyMeta()
    try:
        return read_metadata(g.metadata_path, tz)
    except ValueError as exc:
        raise _Refused(
            "failed", f"{exc}; fix or remove it to import from the names alone"
        ) from None


def _start_time(g: LegacyGroup, meta: LegacyMeta, tz: tzinfo | None) -> tuple[datetime, str]:
    if meta.started_at is not None:
        return meta.started_at, "metadata"
    from_name = name_time(g.name, tz)
    if from_name is not None:
        return from_name, "name"
    oldest = min(f.path.stat().st_mtime for f in g.files.values())
    return datetime.fromtimestamp(oldest, UTC), "file time"


# -- checking the files --------------------------------------------------------------------


class _Hashing:
    """Hashes, counts and keeps the tail of a stream as it is read."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.chunks = chunks
        self.sha = hashlib.sha256()
        self.size = 0
        self.tail = b""

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.sha.update(chunk)
            self.size += len(chunk)
            self.tail = (self.tail + chunk[-256:])[-256:]
            yield chunk


def _raw_chunks(f: LegacyFile, fh: Any) -> Iterator[bytes]:
    """The dump's own bytes: gunzipped (checking every member ends) when it is gzip."""
    chunks = read_chunks(fh)
    return decompress(chunks, Codec.GZIP) if f.format == "gzip" else chunks


def _inspect(app: App, f: LegacyFile) -> _Checked:
    """Read the whole file: complete gzip, pg_dump's trailer, or a custom dump pg_restore
    decodes. Nothing is stored yet."""
    bindir = _bindir(app) if f.format == "custom" else None
    try:
        with f.path.open("rb") as fh:
            hashed = _Hashing(_raw_chunks(f, fh))
            if bindir is not None:
                check_custom_dump(bindir, iter(hashed))
            for _ in hashed:  # the rest (all of it, for SQL)
                pass
    except PgDumpFailed as exc:
        raise _Refused("failed", f"{f.path.name}: {exc}") from None
    except PgError:
        raise
    except Exception as exc:  # EOFError, zlib errors, OSError: the file cannot be read whole
        raise _Refused(
            "failed", f"{f.path.name} is damaged ({_one_line(exc)}); nothing of it was imported"
        ) from None
    if f.format != "custom" and not any(t in hashed.tail for t in PLAIN_TRAILERS):
        raise _Refused(
            "failed",
            f"{f.path.name} ends without pg_dump's completion trailer: the dump is incomplete",
        )
    return _Checked(hashed.sha.hexdigest(), hashed.size)


def _bindir(app: App) -> Path:
    extra = [app.settings.pg_bindir] if app.settings.pg_bindir else []
    return find_program("pg_restore", 0, extra_dirs=extra).path.parent


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _compare_with_catalog(app: App, name: str, checked: dict[str, _Checked]) -> None:
    try:
        existing = get_backup(app.catalog.engine, name)
    except UnknownBackup:
        return
    if existing["status"] == "deleted":
        raise _Refused("skipped", "deleted from the catalog earlier; not imported again")
    stored = {a["kind"]: a["digest"] for a in existing["artifacts"]}
    same = all(stored.get(kind) == c.digest for kind, c in checked.items())
    if existing["status"] == "completed" and same:
        raise _Refused("skipped", "already imported (same name and content in the catalog)")
    raise _Refused(
        "failed",
        f"conflict: the catalog has a {existing['status']} backup named {name} with other "
        "content; rename these files to import them under another name",
    )


def _absent(name: str) -> Callable[[Connection], bool]:
    def check(conn: Connection) -> bool:
        return conn.execute(select(backups.c.name).where(backups.c.name == name)).first() is None

    return check


# -- storing -------------------------------------------------------------------------------


def _store(
    app: App,
    g: LegacyGroup,
    meta: LegacyMeta,
    checked: dict[str, _Checked],
    start: tuple[datetime, str],
    directory: Path,
) -> BackupImported:
    artifacts = [_store_one(app, g.files[kind], checked[kind]) for kind in sorted(g.files)]
    started, source = start
    metadata = _event_metadata(meta, started, source, directory)
    if (encryption := encryption_summary(artifacts)) is not None:
        metadata["encryption"] = encryption
    return BackupImported(
        backup=g.name,
        backup_type=legacy_type(g.name, meta.backup_type),
        artifacts=artifacts,
        started_at=utc_iso(started),
        finished_at=utc_iso(meta.finished_at) if meta.finished_at else None,
        verified=meta.verified,
        source_files=[str(p) for p in g.all_paths()],
        metadata=metadata,
    )


def _store_one(app: App, f: LegacyFile, checked: _Checked) -> dict[str, Any]:
    s = app.settings
    codec = Codec.NONE if f.format == "custom" else Codec(s.codec)
    if s.encryption.enabled:  # sealed as a backup taken now would be
        codec = codec.with_age()
    try:
        with f.path.open("rb") as fh:
            info = app.store.put(
                _raw_chunks(f, fh),
                codec,
                level=s.level,
                threads=s.threads,
                chunk_codec=Codec(s.codec),
            )
    except (EOFError, ValueError) as exc:
        raise _Refused("failed", f"{f.path.name} changed while importing: {exc}") from None
    record_repairs(app, [info], None)  # a damaged stored copy was replaced: say so
    if info.digest != checked.digest:
        raise _Refused("failed", f"{f.path.name} changed while importing; run it again")
    result = app.store.verify(info.digest, codec, expected_stored_sha256=info.stored_sha256)
    if not result.ok:
        raise _Refused("failed", f"{f.path.name}: the stored copy failed read-back: {result.error}")
    art: dict[str, Any] = {
        "kind": f.kind,
        "digest": info.digest,
        "codec": info.codec.value,
        "raw_size": info.raw_size,
        "stored_size": info.stored_size,
        "stored_sha256": info.stored_sha256,
        "created": info.created,
        "added_bytes": info.added_bytes,
        "source": f.path.name,
    }
    if (encryption := artifact_encryption(app, art, info)) is not None:
        art["encryption"] = encryption
    return art


def _event_metadata(
    meta: LegacyMeta, started: datetime, source: str, directory: Path
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "git": {"commit": meta.git_commit, "branch": meta.git_branch},
        "created_by": meta.created_by,
        "database": meta.database,
        "imported_from": str(directory),
        "time_source": source,
        "legacy": meta.original,
    }
    if meta.row_counts:
        out["row_counts"] = meta.row_counts
    if meta.finished_at and meta.finished_at >= started:
        out["duration_seconds"] = round((meta.finished_at - started).total_seconds(), 3)
    return out

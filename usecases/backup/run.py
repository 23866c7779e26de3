"""Back up a whole database: one snapshot, concurrent dumps streamed into the store,
every artifact read back, then BackupCompleted; any failure appends BackupFailed."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from catalog.errors import UnknownBackup
from catalog.events import BackupCompleted, BackupFailed, BackupStarted
from catalog.queries import blob_encryption, get_backup, list_backups
from catalog.read import BackupFilter
from pgtools.binaries import find_program
from pgtools.dump import (
    DumpSpec,
    artifact_specs,
    check_custom_dump,
    run_dump,
    supports_restrict_key,
)
from pgtools.session import SnapshotSession
from store import Codec, DecryptionKeyError
from usecases.backup.gitinfo import git_metadata
from usecases.backup.latest import reusable_files, update_latest_files
from usecases.backup.names import SCHEDULED_TYPES, classify, infer_type, make_name
from usecases.backup.runlog import close_run_log, open_run_log
from usecases.backup.standalone import install_standalone_script
from usecases.backup.views import METADATA_SUFFIX, view_owner, write_backup_views
from usecases.context import App
from usecases.errors import BackupFailedError, BadInput
from usecases.files import atomic_write

BASE_KINDS = ("full", "globals")
EXTRA_KINDS = ("schema", "data", "custom")
ProgressFn = Callable[[str, int], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class BackupRequest:
    name: str | None = None
    backup_type: str | None = None
    all_formats: bool | None = None  # None: on for manual backups, as db-backup.sh did
    cwd: Path = field(default_factory=Path.cwd)


@dataclass(frozen=True, slots=True, kw_only=True)
class BackupResult:
    name: str
    backup_type: str
    artifacts: list[dict[str, Any]]
    duration_seconds: float
    stored_bytes_added: int
    log_path: Path
    metadata: dict[str, Any]


def plan_kinds(backup_type: str, all_formats: bool | None) -> tuple[str, ...]:
    extras = backup_type == "manual" if all_formats is None else all_formats
    return BASE_KINDS + (EXTRA_KINDS if extras else ())


def run_backup(app: App, req: BackupRequest, progress: ProgressFn | None = None) -> BackupResult:
    btype = infer_type(req.name, req.backup_type)
    started = app.clock()
    name = make_name(req.name, btype, started.astimezone())
    automatic = btype in (*SCHEDULED_TYPES, "test")  # automatic names are never refused
    if automatic:
        name = unused_name(app, name)
    _refuse_existing(app, name)
    kinds = plan_kinds(btype, req.all_formats)
    logger, log_path = open_run_log(app.settings.logs_dir, "backup", started.astimezone())
    target = app.settings.database
    # Blob collection waits while a backup holds blobs the catalog does not reference yet
    # (and while it exists as running: under the collector's lock every temp file is stale).
    with app.store.protect():
        try:
            name = _record_start(
                app,
                name,
                automatic=automatic,
                started=BackupStarted(
                    backup=name,
                    backup_type=btype,
                    hostname=socket.gethostname(),
                    pid=os.getpid(),
                    database=target.describe(),
                    artifacts=list(kinds),
                    codec=app.settings.codec,
                ),
            )
        except BaseException as exc:
            logger.error("backup %s not started: %s", name, _one_line(exc))
            close_run_log(logger)
            raise
        logger.info(
            "backup %s (%s) of %s: artifacts %s", name, btype, target.label(), ", ".join(kinds)
        )
        t0 = time.monotonic()
        try:
            artifacts, meta = _dump_and_verify(app, kinds, progress, logger)
            meta.update(
                git=git_metadata(req.cwd),
                database=target.describe(),
                log_file=str(log_path.relative_to(app.settings.backup_dir)),
            )
        except BaseException as exc:
            reason = _one_line(exc)
            logger.error("backup %s failed: %s", name, reason)
            close_run_log(logger)
            app.catalog.append(
                BackupFailed(backup=name, reason=reason, stage="dump"), actor=app.actor
            )
            if isinstance(exc, Exception):
                raise BackupFailedError(f"backup {name} failed: {reason}") from exc
            raise
        duration = round(time.monotonic() - t0, 3)
        app.catalog.append(
            BackupCompleted(
                backup=name,
                backup_type=btype,
                artifacts=artifacts,
                verified=True,
                duration_seconds=duration,
                metadata=meta,
            ),
            actor=app.actor,
        )
    refresh_views(app, name)
    added = sum(int(a.get("added_bytes", 0)) for a in artifacts)
    logger.info("backup %s completed in %.1fs, %d new stored bytes", name, duration, added)
    close_run_log(logger)
    return BackupResult(
        name=name,
        backup_type=btype,
        artifacts=artifacts,
        duration_seconds=duration,
        stored_bytes_added=added,
        log_path=log_path,
        metadata=meta,
    )


def refresh_views(app: App, name: str) -> None:
    """Write the backup's metadata file, the newest backups' files and latest_* under
    backups/database/, and the standard-library restore script beside them."""
    write_backup_views(
        app.settings.database_dir, get_backup(app.catalog.engine, name), app.settings.retention
    )
    refresh_latest(app)
    install_standalone_script(app.settings.backup_dir)


def refresh_latest(app: App) -> None:
    """The newest backup's files and latest_full/latest_auto: of the newest remaining backups
    whose full dump is in the store (after a recover from a target that lacked some blobs it
    may not be); a latest_* file is never missing its dump, nor left from a deleted backup."""
    newest: dict[str, Any] | None = None
    newest_auto: dict[str, Any] | None = None
    for row in _completed_newest_first(app):
        auto = classify(row["name"]) == "auto"
        if newest is not None and not auto:
            continue
        backup = get_backup(app.catalog.engine, row["name"])
        if not _full_dump_stored(app, backup):
            continue
        newest = newest or backup
        if auto:
            newest_auto = backup
            break
    database_dir = app.settings.database_dir
    reuse = reusable_files(database_dir, _owners_of_files(app, database_dir))
    update_latest_files(database_dir, app.store, newest, newest_auto, reuse)


def _owners_of_files(app: App, database_dir: Path) -> list[dict[str, Any]]:
    """The completed backups whose artifact files are under database_dir now."""
    names = set()
    if database_dir.is_dir():
        for path in database_dir.iterdir():
            owner = view_owner(path.name)
            if owner and not path.name.endswith(METADATA_SUFFIX) and not path.is_symlink():
                names.add(owner)
    out = []
    for name in sorted(names):
        try:
            backup = get_backup(app.catalog.engine, name)
        except UnknownBackup:
            continue
        if backup["status"] == "completed":
            out.append(backup)
    return out


def _completed_newest_first(app: App, page: int = 50) -> Iterator[dict[str, Any]]:
    """Completed backups, newest first, read a page at a time: the newest automatic one is
    usually among the first few, and a catalog may hold 100,000."""
    offset = 0
    while rows := list_backups(
        app.catalog.engine, BackupFilter(status="completed"), limit=page, offset=offset
    ):
        yield from rows
        offset += page


def _full_dump_stored(app: App, backup: dict[str, Any]) -> bool:
    full = [a for a in backup["artifacts"] if a["kind"] == "full"]
    return bool(full) and all(app.store.exists(a["digest"], Codec(a["codec"])) for a in full)


def restrict_key(backup_dir: Path) -> str:
    """This installation's psql `\\restrict` key: random once, then the same for every dump.

    It is not a secret (every plain dump contains it); a fixed one keeps dumps of an unchanged
    database byte-identical, so they are stored once.
    """
    path = backup_dir / ".restrict-key"
    if not path.exists():
        key = secrets.token_hex(24)
        atomic_write(path, key.encode())
    return path.read_text().strip()


def _record_start(app: App, name: str, *, automatic: bool, started: BackupStarted) -> str:
    """Append BackupStarted under a name no backup has, checked under the writers' lock: two
    processes that chose the same name in the same second (a timer and a person) must not
    share one. An automatic backup takes the next free name; a named one is refused."""
    for _ in range(100):
        if app.catalog.start_backup(started, actor=app.actor) is not None:
            return started.backup
        if not automatic:
            break
        started = replace(started, backup=unused_name(app, name))
    raise BadInput(f"a backup named {started.backup!r} already exists; choose another name")


def unused_name(app: App, name: str) -> str:
    """`name`, or when two backups start within one second: name_2, name_3, ..."""
    candidate, n = name, 1
    while True:
        try:
            get_backup(app.catalog.engine, candidate)
        except UnknownBackup:
            return candidate
        n += 1
        candidate = f"{name}_{n}"


def _refuse_existing(app: App, name: str) -> None:
    try:
        get_backup(app.catalog.engine, name)
    except UnknownBackup:
        return
    raise BadInput(f"a backup named {name!r} already exists; choose another name")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or exc.__class__.__name__
    return text if not isinstance(exc, KeyboardInterrupt) else "interrupted (Ctrl-C)"


class _Children:
    """The dump processes of one backup, so a failure in one stops all of them."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.lock = threading.Lock()

    def add(self, proc: subprocess.Popen[bytes]) -> None:
        with self.lock:
            self.procs.append(proc)

    def kill_all(self) -> None:
        with self.lock:
            for proc in self.procs:
                if proc.poll() is None:
                    proc.kill()


def _dump_and_verify(
    app: App, kinds: tuple[str, ...], progress: ProgressFn | None, logger: Any
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    s = app.settings
    with SnapshotSession(s.database) as snap:
        pg_dump = find_program(
            "pg_dump", snap.server_major, extra_dirs=[s.pg_bindir] if s.pg_bindir else []
        )
        logger.info(
            "server %s, pg_dump %s (%s), snapshot %s",
            snap.server_version,
            pg_dump.version,
            pg_dump.path,
            snap.snapshot_id,
        )
        key = restrict_key(s.backup_dir) if supports_restrict_key(pg_dump.path.parent) else None
        specs = artifact_specs(
            snap.snapshot_id,
            role_passwords=s.role_passwords,
            restrict_key=key,
            # Chunked, the custom dump is stored uncompressed so it deduplicates; the store
            # compresses its chunks. Encrypted artifacts are still whole blobs: pg_dump's own.
            compress_custom=s.encryption.enabled,
        )
        children = _Children()
        with ThreadPoolExecutor(max_workers=len(kinds), thread_name_prefix="dump") as pool:
            futures = {
                k: pool.submit(_dump_one, app, specs[k], pg_dump.path.parent, children, progress)
                for k in kinds
            }
            try:
                row_counts = snap.row_counts()
                migration = snap.latest_migration()
                db_props = snap.database_properties()
                results = {k: f.result() for k, f in futures.items()}
            except BaseException:
                children.kill_all()
                raise
    bindir = pg_dump.path.parent
    artifacts = [results[k][0] for k in kinds]
    t0 = time.monotonic()
    for art in artifacts:
        _verify_artifact(app, art, bindir)
        logger.info(
            "artifact %s: %s raw %d stored %d bytes, verified",
            art["kind"],
            art["digest"][:12],
            art["raw_size"],
            art["stored_size"],
        )
    durations = {k: results[k][1] for k in kinds}
    durations["verify"] = round(time.monotonic() - t0, 3)
    meta: dict[str, Any] = {
        "versions": {"server": snap.server_version, "pg_dump": pg_dump.version},
        "row_counts": row_counts,
        "latest_migration": migration,
        "database_properties": db_props,
        "durations": durations,
        "dump_options": {
            k: [a for a in specs[k].args if not a.startswith("--snapshot")] for k in kinds
        },
    }
    if (encryption := encryption_summary(artifacts)) is not None:
        meta["encryption"] = encryption
    meta["store"] = store_summary(artifacts)
    return artifacts, meta


def store_summary(artifacts: list[dict[str, Any]]) -> dict[str, int]:
    """metadata["store"]: what this backup added to the store (new chunks and bytes)."""
    return {
        "added_bytes": sum(int(a.get("added_bytes", 0)) for a in artifacts),
        "chunks": sum(int(a.get("chunks", 0)) for a in artifacts),
        "new_chunks": sum(int(a.get("new_chunks", 0)) for a in artifacts),
    }


def _dump_one(
    app: App, spec: DumpSpec, bindir: Path, children: _Children, progress: ProgressFn | None
) -> tuple[dict[str, Any], float]:
    s = app.settings
    codec = Codec.NONE if spec.kind == "custom" else Codec(s.codec)
    if s.encryption.enabled:
        codec = codec.with_age()
    report = (lambda n: progress(spec.kind, n)) if progress else None
    t0 = time.monotonic()
    info = run_dump(
        spec,
        bindir,
        s.database,
        lambda chunks: app.store.put(
            chunks,
            codec,
            level=s.level,
            threads=s.threads,
            progress=report,
            chunk_codec=Codec(s.codec),
        ),
        on_start=children.add,
    )
    art: dict[str, Any] = {
        "kind": spec.kind,
        "digest": info.digest,
        "codec": info.codec.value,
        "raw_size": info.raw_size,
        "stored_size": info.stored_size,
        "stored_sha256": info.stored_sha256,
        "created": info.created,
        "added_bytes": info.added_bytes,
        "chunks": info.chunks,
        "new_chunks": info.new_chunks,
    }
    if codec.sealed:
        art["encryption"] = _encryption_of(app, art)
    return art, round(time.monotonic() - t0, 3)


def _encryption_of(app: App, art: dict[str, Any]) -> dict[str, Any]:
    """Who can decrypt this artifact: today's recipients for a new blob; for one already
    stored, the recipients recorded when it was written (it is not encrypted again)."""
    if not art["created"]:
        known = blob_encryption(app.catalog.engine, art["digest"], art["codec"])
        if known is not None:
            return known
    return {"scheme": "age", "recipients": list(app.settings.encryption.recipients)}


def encryption_summary(artifacts: list[dict[str, Any]]) -> dict[str, Any] | None:
    """metadata["encryption"]: the scheme and every recipient any artifact is encrypted to."""
    sealed = [a["encryption"] for a in artifacts if a.get("encryption")]
    if not sealed:
        return None
    recipients = sorted({r for e in sealed for r in e.get("recipients", [])})
    return {"scheme": "age", "recipients": recipients}


def _verify_artifact(app: App, art: dict[str, Any], bindir: Path) -> None:
    codec = Codec(art["codec"])
    try:
        result = app.store.verify(art["digest"], codec, expected_stored_sha256=art["stored_sha256"])
    except DecryptionKeyError as exc:  # the key this host would restore with does not fit
        raise BackupFailedError(
            f"artifact {art['kind']} cannot be read back: {exc}; encryption.identity_file "
            "must hold the key of one of encryption.recipients"
        ) from None
    if not result.ok:
        raise BackupFailedError(f"artifact {art['kind']} failed read-back: {result.error}")
    if art["kind"] == "custom" and (not codec.sealed or app.settings.encryption.identity_file):
        # Without the private key an encrypted custom dump is checked by its stored digest.
        with app.store.open_raw(art["digest"], codec) as chunks:
            check_custom_dump(bindir, iter(chunks))

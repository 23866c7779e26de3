"""Back up a whole database: one snapshot, concurrent dumps streamed into the store,
every artifact read back, then BackupCompleted; any failure appends BackupFailed."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from catalog.errors import UnknownBackup
from catalog.events import BackupCompleted, BackupFailed, BackupStarted
from catalog.queries import get_backup, list_backups
from catalog.read import BackupFilter
from store import BlobInfo, Codec
from usecases.backup.dumping import dump_and_verify
from usecases.backup.gitinfo import git_metadata
from usecases.backup.latest import reusable_files, update_latest_files
from usecases.backup.names import SCHEDULED_TYPES, classify, infer_type, make_name
from usecases.backup.runlog import close_run_log, open_run_log
from usecases.backup.standalone import install_standalone_script
from usecases.backup.views import METADATA_SUFFIX, view_owner, write_backup_views
from usecases.context import App
from usecases.errors import BackupFailedError, BadInput, Interrupted, interruption
from usecases.files import dir_lock, private_dir
from usecases.storage.roots import attach, record_repairs, refs_of

LATEST_LOCK = ".latest.lock"  # in backups/database/: one refresh of the newest files at a time

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
            owner = attach(app)  # the store journals our writes, and will hold our roots
            assert owner is not None  # BackupStarted gave an empty catalog its id
        except BaseException as exc:
            logger.error("backup %s not started: %s", name, _one_line(exc))
            close_run_log(logger)
            raise
        logger.info(
            "backup %s (%s) of %s: artifacts %s", name, btype, target.label(), ", ".join(kinds)
        )
        t0 = time.monotonic()
        repairs: list[BlobInfo] = []  # stored copies that failed their check, replaced
        git = _meanwhile(git_metadata, req.cwd)  # `git status` of a big repository takes time
        try:
            artifacts, meta = dump_and_verify(app, kinds, progress, logger, repairs)
            record_repairs(app, repairs, name)
            meta.update(
                git=git.result(),
                database=target.describe(),
                log_file=str(log_path.relative_to(app.settings.backup_dir)),
            )
        except BaseException as exc:
            try:
                record_repairs(app, repairs, name)  # the files changed, whatever failed later
            finally:
                _record_failure(app, name, logger, exc, stage="dump")
            raise
        duration = round(time.monotonic() - t0, 3)
        completed = BackupCompleted(
            backup=name,
            backup_type=btype,
            artifacts=artifacts,
            verified=True,
            duration_seconds=duration,
            metadata=meta,
        )
        try:  # a full disk or a catalog gone now: the dumps are good, the record is not
            app.store.add_roots(owner, refs_of(artifacts))  # held before the catalog refers
            app.catalog.append(completed, actor=app.actor)
        except BaseException as exc:
            _record_failure(app, name, logger, exc, stage="record")
            raise
    _refresh_views_after(app, name)
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


def _meanwhile(fn: Callable[[Path], dict[str, Any]], arg: Path) -> Future[dict[str, Any]]:
    """`fn(arg)` on a thread of its own (a daemon: a backup that fails does not wait for it)."""
    done: Future[dict[str, Any]] = Future()

    def work() -> None:
        try:
            done.set_result(fn(arg))
        except BaseException as exc:
            done.set_exception(exc)

    threading.Thread(target=work, name="meanwhile", daemon=True).start()
    return done


def _record_failure(app: App, name: str, logger: Any, exc: BaseException, *, stage: str) -> None:
    """Log and append BackupFailed, then raise BackupFailedError (an Exception) or return (to
    re-raise Ctrl-C and the like). When even BackupFailed cannot be appended (the disk that
    refused BackupCompleted is still full), the message says so: the next dumpledger command
    on this host records the backup as abandoned, and a scheduled run still notifies."""
    reason = _one_line(exc)
    logger.error("backup %s failed: %s", name, reason)
    close_run_log(logger)
    try:
        app.catalog.append(BackupFailed(backup=name, reason=reason, stage=stage), actor=app.actor)
    except Exception as again:
        why = "" if _one_line(again) == reason else f" ({_one_line(again)})"
        reason += (
            f"; this failure could not be recorded either{why}: the next dumpledger command "
            "on this host records the backup as failed (abandoned) once the catalog can be "
            "written"
        )
    if how := interruption(exc):
        raise Interrupted(
            f"backup {name} {how}: recorded as failed, and nothing of it is kept (a part "
            "already stored goes with the next `dumpledger cleanup`); run it again",
            how=how,
        ) from exc
    if isinstance(exc, Exception):
        raise BackupFailedError(f"backup {name} failed: {reason}", backup=name) from exc


def _refresh_views_after(app: App, name: str) -> None:
    """The backup is complete and recorded; its files under backups/database/ are a view of
    it. One that cannot be written (a full disk) fails the command with what happened."""
    try:
        refresh_views(app, name)
    except OSError as exc:
        raise BackupFailedError(
            f"backup {name} completed and is recorded, but its files under "
            f"{app.settings.database_dir} could not be written ({exc.strerror or exc}); the "
            f"backup itself is safe (`dumpledger restore {name}` reads the store); free space",
            backup=name,
        ) from None


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
    may not be); a latest_* file is never missing its dump, nor left from a deleted backup.

    One process at a time (a lock in backups/database/), deciding what is newest inside the
    lock: two backups, a cleanup or a migrate ending together would otherwise each remove the
    files the other just wrote, or leave an older backup's files as the newest."""
    database_dir = private_dir(app.settings.database_dir)
    with dir_lock(database_dir, LATEST_LOCK):
        _refresh_latest(app, database_dir)


def _refresh_latest(app: App, database_dir: Path) -> None:
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
    return interruption(exc) or " ".join(str(exc).split()) or exc.__class__.__name__

"""The dumps of one backup: one snapshot, concurrent pg_dumps streamed into the store, then
every artifact read back. `usecases.backup.run` records what comes out of here.

A table another session holds locked makes the dump wait at most
`database.lock_wait_timeout_seconds` (pg_dump `--lock-wait-timeout`, the snapshot session's
`lock_timeout`); then the backup fails naming the lock and who holds it (pgtools.locks).
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalog.queries import blob_encryption
from pgtools.binaries import ClientProgram, find_program
from pgtools.dump import (
    DumpSpec,
    artifact_specs,
    check_custom_dump,
    run_dump,
    supports_restrict_key,
)
from pgtools.extensions import extension_facts
from pgtools.locks import PgLockTimeout, lock_timeout_error
from pgtools.session import SnapshotSession
from store import BlobInfo, Codec, DecryptionKeyError
from usecases.backup.passwords import passwords_note, role_password_facts
from usecases.context import App
from usecases.errors import BackupFailedError
from usecases.files import atomic_write

ProgressFn = Any  # Callable[[str, int], None] | None, as usecases.backup.run.ProgressFn


def restrict_key(backup_dir: Path) -> str:
    """This installation's psql `\\restrict` key: random once, then the same for every dump.

    It is not a secret (every plain dump contains it); a fixed one keeps dumps of an unchanged
    database byte-identical, so they are stored once.
    """
    path = backup_dir / ".restrict-key"
    if not path.exists() and not path.is_symlink():
        key = secrets.token_hex(24)
        atomic_write(path, key.encode())
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as fh:
            key = fh.read(200).decode("ascii", "replace").strip()
    except OSError as exc:
        raise BackupFailedError(f"cannot read {path}: {exc.strerror}; remove it") from None
    if not re.fullmatch(r"[0-9A-Za-z]{16,64}", key):
        raise BackupFailedError(
            f"{path} does not hold a restrict key (16 to 64 letters and digits): remove it, "
            "the next backup writes a new one"
        )
    return key


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


@dataclass(frozen=True, slots=True, kw_only=True)
class _Dumped:
    """What the snapshot session and the dumps gave, before the read-back."""

    pg_dump: ClientProgram
    server_version: str
    specs: dict[str, DumpSpec]
    results: dict[str, tuple[dict[str, Any], float]]
    row_counts: dict[str, int]
    migration: str | None
    db_props: dict[str, Any]
    extensions: list[dict[str, str]]  # pgtools.extensions.extension_facts
    passwords: dict[str, Any]  # usecases.backup.passwords.role_password_facts


def dump_and_verify(
    app: App,
    kinds: tuple[str, ...],
    progress: ProgressFn,
    logger: Any,
    repairs: list[BlobInfo],
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Dump every artifact of `kinds` from one snapshot, then read each back: (artifacts,
    metadata). The snapshot's transaction ends before the read-back. Stored copies that failed
    their check and were replaced by a fresh dump are added to `repairs` as they happen."""
    s = app.settings
    wait_ms = round(s.lock_wait_timeout * 1000)
    try:
        with SnapshotSession(s.database, lock_timeout_ms=wait_ms) as snap:
            dumped = _dump_all(app, snap, kinds, progress, logger, wait_ms, repairs)
    except PgLockTimeout as exc:
        raise lock_timeout_error(s.database, s.lock_wait_timeout, str(exc)) from None
    return _read_back(app, dumped, kinds, logger)


def _dump_all(
    app: App,
    snap: SnapshotSession,
    kinds: tuple[str, ...],
    progress: ProgressFn,
    logger: Any,
    wait_ms: int,
    repairs: list[BlobInfo],
) -> _Dumped:
    s = app.settings
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
    passwords = role_password_facts(snap.conn, s.role_passwords)
    if not passwords["included"]:
        logger.warning("%s", passwords_note(passwords))
    specs = artifact_specs(
        snap.snapshot_id,
        role_passwords=passwords["included"],
        restrict_key=key,
        lock_wait_timeout_ms=wait_ms,
        # Chunked, the custom dump is stored uncompressed so it deduplicates; the store
        # compresses its chunks (encrypted ones too: they go into sealed packs).
        compress_custom=False,
    )
    children = _Children()
    with ThreadPoolExecutor(max_workers=len(kinds), thread_name_prefix="dump") as pool:
        futures = {
            k: pool.submit(
                _dump_one, app, specs[k], pg_dump.path.parent, children, progress, repairs
            )
            for k in kinds
        }
        try:
            row_counts = snap.row_counts()
            migration = snap.latest_migration()
            db_props = snap.database_properties()
            extensions = extension_facts(snap.conn)
            results = {k: f.result() for k, f in futures.items()}
        except BaseException:
            children.kill_all()
            raise
    return _Dumped(
        pg_dump=pg_dump,
        server_version=snap.server_version,
        specs=specs,
        results=results,
        row_counts=row_counts,
        migration=migration,
        db_props=db_props,
        extensions=extensions,
        passwords=passwords,
    )


def _read_back(
    app: App, d: _Dumped, kinds: tuple[str, ...], logger: Any
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    bindir = d.pg_dump.path.parent
    artifacts = [d.results[k][0] for k in kinds]
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
    durations = {k: d.results[k][1] for k in kinds}
    durations["verify"] = round(time.monotonic() - t0, 3)
    meta: dict[str, Any] = {
        "versions": {"server": d.server_version, "pg_dump": d.pg_dump.version},
        "row_counts": d.row_counts,
        "latest_migration": d.migration,
        "database_properties": d.db_props,
        "extensions": d.extensions,
        "role_passwords": d.passwords,
        "durations": durations,
        "dump_options": {
            k: [a for a in d.specs[k].args if not a.startswith("--snapshot")] for k in kinds
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
    app: App,
    spec: DumpSpec,
    bindir: Path,
    children: _Children,
    progress: ProgressFn,
    repairs: list[BlobInfo],
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
    if info.repaired_from is not None:
        repairs.append(info)  # recorded by the backup's thread, whatever happens next
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
    if (encryption := artifact_encryption(app, art, info)) is not None:
        art["encryption"] = encryption
    return art, round(time.monotonic() - t0, 3)


def artifact_encryption(app: App, art: dict[str, Any], info: BlobInfo) -> dict[str, Any] | None:
    """An artifact's "encryption" entry (None when it is stored plain). A chunked artifact is
    read from plain packs and packs sealed to today's recipients only (the put stored again
    what was sealed to others), even one already there."""
    if not info.codec.sealed:
        return None
    return _encryption_of(app, art, fresh=info.repaired_from is not None or info.chunked)


def _encryption_of(app: App, art: dict[str, Any], *, fresh: bool = False) -> dict[str, Any]:
    """Who can decrypt this artifact: today's recipients for a new blob, or a `fresh` one
    (repaired, or chunked: its chunks are in packs sealed to them); for a whole blob already
    stored, the recipients recorded when it was written (it is not encrypted again)."""
    if not art["created"] and not fresh:
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

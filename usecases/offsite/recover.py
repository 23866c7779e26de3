"""Disaster recovery: rebuild the catalog and the store of a new machine from an offsite target.

Order: refuse unless backups/ is empty (a backup-config.json may be there already); import the
target's export into the empty catalog (the chain is checked line by line) and verify the
chain; register the catalog in the store (its roots hold every artifact it references);
download every artifact a backup still references (a whole blob; or a chunked artifact's
manifest and the target's packs, whose trailers rebuild the index), check each file's SHA-256,
then decompress and re-hash every artifact; write backups/database/ and the latest_* files;
record OffsitePushed (nothing sent) so `list` shows the target holds them.
Restoring a backup afterwards is the restore use case's job.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from catalog.events import OffsitePushed
from catalog.export import import_export, read_export
from catalog.queries import blob_rows, get_backup, list_backups
from catalog.read import BackupFilter
from store import Codec
from store.chunked.layout import blob_rel, manifest_rel
from store.offsite import EXPORT_KEY, STORE_PREFIX
from usecases.backup.run import refresh_latest
from usecases.backup.standalone import install_standalone_script
from usecases.backup.views import write_backup_views
from usecases.config.settings import Settings
from usecases.context import App
from usecases.errors import BadInput, UseCaseError
from usecases.offsite.push import ProgressFn, resolve_target
from usecases.storage.roots import attach

# What a new machine may already hold in backups/ before recovering.
ALLOWED_BEFORE = {"backup-config.json"}


@dataclass(slots=True, kw_only=True)
class RecoverReport:
    target: str
    location: str
    events: int = 0
    blobs_fetched: int = 0
    bytes_fetched: int = 0
    backups: list[str] = field(default_factory=list)  # completed, every blob recovered
    incomplete: list[str] = field(default_factory=list)  # some blob was not on the target
    newest_verified: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def check_empty(settings: Settings) -> None:
    root = settings.backup_dir
    if not root.exists():
        return
    if not root.is_dir():
        raise BadInput(f"{root} is not a directory; pass another --backup-dir")
    extra = sorted(p.name for p in root.iterdir() if p.name not in ALLOWED_BEFORE)
    if extra:
        raise BadInput(
            f"{root} is not empty ({', '.join(extra[:3])}{', ...' if len(extra) > 3 else ''}); "
            "recover into an empty backup directory (--backup-dir NEW), or remove what a "
            "recover that stopped halfway left there"
        )


def recover(
    settings: Settings,
    spec: str | None,
    *,
    endpoint_url: str | None = None,
    progress: ProgressFn | None = None,
) -> RecoverReport:
    check_empty(settings)
    resolved = resolve_target(settings, spec, endpoint_url=endpoint_url)
    report = RecoverReport(target=resolved.name, location=resolved.target.location)
    data = resolved.target.read(EXPORT_KEY)
    if data is None:
        raise UseCaseError(
            f"{resolved.target.location} holds no {EXPORT_KEY}: not a dumpledger offsite "
            "target, or nothing was pushed to it yet"
        )
    lines = data.decode("utf-8").splitlines()
    source = f"{resolved.target.location}/{EXPORT_KEY}"
    for _ in read_export(lines, source=source):  # a broken export leaves backups/ untouched
        pass
    with _undone_on_failure(settings.backup_dir), App.open(settings) as app:
        report.events = import_export(app.catalog, lines, source=source)
        chain = app.catalog.verify_chain()
        if not chain.ok:
            raise UseCaseError(f"the recovered catalog's chain is broken: {chain.problems[0]}")
        with app.store.protect():
            attach(app)  # its roots hold every referenced blob before one arrives
            missing = _fetch_blobs(app, resolved, report, progress)
        _write_views(app, report, missing)
        # What the target holds, as this catalog now knows it (nothing was sent).
        app.catalog.append(
            OffsitePushed(
                target=report.target,
                location=report.location,
                backups=sorted(report.backups),
                digests_sent=[],
                bytes_sent=0,
                log_seq=report.events,
            ),
            actor=app.actor,
        )
    return report


@contextmanager
def _undone_on_failure(root: Path) -> Iterator[None]:
    """A recover that fails (a blob that does not verify, a target gone, Ctrl-C) leaves
    backups/ as it found it, so it can be run again at once; only a killed one leaves files."""
    existed = root.exists()
    before = {p.name for p in root.iterdir()} if existed else set()
    try:
        yield
    except BaseException:
        if not existed:
            shutil.rmtree(root, ignore_errors=True)
        else:
            for path in root.iterdir():
                if path.name in before:
                    continue
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
        raise


def _fetch_blobs(
    app: App, resolved: Any, report: RecoverReport, progress: ProgressFn | None
) -> set[tuple[str, str]]:
    """Download, check and install every referenced artifact (a whole blob; or a manifest,
    then the packs, from which the index is rebuilt); return those the target lacks."""
    listing = resolved.target.list("store/")
    missing: set[tuple[str, str]] = set()
    chunked: list[tuple[str, Codec, str]] = []
    for blob in blob_rows(app.catalog.engine):
        if blob["refcount"] <= 0:
            continue
        digest, codec = blob["digest"], Codec(blob["codec"])
        whole, manifest = (
            STORE_PREFIX + rel for rel in (blob_rel(digest, codec), manifest_rel(digest, codec))
        )
        key = whole if whole in listing else manifest if manifest in listing else None
        if key == whole and manifest in listing:  # a blob migrated after it was pushed whole
            key = _expected_of(resolved, whole, manifest, blob["stored_sha256"])
        if key is None:
            missing.add((digest, codec.value))
            continue
        _fetch(app, resolved, key, blob["stored_sha256"], report, progress)
        if key == manifest:
            chunked.append((digest, codec, blob["stored_sha256"]))
            continue
        _check(app, resolved, digest, codec, blob["stored_sha256"])
        report.blobs_fetched += 1
    if chunked:
        for key in sorted(k for k in listing if k.startswith(STORE_PREFIX + "packs/")):
            name = key.rsplit("/", 1)[1].removesuffix(".pack")
            _fetch(app, resolved, key, name, report, progress)
        for digest, codec, stored_sha256 in chunked:
            _check(app, resolved, digest, codec, stored_sha256)
            report.blobs_fetched += 1
    return missing


def _expected_of(resolved: Any, whole: str, manifest: str, stored_sha256: str) -> str:
    """The manifest when it is what the catalog records (`store migrate` converted the blob
    after a push of its whole form), else the whole blob; the manifest is small to read."""
    data = resolved.target.read(manifest) or b""
    return manifest if hashlib.sha256(data).hexdigest() == stored_sha256 else whole


def _fetch(
    app: App,
    resolved: Any,
    key: str,
    sha256: str,
    report: RecoverReport,
    progress: ProgressFn | None,
) -> None:
    rel = key.removeprefix(STORE_PREFIX)
    size = 0

    def counted() -> Any:
        nonlocal size
        for chunk in resolved.target.get_chunks(key):
            size += len(chunk)
            yield chunk

    app.store.adopt_file(rel, counted(), sha256=sha256)
    report.bytes_fetched += size
    if progress:
        progress("recover", report.bytes_fetched)


def _check(app: App, resolved: Any, digest: str, codec: Codec, stored_sha256: str) -> None:
    """Decompress and re-hash what was installed; remove it and fail if it does not verify."""
    result = app.store.verify(digest, codec, expected_stored_sha256=stored_sha256, read_data=True)
    if not result.ok:
        app.store.delete(digest, codec)
        raise UseCaseError(
            f"blob {digest} from {resolved.target.location} does not verify: "
            f"{result.error}; run `dumpledger verify --target` on a machine that has it"
        )


def _write_views(app: App, report: RecoverReport, missing: set[tuple[str, str]]) -> None:
    completed = list_backups(app.catalog.engine, BackupFilter(status="completed"))
    for row in completed:
        backup = get_backup(app.catalog.engine, row["name"])
        if any((a["digest"], a["codec"]) in missing for a in backup["artifacts"]):
            report.incomplete.append(row["name"])
            continue
        write_backup_views(app.settings.database_dir, backup, app.settings.retention)
        report.backups.append(row["name"])
        if report.newest_verified is None and row["verified"] and row["last_verify_ok"]:
            report.newest_verified = row["name"]
    refresh_latest(app)
    install_standalone_script(app.settings.backup_dir)

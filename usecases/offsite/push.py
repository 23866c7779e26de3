"""Offsite copies: push the blobs a target lacks and the event log's export; verify a target.

Order of a push: check that the target's export is a prefix of our log (else refuse: the
histories diverged); upload each missing blob and re-read it; then append the events the
target lacks to its export; then record OffsitePushed. Data before references: a crash leaves
blobs nothing names yet, never an export naming blobs the target lacks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from catalog.canonical import GENESIS_HASH
from catalog.events import OffsitePushed
from catalog.export import ExportBroken, iter_export, read_export
from catalog.queries import blob_rows, list_backups
from catalog.read import BackupFilter
from catalog.schema import artifacts, events, offsite_copies
from store import Codec, StoreError
from store.chunked.store import StoredObject
from store.offsite import EXPORT_KEY, STORE_PREFIX, OffsiteTarget, open_target
from usecases.config.sections import OffsiteTarget as TargetConfig
from usecases.config.settings import Settings
from usecases.context import App
from usecases.errors import BadInput, UseCaseError

ProgressFn = Callable[[str, int], None]


class OffsiteDiverged(UseCaseError):
    """The target's export is not a prefix of this catalog's log."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Resolved:
    name: str  # the configured name, or the location for a target given as a URL
    target: OffsiteTarget


def resolve_target(
    settings: Settings, spec: str | None, *, endpoint_url: str | None = None
) -> Resolved:
    """A configured target by name (or the only one), or a path / s3:// URL given directly."""
    by_name = {t.name: t for t in settings.offsite}
    if spec is not None and spec not in by_name and _looks_like_url(spec):
        known = next((t for t in settings.offsite if t.url == spec), None)
        cfg = known or TargetConfig(name="", url=spec)
    else:
        cfg = settings.offsite_target(spec)
    if endpoint_url:
        cfg = dataclasses.replace(cfg, endpoint_url=endpoint_url)
    url = cfg.url if cfg.is_s3 else str(Path(cfg.url.removeprefix("file://")).expanduser())
    backend = open_target(url, endpoint_url=cfg.endpoint_url, region=cfg.region)
    return Resolved(name=cfg.name or backend.location, target=backend)


def _looks_like_url(spec: str) -> bool:
    return "/" in spec or spec.startswith(("s3://", "file://", ".", "~"))


def blob_key(app: App, digest: str, codec: str) -> str:
    """The blob's key on a target: store/ plus its path relative to the local store."""
    path = app.store.path_for(digest, Codec(codec))
    return STORE_PREFIX + path.relative_to(app.settings.store_dir).as_posix()


# -- the export on the target ---------------------------------------------------------------


def target_head(resolved: Resolved) -> tuple[bytes, int, str]:
    """The target's export, its last seq and hash; (b"", 0, GENESIS) when it has none."""
    data = resolved.target.read(EXPORT_KEY) or b""
    seq, head = 0, GENESIS_HASH
    source = f"{resolved.target.location}/{EXPORT_KEY}"
    for rec in read_export(data.decode("utf-8").splitlines(), source=source):
        seq, head = rec.seq, rec.hash
    return data, seq, head


def check_prefix(app: App, resolved: Resolved, seq: int, head: str) -> None:
    """The target's export must end at an event of ours, with the same hash."""
    if seq == 0:
        return
    with app.catalog.engine.connect() as conn:
        ours = conn.execute(select(events.c.hash).where(events.c.seq == seq)).scalar()
    if ours != head:
        raise OffsiteDiverged(
            f"{resolved.target.location} holds another history (its event {seq} is not this "
            "catalog's): push to an empty target, or recover from it on a new machine"
        )


# -- push -----------------------------------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class PushReport:
    target: str
    location: str
    digests_sent: list[str] = field(default_factory=list)
    bytes_sent: int = 0
    blobs_present: int = 0
    events_sent: int = 0
    log_seq: int = 0
    backups: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def push(
    app: App,
    spec: str | None,
    *,
    endpoint_url: str | None = None,
    rehash: bool = False,
    progress: ProgressFn | None = None,
) -> PushReport:
    """Copy what the target lacks; record OffsitePushed.

    A blob counts as present when the target lists it with the right size; with `rehash`,
    only when it re-hashes right (what repairs a copy `verify --target` found corrupt).
    """
    resolved = resolve_target(app.settings, spec, endpoint_url=endpoint_url)
    remote, remote_seq, remote_head = target_head(resolved)
    check_prefix(app, resolved, remote_seq, remote_head)
    report = PushReport(target=resolved.name, location=resolved.target.location)
    with app.store.protect():  # no blob is collected while it is being copied
        present = _send_blobs(app, resolved, report, progress, rehash=rehash)
        lines = list(iter_export(app.catalog, after_seq=remote_seq))
        if lines:
            data = remote + "".join(lines).encode("utf-8")
            resolved.target.replace(EXPORT_KEY, data)
        report.events_sent = len(lines)
        report.log_seq = remote_seq + len(lines)
        report.backups = _complete_backups(app, present)
    app.catalog.append(
        OffsitePushed(
            target=report.target,
            location=report.location,
            backups=report.backups,
            digests_sent=report.digests_sent,
            bytes_sent=report.bytes_sent,
            log_seq=report.log_seq,
        ),
        actor=app.actor,
    )
    return report


def _send_blobs(
    app: App,
    resolved: Resolved,
    report: PushReport,
    progress: ProgressFn | None,
    *,
    rehash: bool = False,
) -> set[str]:
    """Upload the files of referenced artifacts the target lacks (a chunked artifact's packs
    before its manifest: data before references); return every artifact key now there."""
    listing = resolved.target.list(STORE_PREFIX)
    present: set[str] = set()
    there: set[str] = set()  # object keys on the target (a pack serves many artifacts)
    for blob in blob_rows(app.catalog.engine):
        if blob["refcount"] <= 0:
            continue
        digest, codec = blob["digest"], Codec(blob["codec"])
        key = blob_key(app, digest, codec)
        if not rehash and listing.get(key) == _identity_size(app, key, blob):
            present.add(key)  # a manifest is sent after its packs: they are there too
            report.blobs_present += 1
            continue
        sent = 0
        for obj in _objects(app, digest, codec, blob["stored_sha256"]):
            okey = STORE_PREFIX + obj.rel
            if okey in there or _on_target(resolved, listing, okey, obj, rehash):
                there.add(okey)
                continue
            resolved.target.put_file(okey, obj.path, sha256=obj.sha256, size=obj.size)
            there.add(okey)
            sent += obj.size
            report.bytes_sent += obj.size
            if progress:
                progress("push", report.bytes_sent)
        present.add(key)
        if sent:
            report.digests_sent.append(digest)
        else:
            report.blobs_present += 1
    return present


def _objects(app: App, digest: str, codec: Codec, stored_sha256: str) -> list[StoredObject]:
    """The artifact's files, packs first; UseCaseError when the store lacks one."""
    try:
        objects = app.store.objects_of(digest, codec, stored_sha256)
    except StoreError as exc:
        raise UseCaseError(
            f"blob {digest} cannot be pushed: {exc}; run `dumpledger verify --all`"
        ) from None
    return [*objects[1:], objects[0]]


def _identity_size(app: App, key: str, blob: dict[str, Any]) -> int | None:
    """The size of the artifact's blob (the catalog's) or manifest (the local file's)."""
    if key.startswith(STORE_PREFIX + "sha256/"):
        return int(blob["stored_size"])
    local = app.settings.store_dir / key.removeprefix(STORE_PREFIX)
    return local.stat().st_size if local.is_file() else None


def _on_target(
    resolved: Resolved, listing: dict[str, int], key: str, obj: StoredObject, rehash: bool
) -> bool:
    if listing.get(key) != obj.size:
        return False
    return not rehash or resolved.target.hash(key) == (obj.sha256, obj.size)


def _complete_backups(app: App, present: set[str]) -> list[str]:
    """Completed backups every artifact of which is on the target."""
    with app.catalog.engine.connect() as conn:
        rows = conn.execute(select(artifacts.c.backup_name, artifacts.c.digest, artifacts.c.codec))
        by_backup: dict[str, bool] = {}
        for r in rows:
            ok = blob_key(app, r.digest, r.codec) in present
            by_backup[r.backup_name] = by_backup.get(r.backup_name, True) and ok
    rows_done = list_backups(app.catalog.engine, BackupFilter(status="completed"))
    completed = {b["name"] for b in rows_done}
    return sorted(n for n, ok in by_backup.items() if ok and n in completed)


# -- verify --target ------------------------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class TargetVerifyReport:
    target: str
    location: str
    blobs: list[dict[str, Any]] = field(default_factory=list)
    export_ok: bool = True
    export_error: str | None = None
    export_seq: int = 0

    @property
    def ok(self) -> bool:
        return self.export_ok and all(b["ok"] for b in self.blobs)

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "ok": self.ok}


def verify_target(
    app: App,
    spec: str | None,
    *,
    endpoint_url: str | None = None,
    progress: ProgressFn | None = None,
) -> TargetVerifyReport:
    """Re-hash every blob the catalog says the target holds; check its export's chain."""
    resolved = resolve_target(app.settings, spec, endpoint_url=endpoint_url)
    report = TargetVerifyReport(target=resolved.name, location=resolved.target.location)
    expected = _expected_blobs(app, resolved.name)
    if not expected:
        raise BadInput(
            f"the catalog records no backup on {resolved.name}; run `dumpledger push` first"
        )
    try:
        _, report.export_seq, head = target_head(resolved)
        check_prefix(app, resolved, report.export_seq, head)
        if report.export_seq == 0:
            raise ExportBroken(f"{resolved.target.location} has no {EXPORT_KEY}")
    except (ExportBroken, OffsiteDiverged) as exc:
        report.export_ok, report.export_error = False, str(exc)
    done = 0
    checked: dict[str, tuple[str, int] | None] = {}  # object key -> what the target holds
    for (digest, codec), blob in sorted(expected.items()):
        key = blob_key(app, digest, codec)
        error = None
        for okey, sha, size in _expected_objects(app, digest, codec, blob):
            if okey not in checked:
                checked[okey] = resolved.target.hash(okey)
                done += (checked[okey] or ("", 0))[1]
            got = checked[okey]
            if got is None:
                error = f"{okey} is missing; run `dumpledger push`"
            elif got[0] != sha or (size is not None and got[1] != size):
                error = (
                    f"{okey} is corrupt: {got[1]} bytes with SHA-256 {got[0]}, expected "
                    f"{'' if size is None else f'{size} bytes with '}SHA-256 {sha}; "
                    "run `dumpledger push --rehash`"
                )
            if error:
                break
        report.blobs.append(
            {"digest": digest, "codec": codec, "key": key, "backups": blob["backups"]}
            | {"ok": error is None, "error": error}
        )
        if progress:
            progress("verify", done)
    return report


def _expected_objects(
    app: App, digest: str, codec: str, blob: dict[str, Any]
) -> list[tuple[str, str, int | None]]:
    """(key, SHA-256, size) of each file the target must hold for an artifact: the blob, or
    the manifest and its packs (as this store knows them; the manifest alone if it does not)."""
    try:
        objects = _objects(app, digest, Codec(codec), blob["stored_sha256"])
    except UseCaseError:
        return [(blob_key(app, digest, codec), blob["stored_sha256"], None)]
    whole = len(objects) == 1 and objects[0].rel.startswith("sha256/")
    return [
        (STORE_PREFIX + o.rel, o.sha256, int(blob["stored_size"]) if whole else o.size)
        for o in objects
    ]


def _expected_blobs(app: App, target: str) -> dict[tuple[str, str], dict[str, Any]]:
    q = (
        select(artifacts)
        .join(offsite_copies, offsite_copies.c.backup_name == artifacts.c.backup_name)
        .where(offsite_copies.c.target == target)
        .order_by(artifacts.c.backup_name)
    )
    out: dict[tuple[str, str], dict[str, Any]] = {}
    with app.catalog.engine.connect() as conn:
        for a in conn.execute(q):
            entry = out.setdefault(
                (a.digest, a.codec),
                {"stored_sha256": a.stored_sha256, "stored_size": a.stored_size, "backups": []},
            )
            entry["backups"].append(a.backup_name)
    return out

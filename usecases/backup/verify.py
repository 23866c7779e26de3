"""Re-read every artifact of a backup, decompress, re-hash; record BackupVerified."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from catalog.events import BackupVerified, BlobRepaired
from catalog.queries import list_backups
from catalog.read import BackupFilter
from pgtools.binaries import find_program
from pgtools.dump import check_custom_dump
from pgtools.errors import PgError
from store import Codec, DecryptionKeyError
from usecases.backup.logcheck import as_the_log_says
from usecases.backup.views import artifact_filename
from usecases.context import App
from usecases.errors import BadInput, UseCaseError

ProgressFn = Callable[[str, int], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyOutcome:
    backup: str
    ok: bool
    artifacts: list[dict[str, Any]]
    problem: str | None = None  # the backup as a whole (see usecases.backup.logcheck)
    recorded: bool = True  # False on a read-only backup directory: BackupVerified not appended

    def failures(self) -> list[dict[str, Any]]:
        return [a for a in self.artifacts if not a["ok"]]


def verify_backups(
    app: App,
    names: list[str] | None,
    *,
    all_backups: bool = False,
    progress: ProgressFn | None = None,
    read_data: bool = False,
) -> list[VerifyOutcome]:
    if all_backups:
        rows = list_backups(app.catalog.engine, BackupFilter(status="completed"))
        names = [r["name"] for r in reversed(rows)]
        if not names:
            raise UseCaseError(
                "there is no completed backup to verify (`dumpledger list` shows the failed "
                "and running ones); take one with `dumpledger backup`"
            )
    if not names:
        raise BadInput("name a backup to verify, or pass --all")
    return [verify_one(app, name, progress=progress, read_data=read_data) for name in names]


def verify_one(
    app: App, name: str, *, progress: ProgressFn | None = None, read_data: bool = False
) -> VerifyOutcome:
    return verify_kinds(app, name, None, progress=progress, read_data=read_data)


def verify_kinds(
    app: App,
    name: str,
    kinds: list[str] | None,
    *,
    progress: ProgressFn | None = None,
    decode_custom: bool = True,
    read_data: bool = False,
) -> VerifyOutcome:
    """Verify the artifacts of `kinds` (all when None) and append BackupVerified.

    A chunked artifact's manifest and packs are re-hashed; `read_data` also decompresses and
    re-hashes every chunk and the whole stream (a whole blob is always read whole).

    `decode_custom=False` skips decoding a custom-format dump with pg_restore: the hashes
    prove it is byte for byte the dump that decoded when it was stored (restore uses this,
    since pg_restore is about to read it anyway).
    """
    backup, problem = as_the_log_says(app, name)
    arts = [a for a in backup["artifacts"] if kinds is None or a["kind"] in kinds]
    with naming_recipients(backup):
        results = [_check(app, backup, art, progress, decode_custom, read_data) for art in arts]
    ok = problem is None and all(r["ok"] for r in results)
    if not app.read_only:  # a read-only copy (a mounted offsite disk) records nothing
        app.catalog.append(
            BackupVerified(backup=name, ok=ok, artifacts=results, problem=problem),
            actor=app.actor,
        )
    return VerifyOutcome(
        backup=name, ok=ok, artifacts=results, problem=problem, recorded=not app.read_only
    )


def _check(
    app: App,
    backup: dict[str, Any],
    art: dict[str, Any],
    progress: ProgressFn | None,
    decode_custom: bool = True,
    read_data: bool = False,
) -> dict[str, Any]:
    codec = Codec(art["codec"])
    path = app.store.path_for(art["digest"], codec)
    report = (lambda n: progress(art["kind"], n)) if progress else None
    res = app.store.verify(
        art["digest"],
        codec,
        expected_stored_sha256=art["stored_sha256"],
        progress=report,
        read_data=read_data,
    )
    if not res.ok and res.content_ok:  # another valid copy is in place: the catalog follows
        if not app.read_only:  # a read-only copy records nothing
            accept_replaced_copy(app, art, res.stored_sha256, res.stored_size)
        res = app.store.verify(art["digest"], codec, expected_stored_sha256=res.stored_sha256)
    error = None if res.ok else f"{res.error}; {REPAIR_HINT}"
    if res.ok and art["kind"] == "custom" and decode_custom and res.note is None:
        error = _decode_custom(app, art, codec)
    return {
        "kind": art["kind"],
        "digest": art["digest"],
        "file": str(path),
        "link": artifact_filename(backup["name"], art["kind"], art["codec"]),
        "ok": error is None,
        "error": error,
        "note": res.note,
    }


REPAIR_HINT = (
    "the stored copy is missing or damaged: a new backup of the same database state replaces "
    "it (dumpledger backup); if the database changed since, a copy pushed offsite can be "
    "recovered (dumpledger recover --backup-dir NEW)"
)


def accept_replaced_copy(app: App, art: dict[str, Any], stored_sha: str, size: int) -> None:
    """The blob's stored bytes are not those recorded, yet decompress to the right content
    (a catalog sharing the store repaired it, writing another valid copy): record it."""
    app.catalog.append(
        BlobRepaired(
            digest=art["digest"],
            codec=art["codec"],
            stored_sha256=stored_sha,
            stored_size=size,
            previous_sha256=art["stored_sha256"],
            reason="another valid copy replaced the one recorded (its content verified)",
        ),
        actor=app.actor,
    )


@contextmanager
def naming_recipients(backup: dict[str, Any]) -> Iterator[None]:
    """Add to a key error whom the backup was encrypted to: that says which key to find."""
    try:
        yield
    except DecryptionKeyError as exc:
        enc = (backup.get("metadata") or {}).get("encryption") or {}
        recipients = ", ".join(enc.get("recipients") or []) or "unknown recipients"
        raise DecryptionKeyError(
            f"{exc}; backup {backup.get('name')} is encrypted to {recipients}"
        ) from None


def _decode_custom(app: App, art: dict[str, Any], codec: Codec) -> str | None:
    try:
        pg_restore = find_program("pg_restore", 0, extra_dirs=_bindirs(app))
        with app.store.open_raw(art["digest"], codec) as chunks:
            check_custom_dump(pg_restore.path.parent, iter(chunks))
    except PgError as exc:
        return str(exc)
    return None


def _bindirs(app: App) -> list[str]:
    return [app.settings.pg_bindir] if app.settings.pg_bindir else []

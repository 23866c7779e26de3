"""What every use case needs: settings, catalog, store, who is acting, and the clock."""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from catalog import Catalog
from catalog.events import BackupFailed
from catalog.queries import running_backups
from catalog.read import sqlite_file
from store import AgeKeys, BlobStore, LocalStore
from usecases.config.settings import Settings
from usecases.errors import BackupDirReadOnly
from usecases.files import private_dir
from usecases.reading import pid_alive

Clock = Callable[[], datetime]


def default_clock() -> datetime:
    return datetime.now(UTC)


def actor_label(via: str | None = None) -> str:
    """user@host plus how: cli or scheduler."""
    how = via or os.environ.get("DUMPLEDGER_VIA", "cli")
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()} via {how}"


@dataclass
class App:
    settings: Settings
    catalog: Catalog
    store: BlobStore
    actor: str
    clock: Clock = default_clock
    notices: list[str] = field(default_factory=list)  # for the user's terminal (stderr)

    read_only: bool = False  # opened from a read-only backup directory: records nothing

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        clock: Clock = default_clock,
        via: str | None = None,
        read_only_ok: bool = False,
    ) -> App:
        """Settings, catalog (created or upgraded), store; abandoned backups recorded.

        `read_only_ok`: a command that only reads (list, info, verify, catalog verify, audit,
        check) also runs on a backup directory it cannot write (a mounted offsite disk): the
        catalog is then opened as it is, and nothing is recorded or cleaned up.
        """
        blocked = unwritable(settings)
        if blocked is not None:
            if not read_only_ok:
                raise BackupDirReadOnly(read_only_message(blocked))
            return cls._read_only(settings, clock, via)
        try:
            private_dir(settings.backup_dir)
        except OSError as exc:
            raise BackupDirReadOnly(read_only_message(settings.backup_dir, exc)) from None
        catalog = Catalog.open(settings.effective_catalog_url(), clock=clock)
        app = cls(settings, catalog, _store(settings), actor_label(via), clock)
        try:
            app.settle_abandoned()
        except BaseException:
            app.close()
            raise
        return app

    @classmethod
    def _read_only(cls, settings: Settings, clock: Clock, via: str | None) -> App:
        catalog = Catalog.open(settings.effective_catalog_url(), clock=clock, read_only=True)
        app = cls(settings, catalog, _store(settings), actor_label(via), clock)
        app.read_only = True
        return app

    def close(self) -> None:
        self.catalog.close()

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def settle_abandoned(self) -> list[str]:
        """Record backups (and restores) whose process on this host died without finishing as
        failed."""
        host = socket.gethostname()
        settled = []
        for b in running_backups(self.catalog.engine):
            if b["hostname"] != host or pid_alive(b["pid"]):
                continue
            reason = (
                f"backup process {b['pid']} on {host} ended without finishing "
                "(killed or crashed); its partial files were removed"
            )
            self.catalog.append(
                BackupFailed(backup=b["name"], reason=reason, stage="abandoned", abandoned=True),
                actor=self.actor,
            )
            settled.append(b["name"])
        from usecases.restore.interrupted import settle_interrupted_restores

        self.notices.extend(settle_interrupted_restores(self))
        with self.store.collecting(wait=0) as alone:
            if alone:  # no backup is writing: every temp file is a dead writer's
                self.store.remove_stale_temp_files()
        remove_dead_decrypted(self.settings.backup_dir / "tmp")
        return settled


def _store(settings: Settings) -> LocalStore:
    enc = settings.encryption
    keys = AgeKeys(recipients=enc.recipients, identity_file=enc.identity_file)
    return LocalStore(settings.store_dir, keys)


def unwritable(settings: Settings) -> Path | None:
    """What this process may not write of the backup directory (or the directory it would be
    made in) and the catalog file, or None: on a read-only mount even root may not."""
    probe = settings.backup_dir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not os.access(probe, os.W_OK):
        return probe
    path = sqlite_file(settings.effective_catalog_url())
    if path is not None and path.exists() and not os.access(path, os.W_OK):
        return path
    return None


def read_only_message(path: Path, exc: OSError | None = None) -> str:
    why = exc.strerror if exc is not None and exc.strerror else "it is read-only"
    return (
        f"cannot write to {path} ({why}): this command records what it does in the backup "
        "directory; list, info, verify, catalog verify, audit and check also work on a "
        "read-only copy"
    )


def remove_dead_decrypted(tmp_dir: Path) -> list[Path]:
    """Decrypted custom dumps (decrypted-<pid>-*.dump) whose restore process died: plaintext
    of an encrypted backup must not stay on disk."""
    removed = []
    for path in sorted(tmp_dir.glob("decrypted-*-*.dump")) if tmp_dir.is_dir() else []:
        pid = path.name.split("-")[1]
        if pid.isdigit() and not pid_alive(int(pid)):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed

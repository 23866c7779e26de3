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
from store import AgeKeys, BlobStore, LocalStore
from usecases.config.settings import Settings
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

    @classmethod
    def open(
        cls, settings: Settings, *, clock: Clock = default_clock, via: str | None = None
    ) -> App:
        private_dir(settings.backup_dir)
        catalog = Catalog.open(settings.effective_catalog_url(), clock=clock)
        enc = settings.encryption
        keys = AgeKeys(recipients=enc.recipients, identity_file=enc.identity_file)
        app = cls(settings, catalog, LocalStore(settings.store_dir, keys), actor_label(via), clock)
        app.settle_abandoned()
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

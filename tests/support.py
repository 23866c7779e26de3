"""Helpers shared by the integration and CLI tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from catalog import Catalog
from pgtools.target import DbTarget
from usecases.config.settings import Settings
from usecases.context import App


def settings_for(tmp_path: Path, cluster: Any, *, user: str = "postgres") -> Settings:
    """Settings pointing at a throwaway cluster over its Unix socket (trust auth)."""
    return Settings(
        backup_dir=tmp_path / "backups",
        database=DbTarget(
            host=str(cluster.socket_dir), port=cluster.port, user=user, dbname="postgres"
        ),
        pg_bindir=str(cluster.bindir),
    )


def app_for(settings: Settings) -> App:
    return App.open(settings)


def store_files(app: App) -> list[Path]:
    """The blob files (not the roots and journals beside them)."""
    return [p for p in (app.settings.store_dir / "sha256").rglob("*") if p.is_file()]


def pack_of(backup_dir: Path, digest: str, codec: str = "gzip") -> Path:
    """A pack file holding chunks of a chunked artifact (to damage it)."""
    from store import Codec, LocalStore

    store = LocalStore(backup_dir / "store")
    return store.chunks.pack_path(min(store.chunks.packs_of(digest, Codec(codec))))


def cluster_env(cluster: Any, backup_dir: Path) -> dict[str, str]:
    """Environment for a `dumpledger` child process aimed at `cluster`."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "SUPABASE_"))}
    env.update(
        SUPABASE_DB_HOST=str(cluster.socket_dir),
        SUPABASE_DB_PORT=str(cluster.port),
        SUPABASE_DB_USER="postgres",
        SUPABASE_DB_NAME="postgres",
        DUMPLEDGER_BACKUP_DIR=str(backup_dir),
        DUMPLEDGER_PG_BINDIR=str(cluster.bindir),
    )
    return env


def fabricate_backup(
    app: App,
    name: str,
    full_sql: bytes,
    *,
    row_counts: dict[str, int],
    backup_type: str = "manual",
    globals_sql: bytes | None = None,
    metadata: dict[str, Any] | None = None,
) -> None:
    """A catalog backup whose artifacts hold exactly the given SQL, recorded as a real backup
    would be (the blobs go through the store; the events through the catalog).

    For failures that a healthy pg_dump does not produce: SQL that errors partway, row
    counts that no longer match what restores.
    """
    import os
    import socket

    from catalog.events import BackupCompleted, BackupStarted
    from store import Codec

    artifacts: list[dict[str, Any]] = []
    for kind, data in (("full", full_sql), ("globals", globals_sql)):
        if data is None:
            continue
        info = app.store.put([data], Codec.GZIP)
        artifacts.append(
            {
                "kind": kind,
                "digest": info.digest,
                "codec": "gzip",
                "raw_size": info.raw_size,
                "stored_size": info.stored_size,
                "stored_sha256": info.stored_sha256,
                "created": info.created,
            }
        )
    app.catalog.append(
        BackupStarted(
            backup=name,
            backup_type=backup_type,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            database=app.settings.database.describe(),
            artifacts=[a["kind"] for a in artifacts],
            codec="gzip",
        ),
        actor=app.actor,
    )
    app.catalog.append(
        BackupCompleted(
            backup=name,
            backup_type=backup_type,
            artifacts=artifacts,
            verified=True,
            duration_seconds=0.0,
            metadata={"row_counts": row_counts, **(metadata or {})},
        ),
        actor=app.actor,
    )


DUMPLEDGER = [sys.executable, "-m", "cli"]


def run_cli(
    env: dict[str, str], *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """The real `dumpledger` in a subprocess; no stdin, so a prompt fails instead of hanging."""
    done = subprocess.run(
        [*DUMPLEDGER, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"exit {done.returncode}: {done.stderr}")
    return done


def catalog_of(env: dict[str, str]) -> Catalog:
    """The SQLite catalog of the backup directory a CLI environment points at."""
    return Catalog.open(f"sqlite:///{env['DUMPLEDGER_BACKUP_DIR']}/catalog.db")


def wrapped_pg_dump(real_bindir: Path, bindir: Path, *, then: str) -> Path:
    """`bindir` with the real client programs, except that pg_dump's output goes through the
    shell pipeline `then` (`--version`/`--help` still answer as the real one)."""
    bindir.mkdir()
    for prog in ("pg_dumpall", "pg_restore", "psql"):
        (bindir / prog).symlink_to(real_bindir / prog)
    script = bindir / "pg_dump"
    script.write_text(
        "#!/bin/sh\n"
        f'case "$1" in --version|--help) exec "{real_bindir}/pg_dump" "$1";; esac\n'
        f'"{real_bindir}/pg_dump" "$@" | {then}\n'
    )
    script.chmod(0o755)
    return bindir

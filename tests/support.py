"""Helpers shared by the integration and CLI tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pgtools.target import DbTarget
from usecases.config import Settings
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
    return [p for p in app.settings.store_dir.rglob("*") if p.is_file()]


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

"""The newest backup's files under backups/database/ are refreshed by one process at a time:
two backups (or a backup and a cleanup, a migrate, a recover) ending together each removed
the files the other had just written, or left an older backup's as the newest."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.support import DUMPLEDGER, catalog_of, cluster_env
from tests.support import run_cli as run


def test_a_backup_refreshes_the_newest_files_only_under_the_directory_lock(
    tmp_path: Path, supabase_db: Any
) -> None:
    backup_dir = tmp_path / "backups"
    env = cluster_env(supabase_db.cluster, backup_dir)
    first = json.loads(run(env, "backup", "--type", "nightly", "--json").stdout)["name"]
    database = backup_dir / "database"
    assert (database / "latest_full.sql.gz").samefile(database / f"{first}_full.sql.gz")
    fd = os.open(database / ".latest.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another process refreshing the files, say
        proc = subprocess.Popen(
            [*DUMPLEDGER, "backup", "--type", "nightly", "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            with catalog_of(env) as cat:
                if len(cat.events(types=["BackupCompleted"])) == 2:
                    break
            time.sleep(0.1)
        time.sleep(1.0)
        assert proc.poll() is None, proc.communicate()  # completed, waiting for the lock
        assert (database / "latest_full.sql.gz").samefile(database / f"{first}_full.sql.gz")
    finally:
        os.close(fd)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    second = json.loads(out)["name"]
    assert (database / "latest_full.sql.gz").samefile(database / f"{second}_full.sql.gz")
    assert not (database / f"{first}_full.sql.gz").exists()

"""A backup killed on a host that is gone (a container renamed) stays `running`: after
health.stale_running_hours `list` and `check` say so, and `delete --force` settles it as
abandoned, then deletes it; before that, and for a live process here, it is left alone."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from catalog.events import BackupStarted
from tests.support import catalog_of, cluster_env, settings_for
from tests.support import run_cli as run
from usecases.context import App


def start_elsewhere(app: App, name: str, host: str) -> None:
    app.catalog.append(
        BackupStarted(
            backup=name,
            backup_type="nightly",
            hostname=host,
            pid=4242,
            database=app.settings.database.describe(),
            artifacts=["full", "globals"],
            codec="gzip",
        ),
        actor=f"root@{host} via scheduler",
    )


def test_a_backup_running_on_a_vanished_host_can_be_settled_and_deleted(
    tmp_path: Path, supabase_db: Any
) -> None:
    backup_dir = tmp_path / "backups"
    backup_dir.mkdir()
    (backup_dir / "backup-config.json").write_text(
        json.dumps({"health": {"min_free_bytes": 0}, "notifications": {"desktop": False}})
    )
    env = cluster_env(supabase_db.cluster, backup_dir)
    now = datetime.now(UTC)
    old, young = "auto_nightly_20261120_235900", "auto_nightly_20261124_235900"
    with App.open(
        settings_for(tmp_path, supabase_db.cluster), clock=lambda: now - timedelta(hours=30)
    ) as app:
        start_elsewhere(app, old, "container-1f2e")
    with App.open(
        settings_for(tmp_path, supabase_db.cluster), clock=lambda: now - timedelta(hours=1)
    ) as app:
        start_elsewhere(app, young, "container-9a8b")

    listed = run(env, "list")
    assert f"backup {old} has been running for 30 h (started on host container-1f2e, pid 4242)" in (
        listed.stderr
    )
    assert f"dumpledger delete --force {old}" in listed.stderr and young not in listed.stderr
    rows = {r["name"]: r for r in json.loads(run(env, "list", "--json").stdout)}
    assert (rows[old]["status"], rows[old]["stale"]) == ("running", True)
    assert rows[young]["stale"] is False

    checked = json.loads(run(env, "check", "--json", "--no-notify", check=False).stdout)
    [stale] = [c for c in checked["checks"] if c["name"] == "running backups"]
    assert (
        stale["status"] == "WARNING" and old in stale["message"] and young not in stale["message"]
    )

    refused = run(env, "delete", old, "--yes", check=False)
    assert refused.returncode == 2 and f"`dumpledger delete --force {old}`" in refused.stderr
    too_young = run(env, "delete", young, "--yes", "--force", check=False)
    assert too_young.returncode == 2
    assert "wait for it to finish: after 24 h without finishing" in too_young.stderr

    assert run(env, "delete", old, "--yes", "--force").returncode == 0
    with catalog_of(env) as cat:
        events = cat.events(subject=old)
    assert [e.type for e in events] == ["BackupStarted", "BackupFailed", "BackupDeleted"]
    assert events[1].payload["stage"] == "abandoned" and events[1].payload["abandoned"] is True
    assert "settled as abandoned by" in events[1].payload["reason"]
    rows = {r["name"]: r for r in json.loads(run(env, "list", "--json").stdout)}
    assert old not in rows and rows[young]["status"] == "running"

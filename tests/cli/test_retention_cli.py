"""`cleanup`, `delete`, `pin`, `unpin` and `retention` as a person or a script runs them."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tests.support import cluster_env
from tests.support import run_cli as run

DUMPLEDGER = [sys.executable, "-m", "cli"]


def test_pin_delete_and_cleanup_from_the_command_line(tmp_path: Path, supabase_db: Any) -> None:
    env = cluster_env(supabase_db.cluster, tmp_path / "backups")
    first = json.loads(run(env, "backup", "--type", "nightly", "--json").stdout)
    assert first["retention"]["deleted"] == []  # retention ran after the automatic backup
    second = json.loads(run(env, "backup", "keep-me", "--json").stdout)["name"]
    old = first["name"]

    refused = run(env, "delete", old, check=False)
    assert refused.returncode == 2
    assert "confirmation" in refused.stderr and "--yes" in refused.stderr

    run(env, "pin", old, "--reason", "audit 2026")
    rows = {r["name"]: r for r in json.loads(run(env, "list", "--json").stdout)}
    assert rows[old]["pinned"] is True and rows[old]["pin_reason"] == "audit 2026"
    assert "pinned" in run(env, "list").stdout
    pinned = run(env, "delete", old, "--yes", check=False)
    assert pinned.returncode == 2
    assert "pinned (audit 2026)" in pinned.stderr and "--force" in pinned.stderr
    explained = json.loads(run(env, "retention", "explain", old, "--json").stdout)
    assert explained["rule"] == "pinned"

    dry = json.loads(run(env, "cleanup", "0", "--dry-run", "--json").stdout)
    assert {d["name"]: d["action"] for d in dry["decisions"]} == {old: "keep", second: "keep"}
    run(env, "unpin", old)
    dry = json.loads(run(env, "cleanup", "0", "--dry-run", "--json").stdout)
    actions = {d["name"]: (d["action"], d["rule"]) for d in dry["decisions"]}
    assert actions[old] == ("remove", "expired")
    assert actions[second] == ("keep", "newest-verified")

    out = run(env, "cleanup", "0").stdout
    assert "1 backup(s) removed" in out
    rows = {
        r["name"]: r for r in json.loads(run(env, "list", "--status", "deleted", "--json").stdout)
    }
    assert rows[old]["deleted_rule"] == "expired"
    audit = json.loads(run(env, "audit", "--action", "delete", "--json").stdout)
    assert [a["backup"] for a in audit] == [old]

    sim = json.loads(run(env, "retention", "simulate", "--no-new-backups", "3650", "--json").stdout)
    assert [k["name"] for k in sim["kept"]] == [second]

    run(env, "delete", second, "--yes")
    assert json.loads(run(env, "list", "--json").stdout) == []
    assert not list((tmp_path / "backups" / "store").rglob("*.sql.gz"))


def test_a_broken_retention_policy_is_one_clear_line(tmp_path: Path, supabase_db: Any) -> None:
    env = cluster_env(supabase_db.cluster, tmp_path / "backups")
    (tmp_path / "backups").mkdir()
    (tmp_path / "backups" / "backup-config.json").write_text(
        json.dumps({"retention": {"auto": {"keep_within": 30}}})
    )
    done = run(env, "cleanup", "--dry-run", check=False)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "retention: auto: unknown key(s) keep_within" in done.stderr

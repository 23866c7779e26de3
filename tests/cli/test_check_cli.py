"""`dumpledger check` and `dumpledger metrics` as Nagios, Prometheus and a person run them:
scripted situations, real CLI processes, exit codes and JSON."""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from catalog import Catalog
from catalog.events import RestoreTested
from pgtools.cluster import free_port
from tests.schedule_support import with_user_manager
from tests.support import cluster_env, fabricate_backup, settings_for
from tests.support import run_cli as run
from tests.unit.test_metrics import parse
from usecases.context import App

CONFIG = {"health": {"min_free_bytes": 0}, "notifications": {"desktop": False}}
SQL = b"CREATE TABLE public.t (id int);\n" * 200


def configure(backup_dir: Path, **extra: Any) -> None:
    backup_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    doc = {**CONFIG, **extra}
    (backup_dir / "backup-config.json").write_text(json.dumps(doc))


def catalog_of(backup_dir: Path) -> Catalog:
    return Catalog.open(f"sqlite:///{backup_dir / 'catalog.db'}")


def check_env(cluster: Any, backup_dir: Path) -> dict[str, str]:
    """The CLI's environment, with a systemd user manager (the fake `systemctl`) that runs the
    units `install_schedule` writes."""
    return with_user_manager(cluster_env(cluster, backup_dir), backup_dir.parent)


def install_schedule(env: dict[str, str]) -> None:
    run(env, "schedule", "install", "--backend", "systemd")


def scripted(tmp_path: Path, cluster: Any, finished_ago: timedelta) -> Path:
    """A catalog whose one automatic backup finished `finished_ago`, verified and drilled
    then, with a schedule installed: only the backup's age can be wrong."""
    backup_dir = tmp_path / "backups"
    configure(backup_dir)
    at = datetime.now(UTC) - finished_ago
    with App.open(settings_for(tmp_path, cluster), clock=lambda: at) as app:
        name = f"auto_nightly_{at:%Y%m%d_%H%M%S}"
        fabricate_backup(app, name, SQL, row_counts={"public.t": 0}, backup_type="nightly")
        app.catalog.append(
            RestoreTested(
                backup=name,
                ok=True,
                target={},
                restore_seconds=1.0,
                check_seconds=0.1,
                total_seconds=1.1,
                tables_checked=1,
                mismatches=[],
            ),
            actor="test",
        )
    install_schedule(check_env(cluster, backup_dir))
    return backup_dir


def check(env: dict[str, str], *args: str) -> tuple[int, dict[str, Any]]:
    done = run(env, "check", "--json", *args, check=False)
    return done.returncode, json.loads(done.stdout)


def statuses(doc: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["status"] for c in doc["checks"]}


def test_fresh_verified_drilled_backup_is_ok_and_metrics_say_so(
    tmp_path: Path, supabase_db: Any
) -> None:
    backup_dir = tmp_path / "backups"
    configure(backup_dir)
    env = check_env(supabase_db.cluster, backup_dir)
    env["SUPABASE_DB_USER"] = "supabase_admin"  # a drill creates the backup's roles
    name = json.loads(run(env, "backup", "--type", "nightly", "--json").stdout)["name"]
    run(env, "drill", "--latest")
    install_schedule(env)

    code, doc = check(env)
    assert code == 0, doc
    assert doc["status"] == "OK" and doc["exit_code"] == 0
    assert set(statuses(doc).values()) == {"OK"}
    assert statuses(doc).keys() >= {"database", "pg_dump", "catalog", "store", "last backup"}
    human = run(env, "check")
    assert human.stdout.splitlines()[0].startswith("DUMPLEDGER OK - ")
    assert f"[OK] last backup: {name}" in human.stdout

    prom = tmp_path / "textfile" / "dumpledger.prom"
    prom.parent.mkdir()
    before = datetime.now(UTC)
    run(env, "metrics", "--textfile", str(prom))
    after = datetime.now(UTC)
    m = parse(prom.read_text())
    assert m["dumpledger_backups"][(("status", "completed"), ("type", "nightly"))] == 1
    row = json.loads(run(env, "info", name, "--json").stdout)

    def age_of(moment: str) -> tuple[float, float]:  # what the metric may read, run to run
        at = datetime.fromisoformat(moment.replace("Z", "+00:00"))
        return (before - at).total_seconds() - 1, (after - at).total_seconds() + 1

    low, high = age_of(row["last_drill_at"])
    assert low <= m["dumpledger_seconds_since_last_drill"][()] <= high
    low, high = age_of(row["finished_at"])
    assert low <= m["dumpledger_seconds_since_last_backup"][(("class", "auto"),)] <= high
    assert m["dumpledger_stored_bytes"][()] > 0
    assert parse(run(env, "metrics").stdout).keys() == m.keys()  # printed text parses too


def test_backup_older_than_the_rpo_is_a_warning(tmp_path: Path, supabase_db: Any) -> None:
    backup_dir = scripted(tmp_path, supabase_db.cluster, timedelta(hours=7))
    env = check_env(supabase_db.cluster, backup_dir)
    code, doc = check(env, "--no-notify")
    assert code == 1
    assert doc["status"] == "WARNING"
    bad = {k: v for k, v in statuses(doc).items() if v != "OK"}
    assert bad == {"last backup": "WARNING"}
    assert "older than the RPO of 6 h" in doc["summary"]
    assert doc["summary"].startswith("DUMPLEDGER WARNING - last backup: auto_nightly_")

    configure(backup_dir, health={"min_free_bytes": 0, "rpo_hours": 8})
    code, doc = check(env, "--no-notify")
    assert (code, doc["status"]) == (0, "OK")


def test_database_down_is_critical(tmp_path: Path, supabase_db: Any) -> None:
    backup_dir = scripted(tmp_path, supabase_db.cluster, timedelta(minutes=5))
    env = check_env(supabase_db.cluster, backup_dir)
    env["SUPABASE_DB_HOST"] = "127.0.0.1"
    env["SUPABASE_DB_PORT"] = str(free_port())  # nothing listens there
    code, doc = check(env, "--no-notify")
    assert code == 2
    assert doc["status"] == "CRITICAL"
    assert statuses(doc)["database"] == "CRITICAL"
    assert statuses(doc)["catalog"] == "OK"
    human = run(env, "check", "--no-notify", check=False)
    assert human.returncode == 2
    assert human.stdout.startswith("DUMPLEDGER CRITICAL - database: cannot connect to")


def test_broken_hash_chain_is_critical(tmp_path: Path, supabase_db: Any) -> None:
    backup_dir = scripted(tmp_path, supabase_db.cluster, timedelta(minutes=5))
    env = check_env(supabase_db.cluster, backup_dir)
    assert check(env, "--no-notify")[0] == 0
    db = sqlite3.connect(backup_dir / "catalog.db")
    with db:
        db.execute("UPDATE events SET actor = 'mallory' WHERE seq = 2")
    db.close()
    code, doc = check(env, "--no-notify")
    assert code == 2
    assert statuses(doc)["catalog"] == "CRITICAL"
    catalog = next(c for c in doc["checks"] if c["name"] == "catalog")
    assert "event seq 2" in catalog["message"] and "content was edited" in catalog["message"]
    assert doc["summary"].startswith("DUMPLEDGER CRITICAL - catalog: hash chain broken")


def test_unwritable_store_is_critical(tmp_path: Path, supabase_db: Any) -> None:
    backup_dir = scripted(tmp_path, supabase_db.cluster, timedelta(minutes=5))
    store = tmp_path / "not-a-dir"
    store.write_text("a file where the store should be")
    configure(backup_dir, store={"path": str(store)})
    env = check_env(supabase_db.cluster, backup_dir)
    code, doc = check(env, "--no-notify")
    assert code == 2
    assert statuses(doc)["store"] == "CRITICAL"
    assert "is not writable" in next(c for c in doc["checks"] if c["name"] == "store")["message"]


def test_metrics_refuses_a_textfile_node_exporter_would_ignore(tmp_path: Path) -> None:
    env = {**os.environ, "DUMPLEDGER_BACKUP_DIR": str(tmp_path / "backups")}
    done = run(env, "metrics", "--textfile", str(tmp_path / "metrics.txt"), check=False)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "*.prom" in done.stderr


def test_broken_config_or_catalog_still_gives_a_nagios_line(tmp_path: Path) -> None:
    backup_dir = tmp_path / "backups"
    configure(backup_dir, health={"rpo_hours": -1})
    env = {**os.environ, "DUMPLEDGER_BACKUP_DIR": str(backup_dir)}
    code, doc = check(env)
    assert code == 2
    assert doc["summary"].startswith("DUMPLEDGER CRITICAL - configuration: backup-config.json")
    assert statuses(doc) == {"configuration": "CRITICAL"}

    configure(backup_dir)
    env.update(DUMPLEDGER_CATALOG_URL="mysql://nowhere/x", SUPABASE_DB_PORT=str(free_port()))
    env["SUPABASE_DB_HOST"] = "127.0.0.1"
    code, doc = check(env, "--no-notify")
    assert code == 2
    assert statuses(doc)["catalog"] == "CRITICAL"
    assert "last backup" not in statuses(doc)  # nothing to read it from


def test_check_of_a_directory_without_backups_creates_nothing(tmp_path: Path) -> None:
    backup_dir = tmp_path / "typo" / "backups"
    env = {**os.environ, "DUMPLEDGER_BACKUP_DIR": str(backup_dir)}
    env.update(SUPABASE_DB_HOST="127.0.0.1", SUPABASE_DB_PORT=str(free_port()))
    code, doc = check(env, "--no-notify")
    assert code == 2
    found = statuses(doc)
    assert (found["catalog"], found["store"]) == ("CRITICAL", "CRITICAL")
    message = {c["name"]: c["message"] for c in doc["checks"]}["catalog"]
    assert message.startswith(f"no catalog at {backup_dir / 'catalog.db'}")
    assert not (tmp_path / "typo").exists()  # a monitoring probe made no directory


def test_scratch_databases_of_interrupted_restores_are_reported(
    tmp_path: Path, supabase_db: Any
) -> None:
    """A killed restore or drill leaves a full copy of a database behind: check warns, and
    the next restore's plan says how to drop it; nothing is dropped for the user."""
    cluster = supabase_db.cluster
    backup_dir = scripted(tmp_path, cluster, timedelta(minutes=5))
    env = check_env(cluster, backup_dir)
    env["SUPABASE_DB_USER"] = cluster.superuser
    leftover = "postgres_dlrestore_0badc0"
    cluster.psql(f'CREATE DATABASE "{leftover}"')
    try:
        code, doc = check(env, "--no-notify")
        assert (code, statuses(doc)["database"]) == (1, "WARNING")
        message = next(c for c in doc["checks"] if c["name"] == "database")["message"]
        assert f'DROP DATABASE "{leftover}";' in message
        name = json.loads(run(env, "list", "--json").stdout)[0]["name"]
        plan = json.loads(run(env, "restore", name, "--plan", "--json").stdout)
        assert any(leftover in w for w in plan["warnings"])
        assert leftover in cluster.psql("SELECT datname FROM pg_database")  # still there
    finally:
        cluster.psql(f'DROP DATABASE IF EXISTS "{leftover}"')
    code, doc = check(env, "--no-notify")
    assert statuses(doc)["database"] == "OK"


def test_a_schedule_this_host_will_not_run_is_a_warning(tmp_path: Path, supabase_db: Any) -> None:
    """The catalog says installed; the scheduler decides. Stopped timers, or units removed by
    hand, are said by `check` (before the RPO is missed)."""
    backup_dir = scripted(tmp_path, supabase_db.cluster, timedelta(minutes=5))
    env = check_env(supabase_db.cluster, backup_dir)
    code, doc = check(env, "--no-notify")
    assert (code, statuses(doc)["schedule"]) == (0, "OK")
    message = {c["name"]: c["message"] for c in doc["checks"]}
    assert message["schedule"] == "installed (systemd, 4 slot(s)), active"

    code, doc = check({**env, "FAKE_SYSTEMCTL_INACTIVE": "1"}, "--no-notify")
    assert code == 1
    assert {k: v for k, v in statuses(doc).items() if v != "OK"} == {"schedule": "WARNING"}
    assert "installed (systemd, 4 slot(s)), but not active: dumpledger-" in doc["summary"]

    for unit in (Path(env["XDG_CONFIG_HOME"]) / "systemd" / "user").glob("dumpledger-*"):
        unit.unlink()
    code, doc = check(env, "--no-notify")
    assert code == 1
    message = {c["name"]: c["message"] for c in doc["checks"]}
    assert "none of its systemd units is on this host" in message["schedule"]

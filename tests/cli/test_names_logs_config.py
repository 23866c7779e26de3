"""Smaller honest-failure cases: the catalog URL's password in `config show`, a run log planted
as a symbolic link, backup names that would collide with the latest_* links, a config file that
is not UTF-8, and `verify --all` with nothing completed."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pgtools.cluster import free_port
from tests.support import cluster_env
from tests.support import run_cli as run

SECRET = "catalog-Pa55-w0rd"


def test_config_show_masks_the_password_in_the_catalog_url(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DUMPLEDGER_BACKUP_DIR": str(tmp_path / "backups"),
        "DUMPLEDGER_CATALOG_URL": f"postgresql://dl:{SECRET}@db.example.com:5432/catalog",
    }
    text = run(env, "config", "show")
    rows = {r["setting"]: r for r in json.loads(run(env, "config", "show", "--json").stdout)}
    assert SECRET not in text.stdout + text.stderr
    assert SECRET not in json.dumps(rows)
    assert rows["catalog_url"]["value"] == "postgresql://dl:********@db.example.com:5432/catalog"
    assert rows["catalog_url"]["source"] == "environment (DUMPLEDGER_CATALOG_URL)"


def test_a_run_log_planted_as_a_link_is_never_written_through(
    tmp_path: Path, supabase_db: Any
) -> None:
    backup_dir = tmp_path / "backups"
    logs = backup_dir / "logs"
    logs.mkdir(parents=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    now = datetime.now().astimezone()
    for s in range(-5, 180):  # every name a backup of the next three minutes would use
        stamp = (now + timedelta(seconds=s)).strftime("%Y%m%d_%H%M%S")
        (logs / f"backup_{stamp}.log").symlink_to(victim)
    env = cluster_env(supabase_db.cluster, backup_dir)
    out = json.loads(run(env, "backup", "--type", "nightly", "--json").stdout)
    assert victim.read_text() == "precious\n"
    log = Path(out["log"])
    assert not log.is_symlink() and log.name.endswith("_2.log")
    assert "completed in" in log.read_text()
    assert log.stat().st_mode & 0o777 == 0o600


def test_a_restrict_key_that_is_not_one_fails_the_backup_in_one_line(
    tmp_path: Path, supabase_db: Any
) -> None:
    """The key goes into pg_dump's argv and every plain dump: a planted link or a line that is
    not a key is refused, never followed or passed on."""
    backup_dir = tmp_path / "backups"
    backup_dir.mkdir()
    env = cluster_env(supabase_db.cluster, backup_dir)
    (backup_dir / ".restrict-key").write_text("k; \\! touch /tmp/owned\n")
    done = run(env, "backup", "--type", "nightly", check=False)
    assert done.returncode == 1 and ".restrict-key does not hold a restrict key" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    (backup_dir / ".restrict-key").unlink()
    (backup_dir / ".restrict-key").symlink_to(tmp_path / "elsewhere")
    done = run(env, "backup", "--type", "nightly", check=False)
    assert done.returncode == 1 and ".restrict-key" in done.stderr
    assert not (tmp_path / "elsewhere").exists()
    (backup_dir / ".restrict-key").unlink()
    run(env, "backup", "--type", "nightly")  # a new key is written, and the backup completes
    assert len((backup_dir / ".restrict-key").read_text().strip()) == 48


def test_names_of_the_latest_links_are_refused_and_other_links_left_alone(
    tmp_path: Path, supabase_db: Any
) -> None:
    backup_dir = tmp_path / "backups"
    database = backup_dir / "database"
    database.mkdir(parents=True)
    # a link an earlier version made for a backup named latest_release_...
    kept = database / "latest_release_20261124_120000_full.sql.gz"
    kept.symlink_to(tmp_path / "somewhere.sql.gz")
    env = cluster_env(supabase_db.cluster, backup_dir)
    done = run(env, "backup", "latest_release", check=False)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "names starting with 'latest_' are reserved" in done.stderr
    name = json.loads(run(env, "backup", "latest-fix", "--json").stdout)["name"]
    assert name.startswith("latest-fix_")
    assert kept.is_symlink()  # only latest_full.* and latest_auto.* are this code's links
    newest = database / f"{name}_full.sql.gz"
    assert newest.is_file() and not newest.is_symlink()  # the newest backup's: a real file
    assert (database / "latest_full.sql.gz").samefile(newest)


def test_a_config_file_that_is_not_utf8_is_one_line_and_exit_2(tmp_path: Path) -> None:
    backup_dir = tmp_path / "backups"
    backup_dir.mkdir()
    (backup_dir / "backup-config.json").write_bytes(b'{"health": {"rpo_hours": 6}, "x": "\xff"}')
    env = {**os.environ, "DUMPLEDGER_BACKUP_DIR": str(backup_dir)}
    for args in (("list",), ("config", "show"), ("config", "validate"), ("backup",)):
        done = run(env, *args, check=False)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
        assert "backup-config.json is not UTF-8 text (byte 0xff at offset 35)" in done.stderr


def test_verify_all_with_only_failed_backups_says_there_is_nothing_completed(
    tmp_path: Path, supabase_db: Any
) -> None:
    env = cluster_env(supabase_db.cluster, tmp_path / "backups")
    down = {**env, "SUPABASE_DB_HOST": "127.0.0.1", "SUPABASE_DB_PORT": str(free_port())}
    assert run(down, "backup", check=False).returncode == 1
    done = run(env, "verify", "--all", check=False)
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert "there is no completed backup to verify" in done.stderr
    assert "pass --all" not in done.stderr

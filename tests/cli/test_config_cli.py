"""`config init|show|validate`, the precedence of each layer, and refusal on a broken config."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from usecases.config.settings import load_settings

DUMPLEDGER = [sys.executable, "-m", "cli"]
SECRET = "s3cr3t-Pa55word"


def clean_env(**extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH")}
    return {**keep, **extra}


def run(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DUMPLEDGER, *args],
        cwd=cwd,
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def write_config(root: Path, doc: dict[str, Any]) -> None:
    (root / "backups").mkdir(exist_ok=True)
    (root / "backups" / "backup-config.json").write_text(json.dumps(doc))


def shown(cwd: Path, env: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    done = run(cwd, "config", "show", "--json", env=env)
    assert done.returncode == 0, done.stderr
    return {row["setting"]: row for row in json.loads(done.stdout)}


def test_default_layer(tmp_path: Path) -> None:
    rows = shown(tmp_path)
    assert rows["database.host"] == {
        "setting": "database.host",
        "value": "127.0.0.1",
        "source": "default",
    }
    assert rows["health.rpo_hours"]["value"] == 6.0
    assert rows["schedule.nightly"]["value"] == "23:59"


def test_file_beats_default(tmp_path: Path) -> None:
    write_config(tmp_path, {"database": {"port": 6543}, "health": {"rpo_hours": 12}})
    rows = shown(tmp_path)
    assert rows["database.port"]["value"] == 6543
    assert rows["database.port"]["source"] == "backup-config.json"
    assert rows["health.rpo_hours"]["value"] == 12.0
    assert rows["database.host"]["source"] == "default"


def test_dotenv_beats_file(tmp_path: Path) -> None:
    write_config(tmp_path, {"database": {"host": "file-host"}})
    (tmp_path / ".env").write_text("SUPABASE_DB_HOST=dotenv-host\nDUMPLEDGER_HEALTH__RPO_HOURS=3\n")
    rows = shown(tmp_path)
    assert rows["database.host"]["value"] == "dotenv-host"
    assert rows["database.host"]["source"] == ".env (SUPABASE_DB_HOST)"
    assert rows["health.rpo_hours"] == {
        "setting": "health.rpo_hours",
        "value": 3.0,
        "source": ".env (DUMPLEDGER_HEALTH__RPO_HOURS)",
    }


def test_environment_beats_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SUPABASE_DB_HOST=dotenv-host\n")
    rows = shown(tmp_path, clean_env(SUPABASE_DB_HOST="env-host", DUMPLEDGER_CODEC="zstd"))
    assert rows["database.host"]["value"] == "env-host"
    assert rows["database.host"]["source"] == "environment (SUPABASE_DB_HOST)"
    assert rows["compression.codec"]["value"] == "zstd"


def test_flag_beats_environment(tmp_path: Path) -> None:
    env = {"DUMPLEDGER_CODEC": "zstd", "DUMPLEDGER_BACKUP_DIR": str(tmp_path / "from-env")}
    flagged = load_settings(
        environ=env, cwd=tmp_path, backup_dir=tmp_path / "from-flag", overrides={"codec": "gzip"}
    )
    assert flagged.codec == "gzip" and flagged.backup_dir == tmp_path / "from-flag"
    assert load_settings(environ=env, cwd=tmp_path).backup_dir == tmp_path / "from-env"
    rows = shown(tmp_path, clean_env(DUMPLEDGER_BACKUP_DIR=str(tmp_path / "from-env")))
    assert rows["backup_dir"]["value"] == str(tmp_path / "from-env")
    done = run(tmp_path, "--backup-dir", str(tmp_path / "flag"), "config", "show", "--json")
    assert json.loads(done.stdout)[0]["value"] == str(tmp_path / "flag")


@pytest.mark.parametrize(
    ("doc", "field", "value"),
    [
        ({"database": {"port": "five"}}, "database.port", "'five'"),
        ({"database": {"port": 70000}}, "database.port", "70000"),
        ({"database": {"user": 5}}, "database.user", "5"),
        ({"compression": {"codec": "brotli"}}, "compression.codec", "'brotli'"),
        ({"compression": {"level": 99}}, "compression.level", "99"),
        ({"compression": {"threads": "many"}}, "compression.threads", "'many'"),
        ({"health": {"rpo_hours": "soon"}}, "health.rpo_hours", "'soon'"),
        ({"health": {"size_drop_ratio": 2}}, "health.size_drop_ratio", "2"),
        ({"notifications": {"desktop": "maybe"}}, "notifications.desktop", "'maybe'"),
        ({"notifications": {"apprise_urls": "json://x"}}, "notifications.apprise_urls", "json"),
        ({"schedule": {"morning": "25:00"}}, "schedule", "25:00"),
        ({"offsite": {"drive": {"path": "/x"}}}, "offsite.drive.url", "Field required"),
        ({"encryption": {"recipients": ["ssh-rsa AAAA"]}}, "encryption.recipients", "age1"),
        ({"databse": {"host": "x"}}, "databse", "unknown setting"),
        ({"catalog_url": 42}, "catalog_url", "42"),
        ({"retention": {"auto": {"keep_within_days": -1}}}, "retention", "keep_within_days"),
    ],
)
def test_invalid_field_exits_2_and_names_it(
    tmp_path: Path, doc: dict[str, Any], field: str, value: str
) -> None:
    write_config(tmp_path, doc)
    done = run(tmp_path, "config", "validate")
    assert done.returncode == 2
    assert f"{field}" in done.stderr and value in done.stderr, done.stderr
    assert "backup-config.json" in done.stderr
    as_json = json.loads(run(tmp_path, "config", "validate", "--json").stdout)
    assert as_json["valid"] is False and any(field in e for e in as_json["errors"])
    # every command refuses to run on it, with the same message on one line
    listed = run(tmp_path, "list")
    assert listed.returncode == 2 and listed.stderr.count("\n") == 1
    assert field in listed.stderr and "config validate" in listed.stderr
    assert not (tmp_path / "backups" / "catalog.db").exists()


def test_invalid_environment_value_is_named_with_its_variable(tmp_path: Path) -> None:
    done = run(tmp_path, "config", "validate", env=clean_env(SUPABASE_DB_PORT="abc"))
    assert done.returncode == 2
    assert "environment (SUPABASE_DB_PORT): database.port" in done.stderr


def test_show_masks_the_password(tmp_path: Path) -> None:
    write_config(tmp_path, {"database": {"password": SECRET + "-file"}})
    done = run(tmp_path, "config", "show", env=clean_env(SUPABASE_DB_PASSWORD=SECRET))
    assert done.returncode == 0
    assert SECRET not in done.stdout + done.stderr
    assert "********" in done.stdout and "environment (SUPABASE_DB_PASSWORD)" in done.stdout
    assert SECRET not in run(tmp_path, "config", "show", "--json").stdout
    # a password in the file works but is warned about
    warned = run(tmp_path, "list")
    assert "holds the database password" in warned.stderr and SECRET not in warned.stderr


def test_init_writes_a_valid_commented_file_and_refuses_to_overwrite(tmp_path: Path) -> None:
    assert run(tmp_path, "config", "init").returncode == 0
    path = tmp_path / "backups" / "backup-config.json"
    doc = json.loads(path.read_text())
    assert "//" in doc and "//" in doc["database"] and "password" not in doc["database"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert run(tmp_path, "config", "validate").returncode == 0
    from_file = load_settings(environ={}, cwd=tmp_path)
    defaults = load_settings(environ={}, cwd=tmp_path / "elsewhere")
    assert from_file == replace(defaults, backup_dir=from_file.backup_dir)
    again = run(tmp_path, "config", "init")
    assert again.returncode == 2 and "--force" in again.stderr
    path.write_text('{"database": {"port": 1}}')
    assert run(tmp_path, "config", "init", "--force").returncode == 0
    assert json.loads(path.read_text())["database"]["port"] == 5432

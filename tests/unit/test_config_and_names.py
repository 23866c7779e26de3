"""Settings precedence, .env parsing, bad config; backup names."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from usecases.backup.names import classify, infer_type, make_name, validate_name
from usecases.config.settings import load_settings
from usecases.errors import BadInput

NOW = datetime(2026, 11, 24, 6, 0, 5)


def test_defaults_are_supabase_local(tmp_path: Path) -> None:
    s = load_settings(environ={}, cwd=tmp_path)
    d = s.database
    assert (d.host, d.port, d.user, d.dbname, d.password) == (
        "127.0.0.1",
        5432,
        "postgres",
        "postgres",
        "postgres",
    )
    assert s.backup_dir == tmp_path / "backups" and s.codec == "gzip"
    assert s.effective_catalog_url() == f"sqlite:///{tmp_path / 'backups' / 'catalog.db'}"


def test_precedence_file_then_dotenv_then_environment(tmp_path: Path) -> None:
    (tmp_path / "backups").mkdir()
    (tmp_path / "backups" / "backup-config.json").write_text(
        json.dumps(
            {
                "database": {"host": "file-host", "port": 6000, "name": "filedb"},
                "compression": {"codec": "zstd", "level": 7},
            }
        )
    )
    (tmp_path / ".env").write_text(
        "# comment\nexport SUPABASE_DB_HOST=dotenv-host\nSUPABASE_DB_PASSWORD='from env file'\n"
    )
    s = load_settings(environ={"SUPABASE_DB_HOST": "env-host"}, cwd=tmp_path)
    assert s.database.host == "env-host"  # environment beats .env beats the file
    assert s.database.port == 6000 and s.database.dbname == "filedb"
    assert s.database.password == "from env file"
    assert (s.codec, s.level) == ("zstd", 7)
    flagged = load_settings(environ={}, cwd=tmp_path, overrides={"codec": "gzip"})
    assert flagged.codec == "gzip"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"database": {"port": "five"}}', r"database\.port: .*integer.*'five'"),
        ('{"compression": {"codec": "brotli"}}', r"compression\.codec: .*'zstd'.*'brotli'"),
        ('{"database": []}', r"database: .*dictionary"),
    ],
)
def test_broken_config_names_the_field(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "backups").mkdir()
    (tmp_path / "backups" / "backup-config.json").write_text(content)
    with pytest.raises(BadInput, match=message):
        load_settings(environ={}, cwd=tmp_path)


def test_broken_dotenv_line_is_named(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SUPABASE_DB_HOST=ok\nthis line is wrong\n")
    with pytest.raises(BadInput, match=r"\.env:2"):
        load_settings(environ={}, cwd=tmp_path)


@pytest.mark.parametrize(
    ("name", "btype", "expected"),
    [
        (None, "morning", "auto_morning_20261124_060005"),
        (None, "nightly", "auto_nightly_20261124_060005"),
        (None, "manual", "backup_20261124_060005"),
        ("release-2", "manual", "release-2_20261124_060005"),
        ("emergency-db-fix", "emergency", "emergency-db-fix"),
        (None, "emergency", "emergency-backup_20261124_060005"),
        ("restore", "pre", "pre-restore_20261124_060005"),
        ("pre-", "pre", "pre-backup_20261124_060005"),
        ("emergency-", "emergency", "emergency-backup_20261124_060005"),
    ],
)
def test_names_as_the_old_scripts_made_them(name: str | None, btype: str, expected: str) -> None:
    assert make_name(name, btype, NOW) == expected


def test_types_and_classes() -> None:
    assert infer_type("emergency-x", None) == "emergency"
    assert infer_type("pre-upgrade", None) == "pre"
    assert infer_type("anything", None) == "manual"
    assert classify("auto_noon_20261124_120000") == "auto"
    with pytest.raises(BadInput, match="unknown backup type"):
        infer_type(None, "hourly")
    with pytest.raises(BadInput, match="named automatically"):
        make_name("x", "nightly", NOW)


@pytest.mark.parametrize("bad", ["../x", "a/b", "..", ".x", "a b", "a\nb", "x" * 129, "é"])
def test_unsafe_names(bad: str) -> None:
    with pytest.raises(BadInput, match="unsafe backup name"):
        validate_name(bad)

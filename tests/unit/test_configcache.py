"""The cache of configurations pydantic accepted: same settings as validating, never a secret,
never stale, never in the way."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from usecases.config import settings as config
from usecases.config.settings import Settings, load_settings
from usecases.errors import BadInput

PASSWORD = "cache-s3cret-pw"
HOOK = "json://hooks.example/T0K3N-in-url"
CATALOG = "postgresql://team:catalog-pw@db.example/ledger"


def write_config(backup_dir: Path, **changes: object) -> None:
    doc: dict[str, object] = {
        "database": {"host": "db.internal", "port": 6543, "include_role_passwords": True},
        "compression": {"codec": "zstd", "level": 7, "threads": 3},
        "store": {"path": "blobs"},
        "catalog_url": CATALOG,
        "schedule": {"morning": "05:30", "nightly": "23:00"},
        "retention": {"auto": {"keep_within_days": 20, "keep_daily": 7}, "min_verified": 2},
        "notifications": {"on_success": False, "apprise_urls": [HOOK]},
        "health": {"rpo_hours": 4, "min_free_bytes": 5},
        "offsite": {"drive": {"url": "/mnt/drive/dl"}},
        "encryption": {"identity_file": "keys/age.key"},
        **changes,
    }
    backup_dir.mkdir(parents=True, exist_ok=True)
    (backup_dir / "backup-config.json").write_text(json.dumps(doc))


def env_for(backup_dir: Path, cache: Path | None, **extra: str) -> dict[str, str]:
    env = {
        "DUMPLEDGER_BACKUP_DIR": str(backup_dir),
        "SUPABASE_DB_PASSWORD": PASSWORD,
        "DUMPLEDGER_HEALTH__VERIFY_MAX_AGE_DAYS": "3",
        **extra,
    }
    if cache is not None:
        env["DUMPLEDGER_CACHE_DIR"] = str(cache)
    return env


def load(backup_dir: Path, cache: Path | None, **extra: str) -> Settings:
    return load_settings(environ=env_for(backup_dir, cache, **extra), cwd=backup_dir.parent)


def no_pydantic(monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on, validating with pydantic fails the test: only the cache may answer."""

    def refuse(sources: config.Sources) -> None:
        raise AssertionError("validated with pydantic although the cache holds this input")

    monkeypatch.setattr(config, "validate", refuse)


def test_a_cached_configuration_gives_the_validated_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backup_dir, cache = tmp_path / "backups", tmp_path / "cache"
    write_config(backup_dir)
    validated = load(backup_dir, None)
    assert not cache.exists()
    first = load(backup_dir, cache)  # a miss: validated, then remembered
    assert (cache / "settings.json").stat().st_mode & 0o777 == 0o600
    assert cache.stat().st_mode & 0o777 == 0o700
    no_pydantic(monkeypatch)
    second = load(backup_dir, cache)
    assert first == validated == second
    assert second.database.password == PASSWORD and second.database.port == 6543
    assert second.notifications.apprise_urls == (HOOK,)
    assert second.catalog_url == CATALOG
    assert second.store_path == backup_dir / "blobs"
    assert second.health.verify_max_age_days == 3.0 and second.health.rpo_hours == 4.0


def test_the_cache_holds_no_secret_not_even_hashed(tmp_path: Path) -> None:
    backup_dir, cache = tmp_path / "backups", tmp_path / "cache"
    write_config(backup_dir)
    load(backup_dir, cache)
    text = (cache / "settings.json").read_text()
    assert "db.internal" in text  # it did record the document
    for secret in (PASSWORD, HOOK, CATALOG, "catalog-pw", "T0K3N"):
        assert secret not in text
    # Another password gives the same key: nothing in the file depends on its value.
    load(backup_dir, cache, SUPABASE_DB_PASSWORD="another-one")
    assert len(json.loads((cache / "settings.json").read_text())["entries"]) == 1


def test_a_changed_secret_comes_from_the_layers_not_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backup_dir, cache = tmp_path / "backups", tmp_path / "cache"
    write_config(backup_dir)
    load(backup_dir, cache)
    no_pydantic(monkeypatch)
    changed = load(
        backup_dir,
        cache,
        SUPABASE_DB_PASSWORD="rotated",
        DUMPLEDGER_CATALOG_URL="sqlite:////elsewhere/catalog.db",
    )
    assert changed.database.password == "rotated"
    assert changed.catalog_url == "sqlite:////elsewhere/catalog.db"


def test_any_other_change_is_validated_again(tmp_path: Path) -> None:
    backup_dir, cache = tmp_path / "backups", tmp_path / "cache"
    write_config(backup_dir)
    assert load(backup_dir, cache).database.port == 6543
    write_config(backup_dir, database={"port": 70000})
    with pytest.raises(BadInput, match=r"database\.port.*70000"):
        load(backup_dir, cache)
    with pytest.raises(BadInput, match=r"health\.rpo_hours"):
        write_config(backup_dir)
        load(backup_dir, cache, DUMPLEDGER_HEALTH__RPO_HOURS="-1")
    # A password of the wrong type is another shape, hence another key: pydantic names it.
    only_file = {"DUMPLEDGER_CACHE_DIR": str(cache), "DUMPLEDGER_BACKUP_DIR": str(backup_dir)}
    write_config(backup_dir, database={"password": "in-the-file"})
    assert load_settings(environ=only_file, cwd=tmp_path).database.password == "in-the-file"
    write_config(backup_dir, database={"password": 1234})
    with pytest.raises(BadInput, match=r"database\.password"):
        load_settings(environ=only_file, cwd=tmp_path)


def test_a_damaged_or_unwritable_cache_is_only_a_miss(tmp_path: Path) -> None:
    backup_dir, cache = tmp_path / "backups", tmp_path / "cache"
    write_config(backup_dir)
    expected = load(backup_dir, None)
    cache.mkdir()
    for damage in ("{not json", '{"format": 1, "entries": []}', "[]", '{"format": 99}'):
        (cache / "settings.json").write_text(damage)
        assert load(backup_dir, cache) == expected
        assert json.loads((cache / "settings.json").read_text())["format"] == 1
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    assert load(backup_dir, blocked) == expected
    assert blocked.read_text() == "not a directory"


def test_the_cache_keeps_a_few_configurations(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    for i in range(12):
        backup_dir = tmp_path / f"b{i}"
        write_config(backup_dir, database={"port": 1000 + i})
        load(backup_dir, cache)
    entries = json.loads((cache / "settings.json").read_text())["entries"]
    assert len(entries) == 8
    assert [e["database"]["port"] for e in entries.values()] == list(range(1004, 1012))


def test_without_the_schema_source_there_is_no_cache_but_still_validation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An install that ships no .py files (frozen): the key cannot be made, so no cache."""
    from usecases.config import cache as configcache

    backup_dir, cache = tmp_path / "backups", tmp_path / "cache"
    write_config(backup_dir)
    monkeypatch.setattr(configcache, "SCHEMA_SOURCES", ("no-such-file.py",))
    assert load(backup_dir, cache) == load(backup_dir, None)
    assert not cache.exists()
    write_config(backup_dir, database={"port": 0})
    with pytest.raises(BadInput, match=r"database\.port"):
        load(backup_dir, cache)


def test_processes_filling_the_cache_at_once_all_run_and_leave_it_whole(tmp_path: Path) -> None:
    """Eight real processes with eight configurations write the cache at the same moment: each
    writes its own temp file and renames it, so the file is always one of them, whole."""
    import os
    import subprocess
    import sys

    cache = tmp_path / "cache"
    probe = (
        "from usecases.config.settings import load_settings\n"
        "print(load_settings().health.rpo_hours)\n"
    )
    procs = []
    for i in range(8):
        env = {
            **os.environ,
            "DUMPLEDGER_BACKUP_DIR": str(tmp_path / "backups"),
            "DUMPLEDGER_CACHE_DIR": str(cache),
            "DUMPLEDGER_HEALTH__RPO_HOURS": str(i + 1),
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", probe],
                env=env,
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0] * 8
    assert outs == [f"{float(i + 1)}" for i in range(8)]
    entries = json.loads((cache / "settings.json").read_text())["entries"]
    assert 1 <= len(entries) <= 8
    assert {e["health"]["rpo_hours"] for e in entries.values()} <= {float(i + 1) for i in range(8)}
    assert not [p for p in cache.iterdir() if p.name != "settings.json"]  # no temp file left

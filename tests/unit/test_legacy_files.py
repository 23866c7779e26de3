"""Reading the old scripts' files: grouping by name, times, types, tolerant metadata, scrubbing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from usecases.backup.legacy_files import (
    legacy_type,
    name_time,
    parse_time,
    read_metadata,
    scan,
    scrub,
)
from usecases.errors import BadInput

BERLIN = ZoneInfo("Europe/Berlin")


def test_files_are_grouped_by_backup_name(tmp_path: Path) -> None:
    for name in (
        "auto_noon_20251115_120000_full.sql.gz",
        "auto_noon_20251115_120000_metadata.json",
        "backup_20251116_101500_full.sql",
        "backup_20251116_101500_schema.sql.gz",
        "backup_20251116_101500_data.sql.gz",
        "backup_20251116_101500_roles.sql.gz",
        "backup_20251116_101500.dump",
        "twice_20251116_000000_full.sql",
        "twice_20251116_000000_full.sql.gz",
        "only_20251116_000000_metadata.json",
        "notes.txt",
    ):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "latest_full.sql.gz").symlink_to("backup_20251116_101500_full.sql")
    groups, ignored = scan(tmp_path)
    by_name = {g.name: g for g in groups}
    assert sorted(by_name) == [
        "auto_noon_20251115_120000",
        "backup_20251116_101500",
        "only_20251116_000000",
        "twice_20251116_000000",
    ]
    manual = by_name["backup_20251116_101500"]
    assert {k: f.format for k, f in manual.files.items()} == {
        "full": "plain",
        "schema": "gzip",
        "data": "gzip",
        "globals": "gzip",
        "custom": "custom",
    }
    assert manual.problems == [] and manual.metadata_path is None
    assert by_name["auto_noon_20251115_120000"].metadata_path is not None
    assert "two full dumps" in by_name["twice_20251116_000000"].problems[0]
    assert "no full dump" in by_name["only_20251116_000000"].problems[0]
    assert sorted(i.path.name for i in ignored) == ["latest_full.sql.gz", "notes.txt"]


def test_scan_refuses_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="not a directory"):
        scan(tmp_path / "missing")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-11-15T06:00:00+01:00", datetime(2025, 11, 15, 5, 0, tzinfo=UTC)),
        ("2025-11-15T06:00:00Z", datetime(2025, 11, 15, 6, 0, tzinfo=UTC)),
        ("2025-11-15 06:00:00", datetime(2025, 11, 15, 5, 0, tzinfo=UTC)),  # Berlin, winter
        ("2025-07-15 06:00:00", datetime(2025, 7, 15, 4, 0, tzinfo=UTC)),  # Berlin, summer
        ("20251115_060000", datetime(2025, 11, 15, 5, 0, tzinfo=UTC)),
        (1763182800, datetime(2025, 11, 15, 5, 0, tzinfo=UTC)),
        ("yesterday", None),
        (None, None),
        (True, None),
        ("20251399_990000", None),
    ],
)
def test_times_are_read_in_the_given_zone(value: object, expected: datetime | None) -> None:
    assert parse_time(value, BERLIN) == expected


def test_the_time_in_a_name_is_the_last_stamp() -> None:
    assert name_time("release_20250101_000000_20251115_060000", UTC) == datetime(
        2025, 11, 15, 6, 0, tzinfo=UTC
    )
    assert name_time("emergency-before-fix", UTC) is None


@pytest.mark.parametrize(
    ("name", "meta_type", "expected"),
    [
        ("auto_morning_20251115_060000", None, "morning"),
        ("auto_nightly_20251115_235900", "manual", "nightly"),
        ("auto_weekly_20251115_060000", "evening", "evening"),
        ("auto_weekly_20251115_060000", "weekly", "manual"),
        ("emergency-fix_20251117_030000", None, "emergency"),
        ("pre-restore_20251117_030000", None, "pre"),
        ("backup_20251116_101500", "nightly", "manual"),
    ],
)
def test_the_type_comes_from_the_name(name: str, meta_type: str | None, expected: str) -> None:
    assert legacy_type(name, meta_type) == expected


def test_metadata_is_read_tolerantly_and_without_secrets(tmp_path: Path) -> None:
    path = tmp_path / "x_metadata.json"
    path.write_text(
        json.dumps(
            {
                "created_at": "2025-11-15 06:00:00",
                "git": {"commit": "abc123", "branch": "main"},
                "user": "carol",
                "verified": "yes",
                "database": "postgres",
                "row_counts": {"public.todos": 3, "bad": "many"},
                "PGPASSWORD": "s3cret",
                "url": "postgres://u:s3cret@h/db",
                "extra": {"nested_token": "s3cret", "kept": 1},
            }
        )
    )
    meta = read_metadata(path, BERLIN)
    assert meta.started_at == datetime(2025, 11, 15, 5, 0, tzinfo=UTC)
    assert (meta.git_commit, meta.git_branch, meta.created_by) == ("abc123", "main", "carol")
    assert meta.verified is True and meta.database == {"name": "postgres"}
    assert meta.row_counts == {"public.todos": 3}
    assert "s3cret" not in json.dumps(meta.original)
    assert meta.original["extra"] == {"kept": 1}
    assert meta.original["url"] == "postgres://u:***@h/db"


def test_unreadable_metadata_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x_metadata.json"
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="no JSON object"):
        read_metadata(path, None)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not readable JSON"):
        read_metadata(path, None)


def test_scrub_leaves_other_values_alone() -> None:
    assert scrub({"a": [1, "x"], "b": None}) == {"a": [1, "x"], "b": None}

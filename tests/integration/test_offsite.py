"""Push and recover as use cases, on real files and a real SQLite catalog (no PostgreSQL
needed): target resolution, the refusals, and a target that lacks a blob."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from catalog.export import ExportBroken
from store.offsite import EXPORT_KEY, DirectoryTarget, OffsiteError, open_target
from tests.support import app_for, fabricate_backup
from usecases.config.sections import OffsiteTarget
from usecases.config.settings import Settings
from usecases.errors import BadInput, UseCaseError
from usecases.offsite.push import push, resolve_target
from usecases.offsite.recover import recover

ROWS = {"public.t": 1}


def settings(tmp_path: Path, *targets: OffsiteTarget, name: str = "backups") -> Settings:
    return Settings(backup_dir=tmp_path / name, offsite=targets)


def test_targets_by_name_by_url_or_the_only_one(tmp_path: Path) -> None:
    drive = OffsiteTarget(name="drive", url=str(tmp_path / "drive"))
    bucket = OffsiteTarget(name="bucket", url="s3://b/p", endpoint_url="http://127.0.0.1:1")
    one = settings(tmp_path, drive)
    assert resolve_target(one, None).name == "drive"
    both = settings(tmp_path, drive, bucket)
    assert resolve_target(both, "bucket").target.location == "s3://b/p"
    assert resolve_target(both, str(tmp_path / "drive")).name == "drive"  # its URL: its name
    adhoc = resolve_target(both, str(tmp_path / "elsewhere"))
    assert adhoc.name == str(tmp_path / "elsewhere") and isinstance(adhoc.target, DirectoryTarget)
    with pytest.raises(BadInput, match="several offsite targets"):
        resolve_target(both, None)
    with pytest.raises(BadInput, match="no offsite target 'usb'; configured: drive, bucket"):
        resolve_target(both, "usb")
    with pytest.raises(BadInput, match="no offsite target configured"):
        resolve_target(settings(tmp_path), None)
    with pytest.raises(OffsiteError, match="names no bucket"):
        open_target("s3:///prefix")


def test_without_boto3_an_s3_target_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # as if the s3 extra were not installed
    with pytest.raises(OffsiteError, match=r"pip install 'dumpledger\[s3\]'"):
        open_target("s3://bucket/prefix")


def test_recover_refuses_a_used_backup_dir_and_a_broken_export(tmp_path: Path) -> None:
    drive = tmp_path / "drive"
    with app_for(settings(tmp_path)) as app:
        fabricate_backup(app, "one_20261124_120000", b"SELECT 1;\n", row_counts=ROWS)
        push(app, str(drive))
    with pytest.raises(BadInput, match="is not empty"):
        recover(settings(tmp_path), str(drive))
    export = drive / EXPORT_KEY
    export.write_text(export.read_text().replace("one_20261124_120000", "two_20261124_120000"))
    new = settings(tmp_path, name="new")
    with pytest.raises(ExportBroken, match="was edited"):
        recover(new, str(drive))
    assert not new.backup_dir.exists()
    with pytest.raises(UseCaseError, match=r"holds no catalog/events\.jsonl"):
        recover(new, str(tmp_path / "empty-drive"))


def test_a_backup_whose_blob_the_target_lacks_is_reported_not_restorable(tmp_path: Path) -> None:
    drive = tmp_path / "drive"
    with app_for(settings(tmp_path)) as app:
        fabricate_backup(app, "one_20261124_120000", b"SELECT 1;\n", row_counts=ROWS)
        fabricate_backup(app, "two_20261124_130000", b"SELECT 2;\n", row_counts=ROWS)
        report = push(app, str(drive))
    assert report.backups == ["one_20261124_120000", "two_20261124_130000"]
    gone = next(drive.rglob("*.manifest"))  # one backup's only artifact
    gone.unlink()
    new = settings(tmp_path, name="new")
    done = recover(new, str(drive))
    assert done.blobs_fetched == 1 and len(done.incomplete) == 1
    assert done.newest_verified in done.backups and done.backups != done.incomplete
    views = sorted(p.name for p in (new.backup_dir / "database").iterdir())
    assert f"{done.backups[0]}_full.sql.gz" in views
    assert not [v for v in views if v.startswith(done.incomplete[0])]

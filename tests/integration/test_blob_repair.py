"""A damaged stored blob is replaced by the next identical dump (issue 15, item 3): before,
every later backup of the same content failed its read-back, for ever."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from catalog.queries import get_backup
from store import Codec
from tests.support import app_for, settings_for
from usecases.backup.run import BackupRequest, run_backup
from usecases.backup.verify import verify_one
from usecases.context import App


@pytest.fixture
def app(tmp_path: Path, supabase_db: Any) -> Iterator[App]:
    with app_for(settings_for(tmp_path, supabase_db.cluster)) as a:
        yield a


def _full(app: App, name: str) -> dict[str, Any]:
    return next(a for a in get_backup(app.catalog.engine, name)["artifacts"] if a["kind"] == "full")


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    else:
        middle = len(data) // 2
        path.write_bytes(data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :])


@pytest.mark.parametrize("how", ["flip", "truncate"])
def test_the_next_identical_backup_repairs_a_damaged_blob(app: App, how: str) -> None:
    old = run_backup(app, BackupRequest(name="old", all_formats=False)).name
    full = _full(app, old)
    path = app.store.path_for(full["digest"], Codec(full["codec"]))
    _damage(path, how)
    damaged = verify_one(app, old)
    assert not damaged.ok
    error = damaged.failures()[0]["error"]
    assert "dumpledger backup" in error and "dumpledger recover" in error  # how to repair

    new = run_backup(app, BackupRequest(name="new", all_formats=False))  # unchanged database
    new_full = next(a for a in new.artifacts if a["kind"] == "full")
    assert new_full["digest"] == full["digest"] and new_full["created"] is False
    repairs = app.catalog.events(types=["BlobRepaired"])
    assert [(e.subject, e.payload["backup"]) for e in repairs] == [(full["digest"], new.name)]
    assert repairs[0].payload["previous_sha256"] != repairs[0].payload["stored_sha256"]
    assert repairs[0].payload["stored_sha256"] == new_full["stored_sha256"]
    assert verify_one(app, old).ok
    assert _full(app, old)["stored_sha256"] == new_full["stored_sha256"]
    assert app.catalog.verify_chain().ok
    before = app.catalog.snapshot()
    app.catalog.rebuild()
    assert app.catalog.snapshot() == before  # the repair is a fold like any other event


def test_another_valid_copy_in_place_is_accepted_and_recorded(app: App) -> None:
    """A catalog sharing the store repaired a blob with other bytes (another compression level,
    another encryption): the content still hashes right, so verify passes and records it.
    Whole blobs: stores written before chunking, and encrypted artifacts, hold them."""
    import gzip

    from store import LocalStore

    app.store = LocalStore(app.settings.store_dir, chunked=False)
    old = run_backup(app, BackupRequest(name="old", all_formats=False)).name
    full = _full(app, old)
    path = app.store.path_for(full["digest"], Codec(full["codec"]))
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    path.write_bytes(gzip.compress(raw, compresslevel=1, mtime=0))
    assert verify_one(app, old).ok
    repaired = app.catalog.events(types=["BlobRepaired"])
    assert [e.payload["previous_sha256"] for e in repaired] == [full["stored_sha256"]]
    assert _full(app, old)["stored_size"] == path.stat().st_size
    assert get_backup(app.catalog.engine, old)["stored_size"] == sum(
        a["stored_size"] for a in get_backup(app.catalog.engine, old)["artifacts"]
    )
    # Verified again: the log (BlobRepaired folded in) agrees with the tables.
    again = verify_one(app, old)
    assert again.ok, again.problem

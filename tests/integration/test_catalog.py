"""The catalog on SQLite and PostgreSQL: hash chain, projections, rebuild, concurrent writers."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from catalog import Catalog
from catalog.events import (
    BackupCompleted,
    BackupDeleted,
    BackupFailed,
    BackupStarted,
    BackupVerified,
    BlobCollected,
)
from catalog.queries import blob_refs, blob_rows, blobs_freed_without, get_backup, list_backups
from catalog.read import BackupFilter
from tests.catalog_urls import postgres_url, sqlite_url

ACTOR = "tester@host via cli"


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return sqlite_url(tmp_path)
    return postgres_url(request.getfixturevalue("pg_cluster"))


class TickingClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def cat(catalog_url: str, frozen_now: datetime) -> Iterator[Catalog]:
    c = Catalog.open(catalog_url, clock=TickingClock(frozen_now))
    yield c
    c.close()


def started(name: str, btype: str = "manual") -> BackupStarted:
    return BackupStarted(
        backup=name,
        backup_type=btype,
        hostname="h",
        pid=1,
        database={"name": "postgres", "host": "127.0.0.1"},
        artifacts=["full"],
        codec="gzip",
    )


def completed(name: str, digest: str, commit: str = "abc123") -> BackupCompleted:
    art = {
        "kind": "full",
        "digest": digest,
        "codec": "gzip",
        "raw_size": 100,
        "stored_size": 40,
        "stored_sha256": "e" * 64,
        "created": True,
    }
    return BackupCompleted(
        backup=name,
        backup_type="manual",
        artifacts=[art],
        verified=True,
        duration_seconds=1.5,
        metadata={"git": {"commit": commit, "branch": "main"}},
    )


def history(cat: Catalog) -> None:
    cat.append_all([started("a"), completed("a", "1" * 64, "abc123")], actor=ACTOR)
    cat.append_all([started("b"), completed("b", "1" * 64, "def456")], actor=ACTOR)
    cat.append(started("c"), actor=ACTOR)
    cat.append(BackupFailed(backup="c", reason="server down", stage="dump"), actor=ACTOR)
    cat.append(BackupVerified(backup="a", ok=False, artifacts=[]), actor=ACTOR)
    cat.append_all([started("d"), completed("d", "2" * 64)], actor=ACTOR)
    cat.append(BackupDeleted(backup="d", reason="by tester"), actor=ACTOR)
    cat.append(BlobCollected(digest="2" * 64, codec="gzip"), actor=ACTOR)


def test_projections_follow_the_log(cat: Catalog) -> None:
    history(cat)
    a = get_backup(cat.engine, "a")
    assert (a["status"], a["verified"], a["last_verify_ok"]) == ("completed", True, False)
    assert a["git_commit"] == "abc123" and a["stored_size"] == 40
    assert get_backup(cat.engine, "c")["failure_reason"] == "server down"
    assert get_backup(cat.engine, "d")["status"] == "deleted"
    blobs = blob_rows(cat.engine)
    assert [(b["digest"][0], b["refcount"]) for b in blobs] == [("1", 2)]
    names = [b["name"] for b in list_backups(cat.engine)]
    assert names == ["c", "b", "a"]  # newest first, deleted hidden
    assert [b["name"] for b in list_backups(cat.engine, BackupFilter(commit_prefix="DEF"))] == ["b"]


def test_blobs_freed_are_only_those_nobody_else_references(cat: Catalog) -> None:
    history(cat)  # a and b share blob "1..."
    cat.append_all([started("e"), completed("e", "3" * 64)], actor=ACTOR)

    def freed(names: list[str]) -> set[str]:
        return {d[0] for d, codec in blobs_freed_without(cat.engine, names)}

    assert freed([]) == set()
    assert freed(["a"]) == set()  # b still needs the shared blob
    assert freed(["a", "b"]) == {"1"}
    assert freed(["a", "b", "e", "no-such"]) == {"1", "3"}
    assert freed(["e"]) == {"3"}  # and again: nothing left behind
    assert freed(["a", "a"]) == set()  # a name twice is still one backup
    assert freed(["b", "a", "b"]) == {"1"}
    many = [f"gone_{i:05d}" for i in range(20_000)]  # names bound as one parameter, not one each
    assert freed([*many, "e", "a"]) == {"3"}
    # Asked only about the blobs a store holds (the dry run of a cleanup).
    among = {"1" * 64, "9" * 64}
    assert {d[0] for d, _ in blobs_freed_without(cat.engine, ["a", "b", "e"], among=among)} == {"1"}
    assert blobs_freed_without(cat.engine, ["a", "b"], among=set()) == []
    assert [(d[0], n) for d, _, n in blob_refs(cat.engine, among=among)] == [("1", 2)]
    assert {d[0] for d, _, _ in blob_refs(cat.engine)} == {"1", "3"}


def test_rebuild_gives_identical_projections(cat: Catalog) -> None:
    history(cat)
    before = cat.snapshot()
    with cat.engine.begin() as conn:
        conn.execute(text("UPDATE backups SET status = 'tampered'"))
        conn.execute(text("DELETE FROM blobs"))
    assert cat.snapshot() != before
    cat.rebuild()
    assert cat.snapshot() == before


def test_chain_verifies_and_reopening_keeps_it(cat: Catalog, catalog_url: str) -> None:
    history(cat)
    report = cat.verify_chain()
    assert report.ok and report.events == 11
    again = Catalog.open(catalog_url)
    assert again.verify_chain().ok and again.count() == 11
    again.close()


@pytest.mark.parametrize(
    "tamper",
    [
        "UPDATE events SET payload = replace(payload, 'server down', 'all fine') WHERE seq = 6",
        "UPDATE events SET actor = 'mallory@host via cli' WHERE seq = 2",
        "DELETE FROM events WHERE seq = 3",
        "DELETE FROM events WHERE seq = 11",
        "UPDATE events SET seq = CASE seq WHEN 4 THEN 5 ELSE 4 END + 100 WHERE seq IN (4, 5)",
    ],
    ids=["edit-payload", "edit-actor", "delete-middle", "delete-last", "reorder"],
)
def test_catalog_verify_detects_tampering(cat: Catalog, tamper: str) -> None:
    history(cat)
    with cat.engine.begin() as conn:
        conn.execute(text(tamper))
        if "+ 100" in tamper:  # put the two swapped rows back at 4 and 5, swapped
            conn.execute(text("UPDATE events SET seq = seq - 100 WHERE seq > 100"))
    report = cat.verify_chain()
    assert not report.ok
    assert report.problems


WRITER = """
import sys
from catalog import Catalog
from catalog.events import BackupFailed
cat = Catalog.open(sys.argv[1])
for i in range(int(sys.argv[3])):
    cat.append(BackupFailed(backup=f"w{sys.argv[2]}-{i}", reason="x", stage="t"), actor="w")
cat.close()
"""


def test_eight_concurrent_writer_processes(catalog_url: str) -> None:
    per_writer = 25
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, catalog_url, str(w), str(per_writer)])
        for w in range(8)
    ]
    assert [p.wait(timeout=300) for p in procs] == [0] * 8
    cat = Catalog.open(catalog_url)
    events = cat.events()
    cat.close()
    subjects = [e.subject for e in events]
    assert len(subjects) == 8 * per_writer
    assert len(set(subjects)) == len(subjects)  # none lost, none duplicated
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    with Catalog.open(catalog_url) as again:
        assert again.verify_chain().ok


def test_sqlite_catalog_settings(tmp_path: Path) -> None:
    cat = Catalog.open(sqlite_url(tmp_path))
    with cat.engine.connect() as conn:
        mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
        fks = conn.exec_driver_sql("PRAGMA foreign_keys").scalar()
        sync = conn.exec_driver_sql("PRAGMA synchronous").scalar()
    cat.close()
    assert (mode, fks, sync) == ("wal", 1, 2)
    assert (tmp_path / "backups" / "catalog.db").stat().st_mode & 0o777 == 0o600


def test_unreachable_catalog_is_one_clear_error(tmp_path: Path) -> None:
    from catalog.errors import CatalogUnavailable

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CatalogUnavailable, match="cannot open the catalog"):
        Catalog.open(f"sqlite:///{blocker}/sub/catalog.db")


def test_timestamps_are_utc(cat: Catalog, frozen_now: datetime) -> None:
    rec = cat.append(started("z"), actor=ACTOR)
    assert rec.occurred_at.endswith("Z")
    assert datetime.fromisoformat(rec.occurred_at.replace("Z", "+00:00")) > frozen_now.astimezone(
        UTC
    )


def test_an_open_read_never_blocks_a_writer(catalog_url: str, frozen_now: datetime) -> None:
    """Reads take no write lock: a long `catalog verify` or export while a scheduled backup
    appends must not make the backup wait (or fail after the busy timeout)."""
    reader = Catalog.open(catalog_url, clock=TickingClock(frozen_now))
    writer = Catalog.open(catalog_url, clock=TickingClock(frozen_now))
    try:
        with reader.engine.connect() as conn:
            conn.execute(text("SELECT count(*) FROM events")).scalar()  # the read is open
            done = threading.Event()

            def write() -> None:
                writer.append(started("w"), actor=ACTOR)
                done.set()

            worker = threading.Thread(target=write)
            worker.start()
            worker.join(timeout=20)
            assert done.is_set(), "the writer waited for a reader"
            conn.rollback()
        assert [b["name"] for b in list_backups(reader.engine)] == ["w"]
    finally:
        reader.close()
        writer.close()


def test_a_backup_name_is_started_once_even_by_two_writers(cat: Catalog) -> None:
    """The second process to start the same name gets None: its BackupStarted would reset the
    first backup's row (and orphan its artifacts' references)."""
    first = cat.start_backup(started("race_20261124_120000"), actor="a@h via scheduler")
    assert first is not None
    cat.append(completed("race_20261124_120000", "d1"), actor="a@h via scheduler")
    before = cat.snapshot()
    assert cat.start_backup(started("race_20261124_120000"), actor="b@h via cli") is None
    assert cat.snapshot() == before and cat.count() == 2
    assert get_backup(cat.engine, "race_20261124_120000")["status"] == "completed"

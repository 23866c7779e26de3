"""Sizes and dedup in the report: bytes newly stored, the store over time, what a cleanup frees."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from catalog import Catalog
from catalog.events import BackupCompleted, BackupDeleted, BackupStarted, BlobCollected
from catalog.queries import blob_rows, blobs_freed_without
from catalog.read import sqlite_query
from catalog.reporting import artifact_refs, blob_sizes, open_sqlite_readonly
from usecases.report.sizes import StoreLedger, bytes_freed, newly_stored

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def art(digest: str, size: int, created: bool) -> dict[str, object]:
    kind = "globals" if digest == "g" else "full"
    return {"kind": kind, "digest": digest, "codec": "gzip", "raw_size": size * 4,
            "stored_size": size, "stored_sha256": digest, "created": created}  # fmt: skip


def test_newly_stored_counts_only_the_blobs_the_backup_wrote() -> None:
    assert newly_stored([art("a", 100, True), art("b", 50, False)]) == 100
    assert newly_stored([]) == 0


def test_the_ledger_follows_the_store_as_blobs_come_and_go() -> None:
    ledger = StoreLedger()
    ledger.added(T0, "one", [art("a", 100, True), art("g", 10, True)])
    ledger.added(T0 + timedelta(hours=1), "two", [art("a", 100, False), art("g", 10, False)])
    ledger.added(T0 + timedelta(hours=2), "three", [art("b", 70, True), art("g", 10, False)])
    ledger.collected(T0 + timedelta(hours=3), "a", "gzip")
    ledger.collected(T0 + timedelta(hours=4), "orphan", "gzip")  # never referenced: no change
    ledger.added(T0 + timedelta(hours=5), "four", [art("a", 100, True)])  # written again
    assert [(p.total, p.change, p.why) for p in ledger.points] == [
        (110, 110, "one"),
        (180, 70, "three"),
        (80, -100, "collected a"),
        (180, 100, "four"),
    ]
    series = ledger.series(T0 + timedelta(hours=2, minutes=30))
    assert [(p.total, p.change) for p in series] == [(180, 0), (80, -100), (180, 100)]


def test_a_blob_counts_from_its_first_reference_even_if_not_created_then() -> None:
    # A failed backup left the file; a later backup found it there (created: false). The
    # blobs projection counts it from that reference on, and so does the ledger: collecting
    # it later must not take the total below what the store holds.
    ledger = StoreLedger()
    ledger.added(T0, "later", [art("left", 40, False)])
    ledger.collected(T0 + timedelta(hours=1), "left", "gzip")
    assert [p.total for p in ledger.points] == [40, 0]


def test_bytes_freed_agrees_with_the_catalog_query(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    stamps = iter(T0 + timedelta(seconds=i) for i in range(1000))
    with Catalog.open(url, clock=lambda: next(stamps)) as cat:
        for name, arts in (
            ("one", [art("a", 100, True), art("g", 10, True)]),
            ("two", [art("a", 100, False), art("g", 10, False)]),
            ("three", [art("b", 70, True), art("g", 10, False)]),
            ("four", [art("c", 5, True)]),
        ):
            cat.append(_started(name), actor="t")
            cat.append(_completed(name, arts), actor="t")
        cat.append(BackupDeleted(backup="four", reason="gone", rule="person"), actor="t")
        cat.append(BlobCollected(digest="c", codec="gzip"), actor="t")
        assert [b["digest"] for b in blob_rows(cat.engine)] == ["a", "b", "g"]
        opened = open_sqlite_readonly(tmp_path / "catalog.db")
        assert opened is not None
        query = sqlite_query(opened[0])
        refs, blobs = artifact_refs(query), blob_sizes(query)
        for going in ([], ["one"], ["one", "two"], ["three"], ["one", "two", "three"]):
            sizes = {(b["digest"], b["codec"]): b["stored_size"] for b in blob_rows(cat.engine)}
            expected = sum(sizes[key] for key in blobs_freed_without(cat.engine, going))
            assert bytes_freed(going, refs, blobs) == expected, going
        assert bytes_freed(["one", "two", "three"], refs, blobs) == 180
        opened[0].close()


def _started(name: str) -> BackupStarted:
    return BackupStarted(backup=name, backup_type="manual", hostname="h", pid=1,
                         database={}, artifacts=["full"], codec="gzip")  # fmt: skip


def _completed(name: str, arts: list[dict[str, object]]) -> BackupCompleted:
    return BackupCompleted(backup=name, backup_type="manual", artifacts=arts, verified=True,
                           duration_seconds=1.0)  # fmt: skip


def test_a_chunked_artifact_counts_the_bytes_it_added() -> None:
    chunked = {**art("c", 900, False), "added_bytes": 120, "chunks": 40, "new_chunks": 3}
    assert newly_stored([chunked, art("w", 50, True)]) == 170
    ledger = StoreLedger()
    ledger.added(T0, "one", [chunked])
    assert [p.total for p in ledger.points] == [120]

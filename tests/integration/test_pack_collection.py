"""Pack collection through the catalog: deleting backups frees their packs, a chunk shared by
many backups lives until the last goes, a dry run frees exactly what the real run frees in a
store two catalogs share, and a backup's own bytes are what removing it alone frees (issue 17
item 2)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from store import Codec, LocalStore
from store.chunked.gc import packed_size
from store.chunked.store import ChunkStore
from tests.churn import Clock, churn_dump, fabricate_churn
from tests.support import fabricate_backup
from usecases.backup.export import plain_stream
from usecases.backup.verify import verify_one
from usecases.config.settings import Settings
from usecases.context import App
from usecases.retention.cleanup import cleanup, delete_backup, explain
from usecases.storage.roots import attach

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def app(tmp_path: Path, clock: Clock) -> Iterator[App]:
    with App.open(Settings(backup_dir=tmp_path / "a"), clock=clock) as a:
        yield a


def chunks(app: App) -> ChunkStore:
    assert isinstance(app.store, LocalStore)
    return app.store.chunks


def packs(app: App) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in app.settings.store_dir.glob("packs/??/*.pack")}


def plain(app: App, name: str) -> bytes:
    with plain_stream(app, name, "full") as chunks:
        return b"".join(chunks)


def all_restorable(app: App, names: list[str], versions: list[int]) -> None:
    for name, v in zip(names, versions, strict=True):
        assert verify_one(app, name, read_data=True).ok
        assert plain(app, name) == churn_dump(v)


def test_deleting_every_backup_leaves_no_pack(app: App, clock: Clock) -> None:
    names = fabricate_churn(app, clock, range(3))
    assert len(packs(app)) == 3
    for name in names:
        delete_backup(app, name, force=True)
    assert packs(app) == {}
    assert list(app.settings.store_dir.glob("manifests/??/*")) == []
    with chunks(app).index() as idx:
        assert idx.pack_names() == set()


def test_a_chunk_shared_by_many_backups_survives_until_the_last_goes(
    app: App, clock: Clock
) -> None:
    app.settings = dataclasses.replace(app.settings, repack_threshold=0.0)  # most eager
    names = fabricate_churn(app, clock)
    full = [chunks(app).manifest(*_ref(app, n)) for n in names]
    every = set.intersection(*({d for b in m.records() for d, _ in b} for m in full))
    assert len(every) > 20  # rows 1500..2999 no version edits
    for i, name in enumerate(names):
        delete_backup(app, name, force=True)
        with chunks(app).index() as idx:
            assert len(idx.lookup(every, Codec.GZIP)) == (len(every) if i < 7 else 0)
        all_restorable(app, names[i + 1 :], list(range(i + 1, 8)))
    assert packs(app) == {}


def _ref(app: App, name: str) -> tuple[str, Codec]:
    from catalog.queries import get_backup

    art = get_backup(app.catalog.engine, name)["artifacts"][0]
    return art["digest"], Codec(art["codec"])


def test_a_dry_run_frees_exactly_what_the_real_run_frees_in_a_shared_store(
    app: App, clock: Clock, tmp_path: Path
) -> None:
    names = fabricate_churn(app, clock)
    attach(app)  # registered in the store (a real backup registers before it writes)
    # Another backup directory, its own catalog, the same store: it holds version 1 (the
    # same manifest as our second backup: stored once) and a dump of its own.
    shared = Settings(backup_dir=tmp_path / "b", store_path=app.settings.store_dir)
    with App.open(shared, clock=clock) as other:
        fabricate_backup(other, "theirs_v1", churn_dump(1), row_counts={})
        fabricate_backup(other, "theirs_own", churn_dump(7)[::-1], row_counts={})
        attach(other)
    before = packs(app)
    theirs = chunks(app).packs_of(*_ref(app, names[1]))
    dry = cleanup(app, days=45, dry_run=True)
    real = cleanup(app, days=45)
    assert sorted(real.deleted) == names[:4]
    assert dry.freed() == real.freed() and real.freed_bytes > 0
    assert dry.to_json()["freed_bytes"] == real.to_json()["freed_bytes"]
    freed = real.freed()
    assert freed["packs_repacked"] and freed["repack_savings_bytes"] > 0
    assert sum(before.values()) - sum(packs(app).values()) == (
        freed["packs_deleted_bytes"] + freed["repack_savings_bytes"]
    )
    assert real.collect.kept_for_others == 1  # version 1's manifest: the other catalog's too
    assert not theirs & set(freed["packs_deleted"])  # version 1's own chunks stay
    with App.open(shared, clock=clock) as other:
        assert verify_one(other, "theirs_v1", read_data=True).ok
        assert plain(other, "theirs_v1") == churn_dump(1)
        assert verify_one(other, "theirs_own", read_data=True).ok
    all_restorable(app, names[4:], [4, 5, 6, 7])
    again = cleanup(app, days=45, dry_run=True)
    assert again.freed_bytes == 0 == cleanup(app, days=45).freed_bytes


def test_what_a_backup_alone_holds_is_what_removing_it_alone_frees(app: App, clock: Clock) -> None:
    app.settings = dataclasses.replace(app.settings, repack_threshold=0.0)
    names = fabricate_churn(app, clock)
    for name, v in ((names[1], 1), (names[5], 5), (names[7], 7)):
        alone = explain(app, name).frees_bytes
        assert alone > 0
        before = packs(app)
        report = delete_backup(app, name, force=True)
        whole = [p for p in report.packs.deleted]
        # A pack deleted whole also frees its header and footer; otherwise exactly.
        assert report.freed_bytes == alone + len(whole) * packed_size(0, 0), (name, v)
        assert sum(before.values()) - sum(packs(app).values()) == report.packs.freed_bytes


def test_metrics_tell_the_deduplicated_store_from_the_logical_bytes(app: App, clock: Clock) -> None:
    from usecases.health.metrics import collect, render

    fabricate_churn(app, clock)
    before = collect(app)
    assert before.store_bytes is not None
    # eight versions of one table: each stored whole would take 8x; the store holds each
    # chunk once
    assert before.store_bytes < before.stored_bytes // 3
    assert f"dumpledger_store_bytes {before.store_bytes}" in render(before, NOW)
    report = cleanup(app, days=45)
    after = collect(app)
    assert after.store_bytes is not None
    assert report.collect.packs.freed_bytes > 0
    assert after.store_bytes < before.store_bytes  # (the index's write-ahead log may grow)


def test_a_dry_run_gives_each_backup_what_it_alone_holds(app: App, clock: Clock) -> None:
    names = fabricate_churn(app, clock)
    dry = cleanup(app, days=45, dry_run=True)
    assert sorted(dry.forecast.per_backup) == names[:4]
    # Read together (neighbours' shared chunks skipped), the same as each read alone.
    alone = {name: explain(app, name).frees_bytes for name in names[:4]}
    assert dry.forecast.per_backup == alone
    assert all(alone.values())

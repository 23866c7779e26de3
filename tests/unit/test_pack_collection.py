"""Pack collection in the chunked store: packs no manifest uses go, mostly dead and small ones
are repacked, the plan (a dry run) is exactly what collection does, nothing damaged is copied,
and readers wait for the collector (store/chunked/gc.py, store/chunked/repack.py)."""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from store import BlobCorrupted, BlobMissing, Codec, LocalStore, Ref, StoreError
from store.chunked import gc
from store.chunked.packs import ENTRY, read_trailer
from store.chunked.refs import Refs
from tests.unit.test_chunked_store import dump_like

BASE = dump_like(40_000)  # ~1 MB, ~200 chunks


def version(i: int, edits: int = 12, keep: int | None = None) -> bytes:
    """BASE with edits of its own (the first `keep` of them): most chunks shared with every
    other version; version(i, n, k) shares the chunks around k edits with version(i, n)."""
    r = random.Random(i)
    sites = [
        (r.randrange(len(BASE)), b"-- edit %d of version %d\n" % (r.randrange(10**6), i))
        for _ in range(edits)
    ][:keep]
    data = bytearray(BASE)
    for pos, text in sorted(sites, reverse=True):
        data[pos:pos] = text
    return bytes(data)


def packs(store: LocalStore) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in store.root.glob("packs/??/*.pack")}


def chunks_of(store: LocalStore, digest: str) -> set[bytes]:
    found = store.chunks.manifest(digest, Codec.GZIP)
    return {d for batch in found.records() for d, _ in batch}


def indexed(store: LocalStore, digests: set[bytes]) -> int:
    with store.chunks.index() as idx:
        return len(idx.lookup(digests, Codec.GZIP))


def read(store: LocalStore, digest: str) -> bytes:
    with store.open_raw(digest, Codec.GZIP) as raw:
        return b"".join(raw)


def collect(store: LocalStore, threshold: float = 0.3) -> tuple[gc.PackPlan, int]:
    with store.collecting() as alone:
        assert alone
        plan, report = store.collect_packs(threshold)
    return plan, report.freed_bytes


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def test_a_chunk_shared_by_many_artifacts_survives_until_the_last_goes(store: LocalStore) -> None:
    datas = [version(i) for i in range(6)]
    infos = [store.put([d], Codec.GZIP) for d in datas]
    common = set.intersection(*(chunks_of(store, i.digest) for i in infos))
    assert len(common) > 50
    for i, info in enumerate(infos):
        store.delete(info.digest, Codec.GZIP)
        collect(store, threshold=0.0)  # the most eager: any dead byte is reclaimed
        left = list(zip(infos[i + 1 :], datas[i + 1 :], strict=True))
        for later, data in left:
            assert read(store, later.digest) == data
            assert store.verify(later.digest, Codec.GZIP, read_data=True).ok
        assert indexed(store, common) == (len(common) if left else 0)
    assert packs(store) == {}


def test_dead_packs_go_mostly_dead_ones_are_repacked_and_the_plan_is_exact(
    store: LocalStore,
) -> None:
    datas = [BASE, version(1), version(2), version(3, 150), version(3, 150, keep=40)]
    infos = [store.put([d], Codec.GZIP) for d in datas]
    before = packs(store)
    assert len(before) == 5  # BASE's pack, then one small pack per later put
    going = infos[1:4]
    dry = store.plan_packs(0.3, excluding=[Ref(i.digest, Codec.GZIP) for i in going])
    for info in going:
        store.delete(info.digest, Codec.GZIP)
    plan, freed = collect(store)
    assert plan.delete == dry.delete and plan.repack == dry.repack
    assert [p.size for p in plan.new_packs] == [p.size for p in dry.new_packs]
    assert freed == dry.freed_bytes == sum(before.values()) - sum(packs(store).values()) > 0
    assert len(plan.delete) == 2  # versions 1 and 2: only their own edits were in them
    assert len(plan.repack) == 1 and len(plan.new_packs) == 1  # version 3's: 40 of 150 live
    assert plan.repack[0].size > 2 * plan.new_packs[0].size
    for info, data in ((infos[0], BASE), (infos[4], datas[4])):
        assert read(store, info.digest) == data
        assert store.verify(info.digest, Codec.GZIP, read_data=True).ok
    assert collect(store) == (gc.PackPlan(packs=len(packs(store)), manifests=2), 0)


def test_a_pack_under_the_threshold_stays_whole(store: LocalStore) -> None:
    first = store.put([version(0)], Codec.GZIP)
    second = store.put([version(1)], Codec.GZIP)
    store.delete(first.digest, Codec.GZIP)  # ~12 of ~200 chunks die in the first pack
    plan, freed = collect(store, threshold=0.3)
    assert (plan.repack, len(plan.delete)) == ([], 0) and freed == 0
    plan, freed = collect(store, threshold=0.01)
    assert len(plan.repack) == 1 and freed > 0
    plan, freed = collect(store, threshold=1.0)  # 1: never rewritten, only deleted when dead
    assert plan.repack == [] and freed == 0
    assert read(store, second.digest) == version(1)


def test_small_packs_are_merged_once_there_are_many(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gc, "MERGE_MIN", 8)
    datas = [b"-- globals %d\n" % i + bytes(random.Random(i).randbytes(3000)) for i in range(7)]
    infos = [store.put([d], Codec.GZIP) for d in datas]
    assert len(packs(store)) == 7
    plan, freed = collect(store)
    assert plan.repack == [] and len(packs(store)) == 7  # 7 < 8: left alone
    infos.append(store.put([b"one more\n" * 999], Codec.GZIP))
    datas.append(b"one more\n" * 999)
    plan, freed = collect(store)
    assert plan.merged_small == 8 and len(plan.new_packs) == 1
    assert freed == 7 * 20  # their headers and footers: every byte in them was live
    assert len(packs(store)) == 1
    for info, data in zip(infos, datas, strict=True):
        assert read(store, info.digest) == data


def test_a_new_pack_that_fills_up_is_cut_where_the_plan_said(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("store.chunked.gc.TARGET_SIZE", 60_000)
    infos = [store.put([version(i, edits=150)], Codec.GZIP) for i in range(2)]
    store.delete(infos[0].digest, Codec.GZIP)
    dry = store.plan_packs(0.05)
    with store.collecting():
        plan, report = store.collect_packs(0.05)
    sizes = [p.size for p in plan.new_packs]
    assert len(sizes) >= 3 and min(sizes[:-1]) >= 60_000
    assert [p.size for p in report.written] == sizes == [p.size for p in dry.new_packs]
    assert report.freed_bytes == dry.freed_bytes
    assert read(store, infos[1].digest) == version(1, edits=150)


def test_a_damaged_pack_is_set_aside_never_copied(store: LocalStore) -> None:
    first = store.put([version(0)], Codec.GZIP)
    second = store.put([version(1)], Codec.GZIP)
    store.delete(first.digest, Codec.GZIP)
    big = max(packs(store).items(), key=lambda kv: kv[1])[0]
    path = next(store.root.glob(f"packs/??/{big}"))
    entry = read_trailer(path)[5]
    data = bytearray(path.read_bytes())
    data[entry.offset + 3] ^= 0xFF  # a flipped byte inside a live chunk
    path.write_bytes(bytes(data))
    before = set(packs(store))
    with pytest.raises(BlobCorrupted, match="set aside"), store.collecting():
        store.collect_packs(0.01)
    assert set(packs(store)) == before - {big}  # set aside; no new pack holds its bytes
    assert path.with_name(path.name + ".damaged").is_file()
    with pytest.raises(BlobMissing):  # its chunks are in no pack: nothing laundered them
        read(store, second.digest)
    healed = store.put([version(1)], Codec.GZIP)  # the next backup stores those chunks again
    assert healed.new_chunks > 0 and read(store, second.digest) == version(1)


def test_an_unreadable_manifest_stops_pack_collection(store: LocalStore) -> None:
    first = store.put([version(0)], Codec.GZIP)
    second = store.put([version(1)], Codec.GZIP)
    manifest = store.chunks.manifest_path(second.digest, Codec.GZIP)
    manifest.write_bytes(manifest.read_bytes()[:-7])
    store.delete(first.digest, Codec.GZIP)
    before = packs(store)
    with pytest.raises(StoreError, match="cannot be read"), store.collecting():
        store.collect_packs(0.0)
    assert packs(store) == before
    assert list(store.root.glob("packs/.tmp-*")) == []  # the scratch table went


@pytest.mark.parametrize("tally", [None, 7])  # 7: each group tallied in parts (refs.TALLY)
def test_group_bytes_count_the_chunks_only_that_group_uses(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch, tally: int | None
) -> None:
    if tally is not None:
        monkeypatch.setattr("store.chunked.refs.TALLY", tally)
    infos = [store.put([version(i)], Codec.GZIP) for i in range(3)]
    refs = [Ref(i.digest, Codec.GZIP) for i in infos]
    plan = store.plan_packs(0.3, groups={refs[0]: 0, refs[1]: 1})
    own = [chunks_of(store, i.digest) for i in infos]
    with store.chunks.index() as idx:
        where = idx.lookup(set().union(*own), Codec.GZIP)
    for g in (0, 1):
        alone = own[g] - set().union(*(own[k] for k in range(3) if k != g))
        expected = sum(where[d].stored_len + ENTRY.size for d in alone)
        assert plan.group_bytes[g] == expected > 0
    # Two manifests in one group: the chunks they share count for that group.
    both = store.plan_packs(0.3, groups={refs[0]: 0, refs[1]: 0})
    assert both.group_bytes[0] > plan.group_bytes[0] + plan.group_bytes[1]


READER = """
import sys
from store import Codec, LocalStore
store = LocalStore(sys.argv[1])
with store.open_raw(sys.argv[2], Codec.GZIP) as raw:
    n = sum(len(piece) for piece in raw)
print(n, flush=True)
"""


def test_a_reader_waits_while_packs_are_collected(store: LocalStore) -> None:
    info = store.put([version(0)], Codec.GZIP)
    with store.collecting() as alone:
        assert alone
        child = subprocess.Popen(
            [sys.executable, "-c", READER, str(store.root), info.digest],
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(1.5)
        assert child.poll() is None  # blocked on the store's lock
    out, _ = child.communicate(timeout=60)
    assert int(out) == len(version(0))


def counts(store: LocalStore) -> list[tuple[bytes, int, int]]:
    with store.chunks.index() as idx:
        return sorted(idx.db.execute("SELECT digest, codec, n FROM refs").fetchall())


def recounted(store: LocalStore, tmp: Path) -> list[tuple[bytes, int, int]]:
    """The counts a store gives when every manifest is counted from scratch."""
    copy = LocalStore(tmp / f"copy-{len(list(tmp.iterdir()))}")
    shutil.copytree(store.root, copy.root)
    with copy.chunks.index() as idx:
        idx.db.execute("DELETE FROM counted")
        idx.db.execute("DELETE FROM refs")
    copy.plan_packs(0.3)
    return counts(copy)


def test_the_counts_kept_in_the_index_are_what_counting_every_manifest_gives(
    store: LocalStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(self: Refs) -> None:
        raise AssertionError("counted everything again: the counts were not kept right")

    r = random.Random(5)
    live: list[str] = []
    with monkeypatch.context() as m:
        m.setattr(Refs, "_clear", never)
        for step in range(12):
            if live and r.random() < 0.4:
                store.delete(live.pop(r.randrange(len(live))), Codec.GZIP)  # set aside
            else:
                data = version(step, edits=r.randrange(1, 30))
                live.append(store.put([data, data[: r.randrange(1, 5000)]], Codec.GZIP).digest)
            store.plan_packs(0.3)  # takes back what was set aside, counts what is new
            assert counts(store) == recounted(store, tmp_path) != []
            assert list(store.root.glob("manifests/??/*.gone")) == []
        # A chunk listed twice by one dump counts twice, and is taken back twice.
        twice = store.put([BASE, BASE], Codec.GZIP)
        store.plan_packs(0.3)
        store.delete(twice.digest, Codec.GZIP)
        store.plan_packs(0.3)
    assert counts(store) == recounted(store, tmp_path)


def test_a_manifest_removed_or_replaced_behind_the_counts_back_is_counted_again(
    store: LocalStore, tmp_path: Path
) -> None:
    store.put([BASE], Codec.GZIP)
    first = store.put([version(1, 150)], Codec.GZIP)
    store.plan_packs(0.3)
    store.chunks.manifest_path(first.digest, Codec.GZIP).unlink()  # by hand: not subtracted
    plan = store.plan_packs(0.3)
    assert len(plan.delete) == 1  # version 1's own chunks: listed by no manifest now
    assert counts(store) == recounted(store, tmp_path)
    third = store.put([version(3, 20)], Codec.GZIP)
    store.plan_packs(0.3)
    path = store.chunks.manifest_path(third.digest, Codec.GZIP)
    data = path.read_bytes()
    path.unlink()
    path.write_bytes(data)  # another file (a repair's rename): the counts cannot trust it
    store.plan_packs(0.3)
    assert counts(store) == recounted(store, tmp_path)


def test_a_read_only_store_is_planned_without_writing(tmp_path: Path) -> None:
    from tests.mounts import remount, tmpfs

    with tmpfs(tmp_path / "disk") as disk:
        store = LocalStore(disk / "store")
        first = store.put([version(1, 150)], Codec.GZIP)
        second = store.put([version(1, 150, keep=40)], Codec.GZIP)
        store.delete(first.digest, Codec.GZIP)
        writable = store.plan_packs(0.3)
        remount(disk, read_only=True)
        try:
            planned = LocalStore(disk / "store").plan_packs(0.3)
            assert planned.repack == writable.repack and planned.freed_bytes > 0
            assert planned.freed_bytes == writable.freed_bytes
            assert read(LocalStore(disk / "store"), second.digest) == version(1, 150, keep=40)
        finally:
            remount(disk, read_only=False)


def listed(store: LocalStore) -> list[tuple[bytes, int, int]]:
    """How many times the manifests present list each chunk, counted here from their files."""
    from collections import Counter

    from store.chunked.manifest import Manifest
    from store.chunked.packs import CODEC_IDS

    found: Counter[tuple[bytes, int]] = Counter()
    for _, _, path in store.chunks.iter_manifests():
        manifest = Manifest(path)
        cid = CODEC_IDS[Codec(manifest.footer.chunk_codec)]
        found.update((d, cid) for batch in manifest.records() for d, _ in batch)
    return sorted((d, cid, n) for (d, cid), n in found.items())


def test_counts_written_in_parts_add_up_to_what_the_manifests_list(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A manifest of a large dump lists millions of chunks: its counts are written whenever
    TALLY of them are tallied, not held whole (here TALLY is 7, a manifest lists ~200)."""
    monkeypatch.setattr("store.chunked.refs.TALLY", 7)
    r = random.Random(11)
    live: list[str] = []
    for step in range(10):
        if live and r.random() < 0.4:
            store.delete(live.pop(r.randrange(len(live))), Codec.GZIP)  # taken back in parts
        else:
            data = version(step, edits=r.randrange(1, 30))
            live.append(store.put([data, data[: r.randrange(1, 5000)]], Codec.GZIP).digest)
        store.plan_packs(0.3)
        assert counts(store) == listed(store) != []


def test_a_manifest_replaced_while_counted_takes_its_batch_back(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counts already written for a batch go when one of its manifests turns out to have
    changed while it was read; the others are counted again, that one by the next sync."""
    from store.chunked import refs

    monkeypatch.setattr(refs, "TALLY", 7)
    for i in range(3):
        store.put([version(i)], Codec.GZIP)
    paths = [path for _, _, path in store.chunks.iter_manifests()]
    changed = paths[-1]
    real = refs.fingerprint
    checks = {"n": 0}

    def fingerprint(path: Path) -> refs.Fingerprint | None:
        fp = real(path)
        if path == changed and fp is not None:
            checks["n"] += 1
            if checks["n"] == 2:  # the check after reading it: as if replaced meanwhile
                return (fp[0], fp[1] + 1, fp[2])
        return fp

    monkeypatch.setattr(refs, "fingerprint", fingerprint)
    with store.chunks.index() as idx:
        assert refs.Refs(idx).sync(paths) == [changed]
    with_changed = listed(store)
    changed.rename(changed.with_suffix(".aside"))
    assert counts(store) == listed(store)  # the two others, once each
    changed.with_suffix(".aside").rename(changed)
    with store.chunks.index() as idx:
        assert refs.Refs(idx).sync(paths) == []
    assert counts(store) == with_changed

"""The chunked layout on disk: chunk boundaries, deduplication, packs and their trailers, the
index rebuilt from packs, durability order, corruption named by pack and chunk, modes."""

from __future__ import annotations

import errno
import gzip
import hashlib
import os
import random
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from store import BlobCorrupted, BlobMissing, Codec, LocalStore, StoreFull
from store.chunked import chunker, layout
from store.chunked.index import ChunkIndex
from store.chunked.manifest import Manifest
from store.chunked.packs import read_trailer


def dump_like(rows: int, seed: int = 1) -> bytes:
    """SQL-dump-like lines, varied enough that chunks differ."""
    r = random.Random(seed)
    words = [b"alpha", b"beta", b"gamma", b"delta", b"user", b"note", b"text", b"payload"]
    return b"".join(
        b'%d\t%s %s\t%d\t{"k": %d}\n'
        % (i, r.choice(words), r.choice(words), r.randrange(10**6), r.randrange(1000))
        for i in range(rows)
    )


DUMP = dump_like(120_000)  # ~3 MB


def pieces(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def packs(store: LocalStore) -> list[Path]:
    return sorted(store.root.glob("packs/??/*.pack"))


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def test_chunks_do_not_depend_on_how_the_stream_was_read() -> None:
    whole = [bytes(c) for c in chunker.cut([DUMP])]
    assert b"".join(whole) == DUMP
    for size in (1, 4093, 1 << 20, chunker.FEED + 1):
        assert [bytes(c) for c in chunker.cut(pieces(DUMP, size))] == whole
    sizes = [len(c) for c in whole[:-1]]
    assert min(sizes) >= chunker.MIN and max(sizes) <= chunker.MAX


@settings(max_examples=25, deadline=None)
@given(st.binary(min_size=0, max_size=60_000), st.integers(1, 9000))
def test_chunking_any_bytes_gives_them_back(data: bytes, size: int) -> None:
    assert b"".join(bytes(c) for c in chunker.cut(pieces(data, size))) == data


def test_an_edit_stores_only_the_chunks_around_it(store: LocalStore) -> None:
    first = store.put(pieces(DUMP, 1 << 20), Codec.GZIP)
    edited = DUMP[:1_000_000] + b"an edited row\n" + DUMP[1_000_000:]
    second = store.put(pieces(edited, 65536), Codec.GZIP)
    assert first.new_chunks == first.chunks > 300
    assert 1 <= second.new_chunks <= 3
    assert second.added_bytes < first.added_bytes // 20  # a few chunks and a manifest
    with store.open_raw(second.digest, Codec.GZIP) as raw:
        assert b"".join(raw) == edited


def test_the_artifact_file_is_plain_multi_member_gzip(store: LocalStore, tmp_path: Path) -> None:
    info = store.put(pieces(DUMP, 1 << 20), Codec.GZIP)
    dest = tmp_path / "x_full.sql.gz"
    store.materialize(info.digest, Codec.GZIP, dest)
    assert subprocess.run(["gunzip", "-c", str(dest)], capture_output=True).stdout == DUMP
    assert dest.stat().st_size == info.stored_size
    assert dest.read_bytes().count(b"\x1f\x8b\x08\x00\x00\x00\x00\x00") == info.chunks


def test_a_custom_dump_is_stored_compressed_and_its_file_is_the_dump(
    store: LocalStore, tmp_path: Path
) -> None:
    info = store.put(pieces(DUMP, 1 << 20), Codec.NONE, chunk_codec=Codec.ZSTD)
    assert info.stored_size < len(DUMP) // 2
    assert Manifest(info.path or Path()).footer.chunk_codec == "zstd"
    store.materialize(info.digest, Codec.NONE, tmp_path / "x.dump")
    assert (tmp_path / "x.dump").read_bytes() == DUMP


def test_packs_trailers_and_manifest_describe_the_store(store: LocalStore) -> None:
    info = store.put(pieces(DUMP, 1 << 20), Codec.GZIP)
    [pack] = packs(store)
    entries = read_trailer(pack)
    assert hashlib.sha256(pack.read_bytes()).hexdigest() == pack.name.removesuffix(".pack")
    assert len(entries) == info.chunks  # every chunk of this dump is distinct
    manifest = Manifest(store.root / layout.manifest_rel(info.digest, Codec.GZIP))
    assert manifest.footer.digest == info.digest and manifest.footer.raw_size == len(DUMP)
    listed = [d for batch in manifest.records() for d, _ in batch]
    assert sorted(listed) == sorted(e.digest for e in entries)
    assert hashlib.sha256(manifest.path.read_bytes()).hexdigest() == info.stored_sha256
    for path in [store.root, *store.root.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))


def test_a_pack_fills_up_and_the_next_one_starts(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("store.chunked.writer.TARGET_SIZE", 100_000)
    info = store.put(pieces(DUMP, 1 << 20), Codec.GZIP)
    found = packs(store)
    assert len(found) >= 5
    assert sum(len(read_trailer(p)) for p in found) == info.chunks
    with store.open_raw(info.digest, Codec.GZIP) as raw:
        assert b"".join(raw) == DUMP


@pytest.mark.parametrize("damage", ["missing", "garbage", "torn pages"])
def test_the_index_is_rebuilt_from_the_packs(
    store: LocalStore, damage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = store.put(pieces(DUMP, 1 << 20), Codec.ZSTD)
    index = store.root / layout.INDEX
    for extra in ("-wal", "-shm"):
        Path(f"{index}{extra}").unlink(missing_ok=True)
    if damage == "missing":
        index.unlink()
    elif damage == "garbage":
        index.write_bytes(b"this is not an SQLite database" * 100)
    else:  # a valid header, damaged pages: found by the check of a new process
        data = bytearray(index.read_bytes())
        data[4096:] = b"\xa5" * (len(data) - 4096)
        index.write_bytes(bytes(data))
        monkeypatch.setattr("store.chunked.index._CHECKED", set())
    assert store.verify(info.digest, Codec.ZSTD, read_data=True).ok
    again = store.put(pieces(DUMP, 4096), Codec.ZSTD)
    assert (again.new_chunks, again.added_bytes) == (0, 0)


def test_a_pack_published_but_not_indexed_is_found(store: LocalStore) -> None:
    """A writer killed between publishing a pack and committing its rows."""
    info = store.put(pieces(DUMP, 1 << 20), Codec.GZIP)
    idx = ChunkIndex(store.root / layout.INDEX, store.root / layout.PACKS)
    for name in idx.pack_names():
        idx.drop_pack(name)
    idx.close()
    with store.open_raw(info.digest, Codec.GZIP) as raw:
        assert b"".join(raw) == DUMP
    assert store.put(pieces(DUMP, 1 << 20), Codec.GZIP).new_chunks == 0


def flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x40
    path.write_bytes(bytes(data))


def test_a_flipped_byte_is_named_by_pack_and_chunk(store: LocalStore) -> None:
    info = store.put(pieces(DUMP, 1 << 20), Codec.GZIP)
    [pack] = packs(store)
    victim = read_trailer(pack)[7]
    flip(pack, victim.offset + victim.stored_len // 2)
    deep = store.verify(info.digest, Codec.GZIP, read_data=True)
    assert not deep.ok and deep.error and victim.digest.hex() in deep.error
    assert str(pack) in deep.error
    with (
        pytest.raises(BlobCorrupted, match=victim.digest.hex()),
        store.open_raw(info.digest, Codec.GZIP) as raw,
    ):
        b"".join(raw)
    fast = store.verify(info.digest, Codec.GZIP, expected_stored_sha256=info.stored_sha256)
    assert (
        not fast.ok and str(pack) in (fast.error or "") and "no longer hash" in (fast.error or "")
    )


def test_a_damaged_pack_is_set_aside_and_the_next_put_heals_every_artifact(
    store: LocalStore,
) -> None:
    """Otherwise every later backup would deduplicate against the damaged chunks and fail
    its read-back; chunks are addressed by digest, so storing them again heals old backups."""
    old = store.put(pieces(DUMP, 1 << 20), Codec.GZIP)
    [pack] = packs(store)
    flip(pack, read_trailer(pack)[7].offset + 100)
    assert not store.verify(old.digest, Codec.GZIP).ok
    assert packs(store) == [] and pack.with_name(pack.name + ".damaged").is_file()
    assert not store.verify(old.digest, Codec.GZIP).ok  # its chunks are in no pack now
    again = store.put(pieces(DUMP, 4096), Codec.GZIP)  # the same data, still in the database
    assert again.new_chunks == again.chunks  # stored again, not deduplicated
    assert store.verify(old.digest, Codec.GZIP, read_data=True).ok  # healed


def test_a_damaged_manifest_or_a_missing_pack_fails_verification(store: LocalStore) -> None:
    info = store.put(pieces(DUMP, 1 << 20), Codec.GZIP)
    manifest = store.root / layout.manifest_rel(info.digest, Codec.GZIP)
    good = manifest.read_bytes()
    flip(manifest, len(good) - 10)  # inside the footer
    result = store.verify(info.digest, Codec.GZIP, expected_stored_sha256=info.stored_sha256)
    assert not result.ok and str(manifest) in (result.error or "")
    manifest.write_bytes(good)
    [pack] = packs(store)
    pack.unlink()
    result = store.verify(info.digest, Codec.GZIP)
    assert not result.ok and f"{pack} is missing" in (result.error or "")
    with pytest.raises(BlobMissing), store.open_raw(info.digest, Codec.GZIP) as raw:
        b"".join(raw)


def test_a_failing_producer_leaves_no_manifest_and_no_temp_file(store: LocalStore) -> None:
    def broken() -> Iterator[bytes]:
        yield from pieces(DUMP, 1 << 20)
        raise RuntimeError("pg_dump died")

    with pytest.raises(RuntimeError, match="pg_dump died"):
        store.put(broken(), Codec.GZIP)
    assert list(store.iter_blobs()) == []
    assert not list(store.root.rglob(f"{layout.TMP_PREFIX}*"))


def test_disk_full_is_store_full_and_leaves_no_temp_file(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fsync = os.fsync

    def full(fd: int) -> None:
        real_fsync(fd)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("store.chunked.packs.os.fsync", full)
    with pytest.raises(StoreFull, match="no space left on device"):
        store.put(pieces(DUMP, 1 << 20), Codec.GZIP)
    assert list(store.iter_blobs()) == [] and packs(store) == []
    assert not list(store.root.rglob(f"{layout.TMP_PREFIX}*"))


def test_stale_temp_files_of_packs_and_manifests_are_removed(store: LocalStore) -> None:
    store.put(iter([b"x"]), Codec.GZIP)
    for d in ("packs", "manifests"):
        (store.root / d / ".tmp-deadbeef").write_bytes(b"half a pack")
    assert store.remove_stale_temp_files() == 2
    assert not list(store.root.rglob(".tmp-*"))


def test_whole_blobs_and_chunked_artifacts_side_by_side(tmp_path: Path) -> None:
    old = LocalStore(tmp_path / "store", chunked=False).put(iter([DUMP]), Codec.GZIP)
    store = LocalStore(tmp_path / "store")
    new = store.put(iter([DUMP + b"-- one more line\n"]), Codec.GZIP)
    assert old.path is not None and old.path.parent.parent.name == "sha256"
    assert {d for d, _, _ in store.iter_blobs()} == {old.digest, new.digest}
    for info in (old, new):
        assert store.verify(info.digest, Codec.GZIP, expected_stored_sha256=info.stored_sha256).ok
        assert store.path_for(info.digest, Codec.GZIP) == info.path
        file = tmp_path / f"{info.digest}.sql.gz"
        store.materialize(info.digest, Codec.GZIP, file)
        assert gzip.decompress(file.read_bytes()).startswith(DUMP)
    assert store.put(iter([DUMP]), Codec.GZIP).created is False  # the old blob is the artifact
    assert store.delete(old.digest, Codec.GZIP) and store.delete(new.digest, Codec.GZIP)
    assert list(store.iter_blobs()) == []


def test_adopting_files_of_another_store(tmp_path: Path) -> None:
    source = LocalStore(tmp_path / "a")
    info = source.put(pieces(DUMP, 1 << 20), Codec.GZIP)
    objects = source.objects_of(info.digest, Codec.GZIP, info.stored_sha256)
    assert [o.rel.split("/")[0] for o in objects] == ["manifests", "packs"]
    copy = LocalStore(tmp_path / "b")
    with pytest.raises(BlobCorrupted):
        copy.adopt_file(objects[1].rel, [b"not the pack"], sha256=objects[1].sha256)
    with pytest.raises(Exception, match="not a file of a dumpledger store"):
        copy.adopt_file("../../etc/passwd", [b"x"], sha256="0" * 64)
    for obj in objects:
        assert copy.adopt_file(obj.rel, [obj.path.read_bytes()], sha256=obj.sha256)
    assert copy.verify(info.digest, Codec.GZIP, read_data=True).ok


def test_no_manifest_before_its_packs_are_indexed(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed between publishing a pack and indexing it: no manifest names its chunks; the
    pack is found and used by the next writer."""

    def killed(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(ChunkIndex, "add_pack", killed)
    with pytest.raises(KeyboardInterrupt):
        store.put(pieces(DUMP, 1 << 20), Codec.GZIP)
    assert list(store.iter_blobs()) == [] and len(packs(store)) == 1
    monkeypatch.undo()
    again = store.put(pieces(DUMP, 1 << 20), Codec.GZIP)
    assert again.new_chunks == 0 and len(packs(store)) == 1
    assert store.verify(again.digest, Codec.GZIP, read_data=True).ok


def test_a_file_is_copied_as_stored_only_after_its_packs_re_hashed_in_this_process(
    store: LocalStore, tmp_path: Path
) -> None:
    """A backup's files are byte copies of packs its read-back just re-hashed; any other
    copy checks every chunk."""
    info = store.put(pieces(DUMP, 1 << 20), Codec.GZIP)
    [pack] = packs(store)
    victim = read_trailer(pack)[3]
    assert store.verify(info.digest, Codec.GZIP).ok  # this process re-hashed the pack
    fast = tmp_path / "fast.sql.gz"
    store.materialize(info.digest, Codec.GZIP, fast)
    assert gzip.decompress(fast.read_bytes()) == DUMP
    time.sleep(0.05)  # past the filesystem's timestamp granularity
    flip(pack, victim.offset + victim.stored_len // 2)  # changed since: every chunk is checked
    with pytest.raises(BlobCorrupted, match=victim.digest.hex()):
        store.materialize(info.digest, Codec.GZIP, tmp_path / "slow.sql.gz")
    assert not (tmp_path / "slow.sql.gz").exists()
    fresh = LocalStore(store.root)  # another process: nothing re-hashed yet
    with pytest.raises(BlobCorrupted, match=victim.digest.hex()):
        fresh.materialize(info.digest, Codec.GZIP, tmp_path / "other.sql.gz")


def test_puts_in_many_threads_share_a_new_index(tmp_path: Path) -> None:
    """A manual backup's five dumps open the new store's index at once: none may take the
    half-made index for a damaged one (that failed backups: 'no such table', 'malformed')."""
    from concurrent.futures import ThreadPoolExecutor

    dumps = [dump_like(3_000, seed) for seed in range(8)]
    for attempt in range(6):
        store = LocalStore(tmp_path / f"store{attempt}")
        with ThreadPoolExecutor(len(dumps)) as pool:
            puts = [pool.submit(store.put, iter([d]), Codec.GZIP) for d in dumps]
            infos = [p.result() for p in puts]
        assert not list(store.root.glob("index.sqlite.damaged-*"))
        for info, data in zip(infos, dumps, strict=True):
            with store.open_raw(info.digest, Codec.GZIP) as raw:
                assert b"".join(raw) == data

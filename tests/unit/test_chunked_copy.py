"""A backup's own files copied from where its put stored the chunks (run by run, in the
kernel), and its packs re-hashed while the put runs: the same bytes and the same checks as
the chunk-by-chunk way."""

from __future__ import annotations

import errno
import gzip
import os
import random
from pathlib import Path

import pytest

from store import BlobCorrupted, BlobMissing, Codec, LocalStore
from store.chunked import extents
from store.chunked import store as chunk_store
from store.chunked.extents import ExtentRecorder
from store.chunked.packs import hash_file, read_trailer
from tests.unit.test_chunked_store import dump_like, flip, packs, pieces

BASE = dump_like(60_000, seed=3)  # ~1.5 MB


def edited(data: bytes) -> bytes:
    """Edits here and there, a new block, and a block repeated later in the same stream."""
    r = random.Random(7)
    out = bytearray(data)
    for _ in range(12):
        at = r.randrange(len(out))
        out[at:at] = b"edited %d\n" % r.randrange(10**9)
    fresh = dump_like(8_000, seed=11)
    return bytes(out[:400_000]) + fresh + bytes(out[400_000:]) + fresh[:100_000]


def slow_copy(root: Path, digest: str, codec: Codec) -> bytes:
    """The file as another process writes it: every chunk decompressed and checked."""
    return b"".join(LocalStore(root).file_stream(digest, codec))


@pytest.fixture
def small_packs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Packs of ~64 KiB, so a put's new chunks span several packs."""
    monkeypatch.setattr("store.chunked.writer.TARGET_SIZE", 64 << 10)


@pytest.mark.usefixtures("small_packs")
@pytest.mark.parametrize("codec", [Codec.GZIP, Codec.ZSTD])
def test_a_backups_file_is_its_chunks_copied_run_by_run(
    tmp_path: Path, codec: Codec, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStore(tmp_path / "store")
    store.put(pieces(BASE, 1 << 20), codec)
    data = edited(BASE)
    info = store.put(pieces(data, 300_000), codec)
    assert 0 < info.new_chunks < info.chunks and len(packs(store)) > 3
    assert store.verify(info.digest, codec, expected_stored_sha256=info.stored_sha256).ok

    def no_chunk_by_chunk(*_: object) -> None:
        raise AssertionError("copied chunk by chunk")

    with monkeypatch.context() as m:
        m.setattr(chunk_store.ChunkStore, "file_bytes", no_chunk_by_chunk)
        size = store.materialize(info.digest, codec, tmp_path / "f")
    written = (tmp_path / "f").read_bytes()
    assert size == len(written) == info.stored_size
    assert written == slow_copy(store.root, info.digest, codec)
    if codec is Codec.GZIP:
        assert gzip.decompress(written) == data
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o600


def test_without_copy_file_range_the_runs_are_copied_through_a_buffer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStore(tmp_path / "store")
    info = store.put(pieces(BASE, 1 << 20), Codec.GZIP)
    assert store.verify(info.digest, Codec.GZIP).ok

    def unsupported(*_: object) -> int:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "copy_file_range", unsupported)
    store.materialize(info.digest, Codec.GZIP, tmp_path / "f")
    assert gzip.decompress((tmp_path / "f").read_bytes()) == BASE


def test_past_its_memory_budget_the_file_is_copied_chunk_by_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(extents, "BUDGET", 256)
    store = LocalStore(tmp_path / "store")
    store.put(pieces(BASE, 1 << 20), Codec.GZIP)
    data = edited(BASE)
    info = store.put(pieces(data, 1 << 20), Codec.GZIP)
    assert store.verify(info.digest, Codec.GZIP).ok
    assert store.chunks.copy_as_written(info.digest, Codec.GZIP, tmp_path / "x", None) is None
    store.materialize(info.digest, Codec.GZIP, tmp_path / "f")
    assert gzip.decompress((tmp_path / "f").read_bytes()) == data


def test_an_empty_artifact_and_a_whole_repeat_are_copied_right(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    empty = store.put(iter([b""]), Codec.GZIP)
    store.materialize(empty.digest, Codec.GZIP, tmp_path / "empty")
    assert gzip.decompress((tmp_path / "empty").read_bytes()) == b""
    store.put(pieces(BASE, 1 << 20), Codec.GZIP)
    again = store.put(pieces(BASE, 4096), Codec.GZIP)  # every chunk known, the manifest too
    assert again.new_chunks == 0 and store.verify(again.digest, Codec.GZIP).ok
    store.materialize(again.digest, Codec.GZIP, tmp_path / "again")
    assert gzip.decompress((tmp_path / "again").read_bytes()) == BASE


def test_a_put_re_hashes_its_packs_so_its_read_back_need_not_and_a_change_is_seen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every pack the put used (those it found chunks in, those it wrote) was re-hashed
    before it returned; one changed since is hashed again, and found damaged."""
    store = LocalStore(tmp_path / "store")
    store.put(pieces(BASE, 1 << 20), Codec.GZIP)
    info = store.put(pieces(edited(BASE), 1 << 20), Codec.GZIP)
    assert len(packs(store)) == 2
    hashed: list[Path] = []

    def counting(path: Path, *args: int) -> tuple[str, int]:
        hashed.append(path)
        return hash_file(path, *args)

    monkeypatch.setattr("store.chunked.store.hash_file", counting)
    assert store.verify(info.digest, Codec.GZIP, expected_stored_sha256=info.stored_sha256).ok
    assert [p for p in hashed if p.suffix == ".pack"] == []
    old = min(packs(store), key=lambda p: p.stat().st_mtime_ns)
    flip(old, read_trailer(old)[2].offset + 10)
    result = store.verify(info.digest, Codec.GZIP, expected_stored_sha256=info.stored_sha256)
    assert not result.ok and "no longer hash" in (result.error or "")
    assert old in hashed
    with pytest.raises((BlobCorrupted, BlobMissing)):  # nor is the file copied from it
        store.materialize(info.digest, Codec.GZIP, tmp_path / "f")


def test_the_recorder_places_new_chunks_across_packs_and_merges_adjacent_runs() -> None:
    rec = ExtentRecorder()
    rec.known(7, 100, 10)
    rec.known(7, 110, 5)  # adjacent: one run
    first = rec.new()
    second = rec.new()
    rec.known(3, 0, 4)
    rec.again(first)  # a repeat of a new chunk
    third = rec.new()
    rec.written(8, 20)  # first, in pack "p1"
    rec.written(28, 30)  # second, in pack "p1"
    rec.pack_done("p1")
    rec.written(8, 40)  # third, in pack "p2"
    rec.pack_done("p2")
    assert (first, second, third) == (0, 1, 2)
    names = {7: "old7", 3: "old3"}
    assert rec.resolve(names.__getitem__) == [
        ("old7", 100, 15),
        ("p1", 8, 50),
        ("old3", 0, 4),
        ("p1", 8, 20),
        ("p2", 8, 40),
    ]


def test_a_recorder_over_budget_gives_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extents, "BUDGET", 100)
    rec = ExtentRecorder()
    for i in range(10):
        rec.known(i, 0, 1)
    assert rec.dropped and rec.resolve(str) is None


def test_a_pack_damaged_before_a_put_fails_that_puts_read_back(tmp_path: Path) -> None:
    """The put re-hashes the old pack it deduplicates against (on its thread); the read-back
    reports it, and no file is copied from it."""
    store = LocalStore(tmp_path / "store")
    store.put(pieces(BASE, 1 << 20), Codec.GZIP)
    [pack] = packs(store)
    flip(pack, read_trailer(pack)[5].offset + 3)
    again = LocalStore(store.root)  # the next backup: another process
    info = again.put(pieces(BASE, 1 << 20), Codec.GZIP)
    assert info.new_chunks == 0  # deduplicated against the damaged pack
    result = again.verify(info.digest, Codec.GZIP, expected_stored_sha256=info.stored_sha256)
    assert not result.ok and str(pack) in (result.error or "")
    with pytest.raises((BlobCorrupted, BlobMissing)):
        again.materialize(info.digest, Codec.GZIP, tmp_path / "f")
    assert not (tmp_path / "f").exists()

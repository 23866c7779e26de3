"""LocalStore's whole blobs (the first layout, still written with encryption and still read):
gzip compatibility, determinism, modes, crashes, corruption, memory. The chunked layout has
tests/unit/test_chunked_store.py."""

from __future__ import annotations

import errno
import gzip
import os
import stat
import subprocess
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from store import Codec, LocalStore, StoreError, StoreFull
from store import codecs as codecs_mod


def text_like(total: int, seed: int = 1) -> Iterator[bytes]:
    """SQL-ish lines that compress a few times, in 1 MiB chunks (each chunk a little different)."""
    base = "".join(
        f"INSERT INTO t VALUES ({i}, 'user-{i * seed % 9973}', now());\n" for i in range(20_000)
    ).encode()[: 1 << 20]
    for n in range(0, total, len(base)):
        yield f"-- chunk {n}\n".encode() + base[: min(len(base), total - n)]


def test_gzip_blob_is_plain_multi_member_gzip(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store", chunked=False)
    raw = b"".join(text_like(10 << 20))
    info = store.put(iter([raw]), Codec.GZIP)
    path = store.path_for(info.digest, Codec.GZIP)
    assert path.name.endswith(".sql.gz") and path.parent.name == info.digest[:2]
    out = subprocess.run(["gunzip", "-c", str(path)], capture_output=True, check=True).stdout
    assert out == raw
    assert gzip.decompress(path.read_bytes()) == raw
    members = path.read_bytes().count(b"\x1f\x8b\x08\x00\x00\x00\x00\x00")
    assert members >= (10 << 20) // codecs_mod.GZIP_MEMBER


def test_same_input_gives_identical_bytes(tmp_path: Path) -> None:
    a = LocalStore(tmp_path / "a", chunked=False).put(text_like(3 << 20), Codec.GZIP)
    b = LocalStore(tmp_path / "b", chunked=False).put(text_like(3 << 20), Codec.GZIP)
    assert a.path and b.path and a.path.read_bytes() == b.path.read_bytes()


def test_private_modes(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store", chunked=False)
    info = store.put(iter([b"data"]), Codec.GZIP)
    assert info.path is not None
    assert stat.S_IMODE(info.path.stat().st_mode) == 0o600
    for d in (store.root, store.blobs_dir, info.path.parent):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700


def test_flipped_byte_and_truncation_are_found(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store", chunked=False)
    info = store.put(text_like(2 << 20), Codec.GZIP)
    assert info.path is not None
    good = info.path.read_bytes()
    flipped = bytearray(good)
    flipped[len(flipped) // 2] ^= 0x40
    info.path.write_bytes(bytes(flipped))
    result = store.verify(info.digest, Codec.GZIP, expected_stored_sha256=info.stored_sha256)
    assert not result.ok and str(info.path) in (result.error or "")
    info.path.write_bytes(good[: len(good) - 100])
    result = store.verify(info.digest, Codec.GZIP)
    assert not result.ok and "truncated" in (result.error or "")
    info.path.write_bytes(good)
    assert store.verify(info.digest, Codec.GZIP, expected_stored_sha256=info.stored_sha256).ok


def test_failed_rename_leaves_no_digest_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStore(tmp_path / "store", chunked=False)

    def fail(*_: object) -> None:
        raise OSError(errno.EIO, "simulated I/O error")

    monkeypatch.setattr("store.local.os.link", fail)
    with pytest.raises(OSError, match="simulated"):
        store.put(iter([b"abc"]), Codec.GZIP)
    assert [p for p in store.root.rglob("*") if p.is_file()] == []


def test_disk_full_is_store_full_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStore(tmp_path / "store", chunked=False)
    real_fsync = os.fsync

    def full(fd: int) -> None:
        real_fsync(fd)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("store.local.os.fsync", full)
    with pytest.raises(StoreFull, match="no space left on device"):
        store.put(iter([b"abc" * 1000]), Codec.GZIP)
    assert [p for p in store.root.rglob("*") if p.is_file()] == []


def test_stale_temp_files_are_removed(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store", chunked=False)
    store.put(iter([b"x"]), Codec.GZIP)
    (store.blobs_dir / ".tmp-deadbeef").write_bytes(b"half a dump")
    assert store.remove_stale_temp_files() == 1
    assert not list(store.blobs_dir.glob(".tmp-*"))


def test_memory_stays_bounded_for_a_large_stream(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store", chunked=False)
    total = 128 << 20
    tracemalloc.start()
    try:
        info = store.put(text_like(total), Codec.GZIP, level=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.raw_size >= total
    assert peak < 64 << 20, f"peak traced memory {peak / 2**20:.0f} MiB"


def test_a_zstd_stream_of_many_frames_decompresses_whole() -> None:
    """An exported chunked artifact is one zstd frame per chunk (`zstd -d` reads them all);
    restoring such a file read only the first frame."""
    import zstandard

    frames = [zstandard.ZstdCompressor().compress(p) for p in (b"one\n", b"two\n", b"three\n")]
    stream = b"".join(frames)
    pieces = [stream[i : i + 7] for i in range(0, len(stream), 7)]
    assert b"".join(codecs_mod.decompress(iter(pieces), Codec.ZSTD)) == b"one\ntwo\nthree\n"
    with pytest.raises(EOFError, match="truncated"):
        b"".join(codecs_mod.decompress(iter([stream[:-3]]), Codec.ZSTD))


def test_a_symlink_planted_as_the_lock_file_is_refused_not_followed(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    info = store.put(text_like(1 << 16), Codec.GZIP)
    elsewhere = tmp_path / "elsewhere"
    (store.root / ".collect.lock").unlink(missing_ok=True)
    (store.root / ".collect.lock").symlink_to(elsewhere)
    with pytest.raises(StoreError, match="symbolic link"), store.collecting(wait=0):
        pass
    with pytest.raises(StoreError, match="symbolic link"):
        store.materialize(info.digest, Codec.GZIP, tmp_path / "out.sql.gz")
    assert not elsewhere.exists() and not (tmp_path / "out.sql.gz").exists()


def test_a_symlink_planted_as_a_writers_journal_is_refused_not_followed(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    owner = "a" * 32
    store.write_as(owner)
    home = store.roots.owner_dir(owner)
    home.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    (home / f"wrote.{store.roots.token}").symlink_to(elsewhere)
    with pytest.raises(StoreError, match="symbolic link"):
        store.put(text_like(1 << 16), Codec.GZIP)
    assert not elsewhere.exists()

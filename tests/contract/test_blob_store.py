"""One contract, every BlobStore implementation (LocalStore on disk, MemoryStore)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from store import AgeKeys, BlobCorrupted, BlobStore, Codec, LocalStore, MemoryStore
from tests.age_keys import age_keys

RAW = [b"-- dump\n", os.urandom(300_000), b"x" * 5_000_000, "ünïcødé 🚀\n".encode()]


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    """With age keys, so the encrypted codecs (gzip+age, ...) follow the same contract."""
    keys: AgeKeys = age_keys(tmp_path)
    if request.param == "local":
        return LocalStore(tmp_path / "store", keys)
    return MemoryStore(keys)


@pytest.mark.parametrize("codec", list(Codec))
def test_round_trip_and_digest_of_raw_bytes(store: BlobStore, codec: Codec) -> None:
    info = store.put(iter(RAW), codec)
    raw = b"".join(RAW)
    assert info.digest == hashlib.sha256(raw).hexdigest()
    assert (info.raw_size, info.created, info.codec) == (len(raw), True, codec)
    assert store.exists(info.digest, codec)
    with store.open_raw(info.digest, codec) as chunks:
        assert b"".join(chunks) == raw
    result = store.verify(info.digest, codec, expected_stored_sha256=info.stored_sha256)
    assert result.ok and result.raw_size == len(raw) and result.stored_size == info.stored_size


@pytest.mark.parametrize("codec", list(Codec))
def test_same_content_is_stored_once(store: BlobStore, codec: Codec) -> None:
    first = store.put(iter(RAW), codec)
    second = store.put(iter([b"".join(RAW)]), codec)  # chunked differently, same bytes
    assert second.created is False
    assert (second.digest, second.stored_sha256) == (first.digest, first.stored_sha256)
    assert [d for d, c, _ in store.iter_blobs() if c == codec] == [first.digest]


def test_empty_input_is_a_valid_blob(store: BlobStore) -> None:
    info = store.put(iter([]), Codec.GZIP)
    assert info.digest == hashlib.sha256(b"").hexdigest()
    assert store.verify(info.digest, Codec.GZIP).ok


def test_progress_reports_raw_bytes(store: BlobStore) -> None:
    seen: list[int] = []
    store.put(iter(RAW), Codec.GZIP, progress=seen.append)
    assert seen[-1] == sum(map(len, RAW)) and seen == sorted(seen)


def test_delete_and_missing(store: BlobStore) -> None:
    info = store.put(iter(RAW), Codec.ZSTD)
    assert store.delete(info.digest, Codec.ZSTD) is True
    assert store.delete(info.digest, Codec.ZSTD) is False
    assert not store.exists(info.digest, Codec.ZSTD)
    result = store.verify(info.digest, Codec.ZSTD)
    assert not result.ok and result.error and "missing" in result.error


def test_a_failing_producer_stores_nothing(store: BlobStore) -> None:
    def broken() -> object:
        yield b"partial dump"
        raise RuntimeError("pg_dump died")

    with pytest.raises(RuntimeError, match="pg_dump died"):
        store.put(broken(), Codec.GZIP)  # type: ignore[arg-type]
    assert list(store.iter_blobs()) == []


def test_bad_digest_is_refused(store: BlobStore) -> None:
    with pytest.raises(ValueError, match="not a SHA-256"):
        store.exists("../../etc/passwd", Codec.GZIP)


@pytest.mark.parametrize("codec", list(Codec))
def test_stored_bytes_are_taken_verbatim_only_when_they_hash_right(
    store: BlobStore, tmp_path: Path, codec: Codec
) -> None:
    identity = tmp_path / "age.key"  # the store fixture's keys: encrypted codecs need them
    recipient = identity.read_text().split("# public key: ")[1].split()[0]
    source = LocalStore(
        tmp_path / "source", AgeKeys(recipients=(recipient,), identity_file=identity)
    )
    info = source.put(iter(RAW), codec)
    assert info.path is not None
    stored = info.path.read_bytes()
    with pytest.raises(BlobCorrupted):
        flipped = stored[:-1] + bytes([stored[-1] ^ 1])
        store.put_stored([flipped], info.digest, codec, stored_sha256=info.stored_sha256)
    assert list(store.iter_blobs()) == []
    assert store.put_stored([stored], info.digest, codec, stored_sha256=info.stored_sha256)
    assert not store.put_stored([stored], info.digest, codec, stored_sha256=info.stored_sha256)
    assert store.verify(info.digest, codec, expected_stored_sha256=info.stored_sha256).ok

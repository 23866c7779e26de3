"""One contract, every BlobStore implementation: LocalStore on disk (chunked, and writing
whole blobs as the first layout did), MemoryStore."""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
from pathlib import Path

import pyrage
import pytest

from store import AgeKeys, BlobCorrupted, BlobInfo, BlobStore, Codec, LocalStore, MemoryStore, Ref
from tests.age_keys import age_keys

RAW = [b"-- dump\n", os.urandom(300_000), b"x" * 5_000_000, "ünïcødé 🚀\n".encode()]


@pytest.fixture(params=["local", "local-whole", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    """With age keys, so the encrypted codecs (gzip+age, ...) follow the same contract."""
    keys: AgeKeys = age_keys(tmp_path)
    if request.param == "local":
        return LocalStore(tmp_path / "store", keys)
    if request.param == "local-whole":
        return LocalStore(tmp_path / "store", keys, chunked=False)
    return MemoryStore(keys)


def opened(data: bytes, codec: Codec, store: BlobStore) -> bytes:
    """An encrypted file decrypted (what `age -d -i KEY FILE` prints); others as they are."""
    if not codec.sealed:
        return data
    assert isinstance(store, LocalStore | MemoryStore)
    return bytes(pyrage.decrypt(data, store.keys.identities()))


def plain_of_file(data: bytes, codec: Codec, store: BlobStore) -> bytes:
    """What a person gets from an artifact's file: gunzip, zstd -d, or the file itself."""
    if codec.sealed:  # age -d -i KEY FILE, then as a plain file
        data, codec = opened(data, codec, store), codec.compression
    if codec is Codec.GZIP:
        return gzip.decompress(data)
    if codec is Codec.ZSTD:  # the zstd program, as a person would (every frame)
        done = subprocess.run(["zstd", "-dc"], input=data, capture_output=True, check=True)
        return done.stdout
    return data


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
        tmp_path / "source",
        AgeKeys(recipients=(recipient,), identity_file=identity),
        chunked=False,  # put_stored takes a whole blob's stored bytes
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


# -- roots: a store several owners (catalogs) share ----------------------------------------

LABEL = {"backup_dir": "/srv/a/backups"}


def _ref(info: BlobInfo) -> Ref:
    return Ref(info.digest, info.codec)


def _garbage(store: BlobStore, owner: str, known: set[Ref], releasing: set[Ref]) -> set[Ref]:
    return {s.ref for s in store.plan_collection(owner, known=known, releasing=releasing).garbage}


def test_an_owner_collects_what_it_wrote_or_released_and_nothing_another_holds(
    store: BlobStore,
) -> None:
    store.register("cat-a", label=LABEL, known=set(), referenced=[])
    store.register("cat-b", label={"backup_dir": "/srv/b"}, known=set(), referenced=[])
    store.write_as("cat-a")
    x = _ref(store.put([b"written by a"], Codec.GZIP))
    store.write_as("cat-b")
    y = _ref(store.put([b"written by b"], Codec.GZIP))
    plan = store.plan_collection("cat-a", known=set(), releasing=set())
    assert {s.ref for s in plan.garbage} == {x}  # a's orphan
    assert {s.ref for s in plan.others_orphans} == {y}  # b's: never on a's word
    assert plan.garbage_bytes == sum(s.size for s in plan.garbage) > 0
    store.add_roots("cat-b", [x])  # b's backup deduplicated onto x
    assert _garbage(store, "cat-a", set(), set()) == set()
    assert _garbage(store, "cat-a", {x}, {x}) == set()  # a released it; b holds it
    store.set_roots("cat-b", [])  # b deleted that backup
    assert _garbage(store, "cat-a", {x}, {x}) == {x}
    assert [o.id for o in store.owners()] == ["cat-a", "cat-b"]
    assert store.registered("cat-b") and not store.registered("cat-c")


def test_blobs_nobody_wrote_wait_for_a_person_to_adopt_them(store: BlobStore) -> None:
    store.register("cat-a", label=LABEL, known=set(), referenced=[])
    z = _ref(store.put([b"written before roots, or by an old version"], Codec.GZIP))
    plan = store.plan_collection("cat-a", known=set(), releasing=set())
    assert plan.garbage == [] and {s.ref for s in plan.unowned} == {z}
    adopted = store.adopt("cat-a")
    assert [s.ref for s in adopted.adopted] == [z]
    assert _garbage(store, "cat-a", set(), set()) == {z}


def test_the_first_registration_in_a_store_without_roots_keeps_what_was_there(
    store: BlobStore,
) -> None:
    mine = _ref(store.put([b"this catalog's old backup"], Codec.GZIP))
    other = _ref(store.put([b"another catalog's, unregistered"], Codec.GZIP))
    # Before anyone registers, the plan already answers as the registration will (dry runs).
    assert _garbage(store, "cat-a", {mine}, {mine}) == set()
    store.register("cat-a", label=LABEL, known={mine}, referenced=[])
    plan = store.plan_collection("cat-a", known={mine}, releasing={mine})
    assert plan.garbage == []
    assert {s.ref for s in plan.kept_for_others} == {mine}
    assert {s.ref for s in plan.legacy_kept} == {other}
    adopted = store.adopt("cat-a")
    assert adopted.legacy_released == 2 and [s.ref for s in adopted.adopted] == sorted(
        [mine, other]
    )
    assert _garbage(store, "cat-a", {mine}, {mine}) == {mine, other}


def test_a_store_that_only_its_registering_catalog_wrote_keeps_no_legacy(
    store: BlobStore,
) -> None:
    mine = _ref(store.put([b"this catalog's old backup"], Codec.GZIP))
    assert _garbage(store, "cat-a", {mine}, {mine}) == {mine}
    store.register("cat-a", label=LABEL, known={mine}, referenced=[])
    assert _garbage(store, "cat-a", {mine}, {mine}) == {mine}


def test_a_forgotten_owner_holds_nothing_and_what_it_wrote_waits_for_adoption(
    store: BlobStore,
) -> None:
    store.register("cat-a", label=LABEL, known=set(), referenced=[])
    store.register("cat-gone", label={"backup_dir": "/lost"}, known=set(), referenced=[])
    store.write_as("cat-gone")
    held = _ref(store.put([b"the lost catalog's backup"], Codec.GZIP))
    orphan = _ref(store.put([b"the lost catalog's failed backup"], Codec.GZIP))
    store.add_roots("cat-gone", [held])
    assert _garbage(store, "cat-a", {held}, {held}) == set()
    store.forget("cat-gone")
    assert [o.id for o in store.owners()] == ["cat-a"]
    plan = store.plan_collection("cat-a", known={held}, releasing={held})
    assert {s.ref for s in plan.garbage} == {held}
    assert {s.ref for s in plan.unowned} == {orphan}


def _damage(store: BlobStore, info: BlobInfo, how: str) -> None:
    if isinstance(store, LocalStore):
        path = store.path_for(info.digest, info.codec)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2] if how == "truncate" else _flip(data))
    else:
        assert isinstance(store, MemoryStore)
        key = (info.digest, info.codec)
        data = store.blobs[key]
        store.blobs[key] = data[: len(data) // 2] if how == "truncate" else _flip(data)


def _flip(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]


@pytest.mark.parametrize("how", ["flip", "truncate"])
@pytest.mark.parametrize("codec", [Codec.GZIP, Codec.ZSTD, Codec.GZIP_AGE])
def test_a_damaged_copy_is_replaced_by_the_next_identical_put(
    store: BlobStore, codec: Codec, how: str
) -> None:
    first = store.put(iter(RAW), codec)
    _damage(store, first, how)
    assert not store.verify(first.digest, codec).ok
    again = store.put(iter(RAW), codec)
    assert again.created is False and again.repaired_from is not None
    assert again.repair_reason and again.repaired_from != again.stored_sha256
    assert store.verify(first.digest, codec, expected_stored_sha256=again.stored_sha256).ok
    if not codec.sealed:  # same bytes as first written: the old records match again
        assert again.stored_sha256 == first.stored_sha256


def test_a_valid_copy_written_another_way_is_kept(store: BlobStore) -> None:
    first = store.put(iter(RAW), Codec.GZIP, level=1)
    again = store.put(iter(RAW), Codec.GZIP, level=9)
    assert again.repaired_from is None
    assert again.stored_sha256 == first.stored_sha256  # the bytes that are there


@pytest.mark.parametrize("codec", list(Codec))
def test_the_artifact_file_is_what_a_person_restores_from(
    store: BlobStore, tmp_path: Path, codec: Codec
) -> None:
    info = store.put(iter(RAW), codec)
    dest = tmp_path / "views" / "x_full"
    size = store.materialize(info.digest, codec, dest, expected_stored_sha256=info.stored_sha256)
    data = dest.read_bytes()
    assert size == len(data) and oct(dest.stat().st_mode & 0o777) == "0o600"
    again = b"".join(store.file_stream(info.digest, codec))
    if codec.sealed:  # age: new bytes each time (and a backup's own file: compressed whole)
        assert plain_of_file(again, codec, store) == b"".join(RAW)
    else:
        assert again == data
    assert plain_of_file(data, codec, store) == b"".join(RAW)
    if codec.compression is not Codec.NONE and not codec.sealed:
        assert len(data) == info.stored_size  # what export writes is the artifact's stored size


def test_an_empty_artifact_file_is_a_valid_gzip_file(store: BlobStore, tmp_path: Path) -> None:
    info = store.put(iter([]), Codec.GZIP)
    store.materialize(info.digest, Codec.GZIP, tmp_path / "empty.sql.gz")
    assert gzip.decompress((tmp_path / "empty.sql.gz").read_bytes()) == b""


@pytest.mark.parametrize("codec", [Codec.GZIP, Codec.ZSTD, Codec.NONE, Codec.GZIP_AGE])
def test_added_bytes_count_what_a_put_newly_stored(store: BlobStore, codec: Codec) -> None:
    first = store.put(iter(RAW), codec)
    assert first.added_bytes > 0
    again = store.put(iter(RAW), codec)
    assert (again.created, again.added_bytes) == (False, 0)


@pytest.mark.parametrize("read_data", [False, True])
def test_every_grade_of_verify_passes_a_sound_artifact(store: BlobStore, read_data: bool) -> None:
    info = store.put(iter(RAW), Codec.ZSTD)
    result = store.verify(
        info.digest, Codec.ZSTD, expected_stored_sha256=info.stored_sha256, read_data=read_data
    )
    assert result.ok and result.raw_size == sum(map(len, RAW))
    wrong = store.verify(info.digest, Codec.ZSTD, expected_stored_sha256="0" * 64)
    assert not wrong.ok and wrong.error and "0" * 64 in wrong.error

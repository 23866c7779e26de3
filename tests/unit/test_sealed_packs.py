"""Encrypted chunked artifacts: new chunks go into sealed packs (each one age file), dedup works
with or without the identity, reading needs it, plain and sealed packs never mix the wrong way,
repacking writes sealed packs, and a pack decrypted by hand is the plain pack format
(store/chunked/sealed.py)."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pyrage
import pytest

from store import AgeKeys, Codec, DecryptionKeyError, LocalStore
from store.age import AGE_MAGIC
from store.chunked.packs import parse_trailer
from tests.age_keys import age_keys, write_identity
from tests.unit.test_pack_collection import BASE, collect, packs, version

MARKER = b"dl-marker-sealed-7f3a"
PLAIN = BASE.replace(b"payload", MARKER, 200)


def sealed(tmp_path: Path) -> tuple[LocalStore, AgeKeys]:
    keys = age_keys(tmp_path)
    return LocalStore(tmp_path / "store", keys), keys


def read(store: LocalStore, digest: str, codec: Codec = Codec.GZIP_AGE) -> bytes:
    with store.open_raw(digest, codec) as raw:
        return b"".join(raw)


def pack_files(store: LocalStore) -> list[Path]:
    return sorted(store.root.glob("packs/??/*.pack"))


def test_a_sealed_artifact_round_trips_and_no_pack_holds_plaintext(tmp_path: Path) -> None:
    store, keys = sealed(tmp_path)
    assert MARKER in PLAIN
    info = store.put([PLAIN], Codec.GZIP_AGE)
    assert info.path is not None and info.path.name.endswith(".gzip+age.manifest")
    assert info.chunks > 10 and info.new_chunks == info.chunks
    found = pack_files(store)
    assert found
    for pack in found:
        data = pack.read_bytes()
        assert data.startswith(AGE_MAGIC)
        assert MARKER not in data and b"DLPACK" not in data
        assert hashlib.sha256(data).hexdigest() == pack.name.removesuffix(".pack")
        assert pack.stat().st_mode & 0o777 == 0o600
    assert read(store, info.digest) == PLAIN
    assert store.verify(info.digest, Codec.GZIP_AGE, read_data=True).ok
    # Its file: the stored (gzip) stream, age-encrypted: age -d -i KEY FILE | gunzip
    file = b"".join(store.file_stream(info.digest, Codec.GZIP_AGE, info.stored_sha256))
    assert file.startswith(AGE_MAGIC) and MARKER not in file
    assert gzip.decompress(pyrage.decrypt(file, keys.identities())) == PLAIN


def test_a_pack_decrypted_by_hand_is_the_plain_pack_format(tmp_path: Path) -> None:
    store, keys = sealed(tmp_path)
    info = store.put([PLAIN], Codec.GZIP_AGE)
    (pack,) = pack_files(store)
    plain = pyrage.decrypt(pack.read_bytes(), keys.identities())  # what `age -d` gives
    assert plain.startswith(b"DLPACK1\n")
    entries = parse_trailer(plain, len(plain), pack)
    assert len(entries) == info.chunks
    e = entries[0]
    chunk = gzip.decompress(plain[e.offset : e.offset + e.stored_len])
    assert hashlib.sha256(chunk).digest() == e.digest


def test_dedup_works_encrypted_and_without_the_identity(tmp_path: Path) -> None:
    store, keys = sealed(tmp_path)
    first = store.put([BASE], Codec.GZIP_AGE)
    backup_host = LocalStore(tmp_path / "store", AgeKeys(recipients=keys.recipients))
    second = backup_host.put([version(1)], Codec.GZIP_AGE)
    assert second.created and second.new_chunks < second.chunks // 5
    assert second.added_bytes < first.added_bytes // 5
    for pack in pack_files(store):
        assert pack.read_bytes().startswith(AGE_MAGIC)
    checked = backup_host.verify(second.digest, Codec.GZIP_AGE, read_data=True)
    assert checked.ok and checked.note and "no identity_file" in checked.note
    with pytest.raises(DecryptionKeyError, match="no age identity file configured"):
        read(backup_host, second.digest)
    assert read(store, second.digest) == version(1)


def test_a_wrong_key_is_a_decryption_key_error(tmp_path: Path) -> None:
    store, _ = sealed(tmp_path)
    info = store.put([PLAIN], Codec.GZIP_AGE)
    other = tmp_path / "other.key"
    recipient = write_identity(other)
    wrong = LocalStore(tmp_path / "store", AgeKeys(recipients=(recipient,), identity_file=other))
    with pytest.raises(DecryptionKeyError, match=f"age identity file {other} holds no key"):
        read(wrong, info.digest)
    with pytest.raises(DecryptionKeyError, match="holds no key"):
        wrong.verify(info.digest, Codec.GZIP_AGE, read_data=True)


def test_plain_and_sealed_packs_mix_only_the_safe_way(tmp_path: Path) -> None:
    store, _ = sealed(tmp_path)
    plain = store.put([BASE], Codec.GZIP)  # before encryption: plain packs
    plain_packs = set(pack_files(store))
    enc = store.put([version(1)], Codec.GZIP_AGE)  # dedups against the plain chunks
    assert enc.new_chunks < enc.chunks // 5
    new = set(pack_files(store)) - plain_packs
    assert new and all(p.read_bytes().startswith(AGE_MAGIC) for p in new)
    # encryption off again: a plain backup never needs the key (it stores those chunks again)
    keyless = LocalStore(tmp_path / "store")
    again = keyless.put([version(1)], Codec.GZIP)
    assert 0 < again.new_chunks < again.chunks // 5
    assert read(keyless, again.digest, Codec.GZIP) == version(1)
    assert read(keyless, plain.digest, Codec.GZIP) == BASE
    assert read(store, enc.digest) == version(1)


def test_repack_writes_sealed_packs_and_needs_the_identity(tmp_path: Path) -> None:
    store, keys = sealed(tmp_path)
    datas = [BASE, version(3, 150), version(3, 150, keep=40)]
    infos = [store.put([d], Codec.GZIP_AGE) for d in datas]
    store.delete(infos[1].digest, Codec.GZIP_AGE)
    backup_host = LocalStore(tmp_path / "store", AgeKeys(recipients=keys.recipients))
    plan, _ = collect(backup_host)
    assert not plan.repack and plan.sealed_kept == 1  # version 3's pack: mostly dead, kept
    before = packs(store)
    dry = store.plan_packs(0.3)
    plan, freed = collect(store)
    assert len(plan.repack) == 1 and plan.new_packs and plan.new_packs[0].sealed
    assert [p.size for p in plan.new_packs] == [p.size for p in dry.new_packs]
    assert freed == sum(before.values()) - sum(packs(store).values()) > 0
    # age pads its header at random (up to ~150 bytes): the dry run counts its mean
    assert abs(freed - dry.freed_bytes) <= 100 * len(plan.new_packs)
    for pack in pack_files(store):
        assert pack.read_bytes().startswith(AGE_MAGIC)
    for i in (0, 2):
        assert read(store, infos[i].digest) == datas[i]
        assert store.verify(infos[i].digest, Codec.GZIP_AGE, read_data=True).ok
    store.delete(infos[2].digest, Codec.GZIP_AGE)
    plan, _ = collect(backup_host)  # wholly dead sealed packs go without the identity
    assert plan.delete and read(store, infos[0].digest) == BASE


def test_the_index_is_rebuilt_from_sealed_packs_with_the_identity(tmp_path: Path) -> None:
    store, keys = sealed(tmp_path)
    info = store.put([PLAIN], Codec.GZIP_AGE)
    index = store.root / "index.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{index}{suffix}").unlink(missing_ok=True)
    backup_host = LocalStore(tmp_path / "store", AgeKeys(recipients=keys.recipients))
    with backup_host.chunks.index() as idx:
        assert idx.pack_names() == set()  # its trailer is encrypted: not indexed here
    for suffix in ("", "-wal", "-shm"):
        Path(f"{index}{suffix}").unlink(missing_ok=True)
    assert read(store, info.digest) == PLAIN
    with store.chunks.index() as idx:
        assert idx.sealed_packs() == {p.name.removesuffix(".pack") for p in pack_files(store)}

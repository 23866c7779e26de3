"""The age layer of the store: streaming encryption after compression, decryption with the
identity file, clear errors for missing and wrong keys, damage detected, nothing in plaintext."""

from __future__ import annotations

import gzip
import hashlib
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from store import AgeKeys, BlobCorrupted, Codec, DecryptionKeyError, LocalStore, StoreError
from store.age import AGE_MAGIC, decrypt, encrypt
from tests.age_keys import age_keys, write_identity

MARKER = b"dl-marker-5b0e2c6a-unit"
RAW = [b"COPY public.t (v) FROM stdin;\n", MARKER * 1000, os.urandom(3 << 20), b"\\.\n"]


def sealed_store(tmp_path: Path) -> tuple[LocalStore, AgeKeys]:
    """A store writing whole age blobs, as before sealed packs (still read: these tests hold
    that; sealed packs: tests/unit/test_sealed_packs.py)."""
    keys = age_keys(tmp_path)
    return LocalStore(tmp_path / "store", keys, chunked=False), keys


def test_stream_round_trip_in_bounded_pieces(tmp_path: Path) -> None:
    keys = age_keys(tmp_path)
    raw = [os.urandom(1 << 20) for _ in range(6)]
    out = list(encrypt(iter(raw), keys.parsed_recipients()))
    assert out[0].startswith(AGE_MAGIC)
    # age's STREAM chunks: 64 KiB of plaintext plus a 16-byte tag each; nothing buffers it all
    assert max(len(piece) for piece in out) <= (64 << 10) + 16
    back = b"".join(decrypt(iter(out), keys.identities(), what="x", key_file=None))
    assert back == b"".join(raw)


def test_encryption_is_not_deterministic(tmp_path: Path) -> None:
    recipients = age_keys(tmp_path).parsed_recipients()
    assert b"".join(encrypt(iter([b"same"]), recipients)) != b"".join(
        encrypt(iter([b"same"]), recipients)
    )


@pytest.mark.parametrize("codec", [Codec.GZIP_AGE, Codec.ZSTD_AGE, Codec.NONE_AGE])
def test_stored_file_is_age_with_no_plaintext(tmp_path: Path, codec: Codec) -> None:
    store, _ = sealed_store(tmp_path)
    info = store.put(iter(RAW), codec)
    assert info.path is not None
    data = info.path.read_bytes()
    assert data.startswith(AGE_MAGIC + b"\n-> X25519 ")
    assert MARKER not in data and MARKER[:12] not in data
    assert info.path.name.endswith(".age") and info.path.stat().st_mode & 0o777 == 0o600
    assert info.stored_sha256 == hashlib.sha256(data).hexdigest()
    assert info.digest == hashlib.sha256(b"".join(RAW)).hexdigest()
    with pytest.raises(OSError):  # not a gzip file: a person needs the key, and age -d
        gzip.decompress(data)
    with store.open_raw(info.digest, codec) as chunks:
        assert b"".join(chunks) == b"".join(RAW)


def test_encrypted_and_plain_copies_are_different_objects(tmp_path: Path) -> None:
    store, _ = sealed_store(tmp_path)
    plain = store.put(iter(RAW), Codec.GZIP)
    sealed = store.put(iter(RAW), Codec.GZIP_AGE)
    assert plain.digest == sealed.digest and sealed.created
    assert plain.path != sealed.path and plain.stored_sha256 != sealed.stored_sha256
    assert sealed.path is not None and sealed.path.name == f"{sealed.digest}.sql.gz.age"
    assert sorted(c for _, c, _ in store.iter_blobs()) == [Codec.GZIP, Codec.GZIP_AGE]
    again = store.put(iter(RAW), Codec.GZIP_AGE)  # deduplicated by the raw digest
    assert not again.created and again.stored_sha256 == sealed.stored_sha256


def test_wrong_key_is_one_clear_error(tmp_path: Path) -> None:
    store, _ = sealed_store(tmp_path)
    info = store.put(iter(RAW), Codec.GZIP_AGE)
    other = tmp_path / "other" / "age.key"
    write_identity(other)
    wrong = LocalStore(tmp_path / "store", AgeKeys(identity_file=other))
    with pytest.raises(DecryptionKeyError, match=f"age identity file {other} holds no key"):
        wrong.verify(info.digest, Codec.GZIP_AGE, expected_stored_sha256=info.stored_sha256)
    with (
        pytest.raises(DecryptionKeyError, match="holds no key"),
        wrong.open_raw(info.digest, Codec.GZIP_AGE) as chunks,
    ):
        b"".join(chunks)
    assert DecryptionKeyError.exit_code == 2


def test_missing_unreadable_and_bad_identity_files(tmp_path: Path) -> None:
    store, _ = sealed_store(tmp_path)
    info = store.put(iter(RAW), Codec.GZIP_AGE)
    missing = tmp_path / "nope.key"
    garbage = tmp_path / "garbage.key"
    garbage.write_text("AGE-SECRET-KEY-1NOTAKEYATALL-secret-looking\n")
    empty = tmp_path / "empty.key"
    empty.write_text("# only a comment\n")
    garbage.chmod(0o600)
    empty.chmod(0o600)
    shared = tmp_path / "shared.key"
    write_identity(shared)
    shared.chmod(0o644)
    secret = shared.read_text().split()[-1]
    assert secret.startswith("AGE-SECRET-KEY-1")
    cases = {
        shared: f"age identity file {shared} is readable by others (mode 644): chmod 600",
        missing: f"age identity file {missing} does not exist",
        garbage: f"age identity file {garbage} line 1 is not an age X25519 identity",
        empty: f"age identity file {empty} holds no age identity",
        tmp_path: f"age identity file {tmp_path} cannot be read",
    }
    for path, message in cases.items():
        reader = LocalStore(tmp_path / "store", AgeKeys(identity_file=path))
        with pytest.raises(DecryptionKeyError) as err:
            reader.verify(info.digest, Codec.GZIP_AGE)
        assert str(err.value).startswith(message)
        assert "secret-looking" not in str(err.value)  # never echo what a key file holds
        assert secret not in str(err.value)


def test_verify_without_identity_checks_the_stored_digest_only(tmp_path: Path) -> None:
    store, keys = sealed_store(tmp_path)
    info = store.put(iter(RAW), Codec.GZIP_AGE)
    assert info.path is not None
    backup_host = LocalStore(tmp_path / "store", AgeKeys(recipients=keys.recipients))
    result = backup_host.verify(
        info.digest, Codec.GZIP_AGE, expected_stored_sha256=info.stored_sha256
    )
    assert result.ok and result.note and "stored digest checked only" in result.note
    data = bytearray(info.path.read_bytes())
    data[-100] ^= 0x01
    info.path.chmod(0o600)
    info.path.write_bytes(bytes(data))
    flipped = backup_host.verify(
        info.digest, Codec.GZIP_AGE, expected_stored_sha256=info.stored_sha256
    )
    assert not flipped.ok and flipped.error and "stored bytes hash to" in flipped.error
    # With the key, the damage is found by age's authentication too.
    full = store.verify(info.digest, Codec.GZIP_AGE)
    assert not full.ok and full.error and "cannot decrypt" in full.error


def test_truncated_blob_is_corruption_not_a_key_problem(tmp_path: Path) -> None:
    store, _ = sealed_store(tmp_path)
    info = store.put(iter(RAW), Codec.ZSTD_AGE)
    assert info.path is not None
    info.path.write_bytes(info.path.read_bytes()[:-5000])
    result = store.verify(info.digest, Codec.ZSTD_AGE)
    assert not result.ok and result.error and "damaged or truncated" in result.error
    with pytest.raises(BlobCorrupted), store.open_raw(info.digest, Codec.ZSTD_AGE) as chunks:
        b"".join(chunks)


def test_encrypting_without_recipients_or_with_a_bad_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no age recipient configured"):
        LocalStore(tmp_path / "a").put(iter(RAW), Codec.GZIP_AGE)
    bad = LocalStore(tmp_path / "b", AgeKeys(recipients=("age1notarecipient",)))
    with pytest.raises(StoreError, match="is not an age X25519 recipient"):
        bad.put(iter(RAW), Codec.GZIP_AGE)
    assert not (tmp_path / "a" / "sha256").exists() or not any(
        (tmp_path / "a" / "sha256").iterdir()
    )


def test_a_failing_producer_keeps_its_error_and_leaves_nothing(tmp_path: Path) -> None:
    store, _ = sealed_store(tmp_path)

    def broken() -> Iterator[bytes]:
        yield os.urandom(1 << 20)
        raise RuntimeError("pg_dump died")

    with pytest.raises(RuntimeError, match="pg_dump died"):
        store.put(broken(), Codec.GZIP_AGE)
    assert list(store.iter_blobs()) == []
    assert list(store.blobs_dir.glob(".tmp-*")) == []


def test_a_reader_that_stops_early_stops_the_worker(tmp_path: Path) -> None:
    store, _ = sealed_store(tmp_path)
    info = store.put(iter([os.urandom(4 << 20)]), Codec.NONE_AGE)
    with store.open_raw(info.digest, Codec.NONE_AGE) as chunks:
        first = next(iter(chunks))
        assert first
        chunks.close()  # type: ignore[attr-defined]
    assert not [t for t in threading.enumerate() if t.name == "age"]


def test_missing_pyrage_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The one boundary faked here: an installation without the optional `age` extra.
    keys = age_keys(tmp_path)
    monkeypatch.setitem(sys.modules, "pyrage", None)
    with pytest.raises(StoreError, match=r"pip install 'dumpledger\[age\]'"):
        LocalStore(tmp_path / "store", keys).put(iter(RAW), Codec.GZIP_AGE)


def test_restoring_an_encrypted_file_from_outside_the_catalog_says_what_to_do(
    tmp_path: Path,
) -> None:
    from usecases.errors import BadInput
    from usecases.restore.source import detect_codec

    keys = age_keys(tmp_path)
    dump = tmp_path / "copy_full.sql.gz.age"
    dump.write_bytes(
        b"".join(encrypt(iter([gzip.compress(b"SELECT 1;\n")]), keys.parsed_recipients()))
    )
    with pytest.raises(BadInput, match=r"is age-encrypted: .*age -d -i KEYFILE"):
        detect_codec(dump)


def test_decrypted_dumps_of_dead_restores_are_removed_on_open(tmp_path: Path) -> None:
    import subprocess

    from usecases.context import remove_dead_decrypted

    finished = subprocess.Popen(["true"])
    finished.wait()  # its pid is no longer alive (and reaped)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    dead = tmp / f"decrypted-{finished.pid}-abc.dump"
    alive = tmp / f"decrypted-{os.getpid()}-def.dump"
    other = tmp / "notes.txt"
    for path in (dead, alive, other):
        path.write_bytes(MARKER)
    assert remove_dead_decrypted(tmp) == [dead]
    assert not dead.exists() and alive.exists() and other.exists()

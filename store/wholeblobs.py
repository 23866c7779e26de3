"""The first layout: one whole blob per artifact, <root>/sha256/<2 hex>/<64 hex><suffix>.

A blob streams through a temp file in <root>/sha256 (the same filesystem), fsynced, then
linked into place: exclusive even against a concurrent writer, so a digest already present is
never written twice. It is read, verified and deleted whole. LocalStore (store/local.py) reads
these beside the chunked artifacts; it writes them only when told to (`chunked=False`) and
when a copy of an older store brings them (`put_stored`).
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from store.age import AgeKeys
from store.codecs import SUFFIXES, Codec
from store.errors import BlobCorrupted, DecryptionKeyError, StoreError
from store.files import fsync_dir as _fsync_dir
from store.files import full_disk_is_store_full, open_blob
from store.pipeline import prefetch
from store.results import BlobInfo, VerifyResult
from store.streams import (
    DIGEST,
    _Counting,
    check_digest,
    opened_stream,
    read_chunks,
    sealed_stream,
)
from store.streams import hash_file as _hash_file

TMP_PREFIX = ".tmp-"
Progress = Callable[[int], None]


def write_tmp(tmp: Path, data: Iterable[bytes]) -> tuple[str, int]:
    """Write `data` to a new 0600 file `tmp`, fsynced; its SHA-256 and size."""
    sha, size = hashlib.sha256(), 0
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        for piece in data:
            written = fh.write(piece)
            if written != len(piece):
                raise OSError(errno.EIO, f"short write to {tmp}")
            sha.update(piece)
            size += len(piece)
        fh.flush()
        os.fsync(fh.fileno())
    return sha.hexdigest(), size


def write_checked(tmp: Path, data: Iterable[bytes], sha256: str, what: str) -> None:
    """`write_tmp`, then BlobCorrupted unless the bytes hash to `sha256` (a copy taken from
    elsewhere: an offsite target)."""
    actual, _ = write_tmp(tmp, data)
    if actual != sha256:
        raise BlobCorrupted(
            f"{what}: the copy hashes to {actual}, not {sha256}; verify the copy it came "
            "from (dumpledger verify --target)"
        )


class WholeBlobs:
    def __init__(
        self,
        root: Path,
        keys: AgeKeys,
        mkdir: Callable[[Path], None],
        claim: Callable[[str, Codec], None],
    ) -> None:
        self.dir = root / "sha256"
        self.keys = keys
        self._mkdir = mkdir  # directories 0700, as the store makes them
        self._claim = claim  # journals a write as its writer's before it is published

    def path(self, digest: str, codec: Codec) -> Path:
        digest = check_digest(digest)
        return self.dir / digest[:2] / f"{digest}{SUFFIXES[Codec(codec)]}"

    def file(self, digest: str, codec: Codec) -> Path | None:
        path = self.path(digest, codec)
        return path if path.is_file() else None

    def put(
        self,
        chunks: Iterable[bytes],
        codec: Codec,
        *,
        level: int | None,
        threads: int,
        progress: Progress | None,
    ) -> BlobInfo:
        self._mkdir(self.dir)
        tmp = self.dir / f"{TMP_PREFIX}{secrets.token_hex(8)}"
        raw = _Counting(chunks, progress)
        with full_disk_is_store_full(self.dir):
            try:
                # Reading the producer and hashing the raw bytes overlap with compression.
                stored_sha, stored_size = write_tmp(
                    tmp, sealed_stream(prefetch(raw, depth=16), codec, self.keys, level, threads)
                )
                digest = raw.sha.hexdigest()
                final = self.path(digest, codec)
                self._claim(digest, codec)
                created = self.link(tmp, final)
                repair: tuple[str, str] | None = None
                if not created:  # describe the bytes that are really there, unless damaged
                    there = _hash_file(final)
                    if there[0] != stored_sha:  # not the same bytes: are they a valid copy?
                        repair = self._replace_if_damaged(tmp, final, digest, codec, there[0])
                    if repair is None:
                        stored_sha, stored_size = there
            finally:
                tmp.unlink(missing_ok=True)
        return BlobInfo(
            digest=digest,
            codec=codec,
            raw_size=raw.size,
            stored_size=stored_size,
            stored_sha256=stored_sha,
            path=final,
            created=created,
            added_bytes=stored_size if created or repair else 0,
            repaired_from=repair[0] if repair else None,
            repair_reason=repair[1] if repair else None,
        )

    def _replace_if_damaged(
        self, tmp: Path, final: Path, digest: str, codec: Codec, there: str
    ) -> tuple[str, str] | None:
        """A dedup hit whose stored copy differs from the fresh one (another level, another
        encryption, or damage): keep it if it verifies, else the fresh bytes replace it in
        one rename. Returns (the damaged copy's SHA-256, what was wrong) when replaced."""
        check = self.verify(digest, codec, None, None)
        if check.ok:
            return None
        os.replace(tmp, final)
        _fsync_dir(final.parent)
        return there, check.error or "failed verification"

    def put_stored(
        self, chunks: Iterable[bytes], digest: str, codec: Codec, *, stored_sha256: str
    ) -> bool:
        """Take a blob's stored (compressed) bytes as they are, e.g. from an offsite copy.

        Published only if they hash to `stored_sha256`; False when the digest was present.
        """
        final = self.path(digest, codec)
        self._mkdir(self.dir)
        tmp = self.dir / f"{TMP_PREFIX}{secrets.token_hex(8)}"
        try:
            write_checked(tmp, chunks, stored_sha256, f"blob {digest}")
            self._claim(digest, codec)
            return self.link(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)

    def link(self, tmp: Path, final: Path) -> bool:
        """Link tmp as final unless final exists (exclusive even against a concurrent writer);
        the caller removes tmp."""
        self._mkdir(final.parent)
        try:
            os.link(tmp, final)
        except FileExistsError:
            return False
        _fsync_dir(final.parent)
        return True

    @contextmanager
    def open(self, digest: str, codec: Codec) -> Iterator[Iterator[bytes]]:
        """The blob's uncompressed (and decrypted) bytes, as a stream."""
        path = self.path(digest, codec)
        with open_blob(path, digest) as fh:
            yield opened_stream(read_chunks(fh), Codec(codec), self.keys, f"blob {path}")

    def verify(
        self,
        digest: str,
        codec: Codec,
        expected_stored_sha256: str | None,
        progress: Progress | None,
    ) -> VerifyResult:
        """Re-read, decompress and re-hash the blob; problems are reported, not raised. An
        encrypted blob without the identity: its stored bytes only."""
        codec = Codec(codec)
        path = self.path(digest, codec)
        if not path.is_file():
            return VerifyResult.failed(digest, f"blob file {path} is missing")
        if codec.sealed and self.keys.identity_file is None:
            stored_sha, stored_size = _hash_file(path)
            return VerifyResult.stored_only(
                digest, stored_sha, stored_size, expected_stored_sha256, path
            )
        stored = hashlib.sha256()
        stored_size = 0

        def stored_chunks(fh: BinaryIO) -> Iterator[bytes]:
            nonlocal stored_size
            for chunk in read_chunks(fh):
                stored.update(chunk)
                stored_size += len(chunk)
                yield chunk

        raw = _Counting((), progress)
        try:
            with path.open("rb") as fh:
                # Reading and decompressing overlap with hashing the raw bytes.
                plain = opened_stream(stored_chunks(fh), codec, self.keys, f"blob {path}")
                raw.chunks = prefetch(plain)
                for _ in raw:
                    pass
        except DecryptionKeyError:
            raise  # the key is wrong, not the blob: nothing to record against it
        except (EOFError, OSError, ValueError, StoreError) as exc:
            return VerifyResult.failed(digest, f"{path}: cannot decompress: {exc}")
        except Exception as exc:  # zstandard.ZstdError and friends
            return VerifyResult.failed(digest, f"{path}: cannot decompress: {exc}")
        return VerifyResult.check(
            digest,
            raw.sha.hexdigest(),
            raw.size,
            stored.hexdigest(),
            stored_size,
            expected_stored_sha256,
            path,
        )

    def delete(self, digest: str, codec: Codec) -> bool:
        path = self.path(digest, codec)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        _fsync_dir(path.parent)
        return True

    def __iter__(self) -> Iterator[tuple[str, Codec, Path]]:
        by_suffix = {suffix: codec for codec, suffix in SUFFIXES.items()}
        if not self.dir.is_dir():
            return
        for path in sorted(self.dir.glob("??/*")):
            digest, _, _ = path.name.partition(".")
            codec = by_suffix.get(path.name[len(digest) :])
            if codec is not None and DIGEST.fullmatch(digest):
                yield digest, codec, path

    def remove_stale_temp_files(self, older_than_seconds: float) -> int:
        if not self.dir.is_dir():
            return 0
        removed = 0
        cutoff = time.time() - older_than_seconds
        for tmp in self.dir.glob(f"{TMP_PREFIX}*"):
            if tmp.stat().st_mtime <= cutoff:
                tmp.unlink(missing_ok=True)
                removed += 1
        return removed

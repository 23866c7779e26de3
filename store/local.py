"""The local store: blobs under <root>/sha256/<2 hex>/<64 hex><suffix>.

Writes stream through a temp file in <root>/sha256 (same filesystem), which is fsynced and
renamed into place; a digest already present is never written twice. Blob files are 0600 and
directories 0700 (not read-only 0400: cleanup must be able to remove them without chmod).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import re
import secrets
import time
from collections.abc import Callable, Collection, Container, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from store import age
from store.age import AgeKeys
from store.codecs import READ_CHUNK, SUFFIXES, Codec, compress, decompress
from store.errors import BlobCorrupted, BlobMissing, DecryptionKeyError, StoreError, StoreFull
from store.pipeline import prefetch
from store.results import BlobInfo, VerifyResult
from store.rootdir import RootDir
from store.roots import (
    AdoptResult,
    CollectionPlan,
    OwnerInfo,
    Ref,
    adoptable,
    check_owner,
)
from store.roots import plan as plan_for

DIGEST = re.compile(r"^[0-9a-f]{64}$")
TMP_PREFIX = ".tmp-"
LOCK_FILE = ".collect.lock"
Progress = Callable[[int], None]


def check_digest(digest: str) -> str:
    if not DIGEST.fullmatch(digest):
        raise ValueError(f"not a SHA-256 hex digest: {digest!r}")
    return digest


def read_chunks(fh: BinaryIO, size: int = READ_CHUNK) -> Iterator[bytes]:
    while chunk := fh.read(size):
        yield chunk


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _hash_file(path: Path) -> tuple[str, int]:
    sha, size = hashlib.sha256(), 0
    with path.open("rb") as fh:
        for chunk in read_chunks(fh):
            sha.update(chunk)
            size += len(chunk)
    return sha.hexdigest(), size


class _Counting:
    """Hashes and counts the raw bytes as the compressor pulls them."""

    def __init__(self, chunks: Iterable[bytes], progress: Progress | None) -> None:
        self.chunks = chunks
        self.sha = hashlib.sha256()
        self.size = 0
        self.progress = progress

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.sha.update(chunk)
            self.size += len(chunk)
            if self.progress:
                self.progress(self.size)
            yield chunk


def sealed_stream(
    chunks: Iterable[bytes], codec: Codec, keys: AgeKeys, level: int | None, threads: int
) -> Iterator[bytes]:
    """Compress, then age-encrypt when the codec says so (recipients checked up front)."""
    recipients = keys.parsed_recipients() if codec.sealed else None
    stream = compress(chunks, codec, level, threads)
    return stream if recipients is None else age.encrypt(stream, recipients)


def opened_stream(
    chunks: Iterable[bytes], codec: Codec, keys: AgeKeys, what: str
) -> Iterator[bytes]:
    """Decrypt when the codec says so (identities loaded up front), then decompress."""
    if codec.sealed:
        chunks = age.decrypt(chunks, keys.identities(), what=what, key_file=keys.identity_file)
    return decompress(chunks, codec)


class LocalStore:
    def __init__(self, root: Path, keys: AgeKeys | None = None) -> None:
        self.root = Path(root)
        self.blobs_dir = self.root / "sha256"
        self.keys = keys or AgeKeys()
        self.roots = RootDir(self.root)
        self.writer: str | None = None  # whose journal records this object's writes

    def path_for(self, digest: str, codec: Codec) -> Path:
        digest = check_digest(digest)
        return self.blobs_dir / digest[:2] / f"{digest}{SUFFIXES[Codec(codec)]}"

    def exists(self, digest: str, codec: Codec) -> bool:
        return self.path_for(digest, codec).is_file()

    def put_file(self, fh: BinaryIO, codec: Codec, **kwargs: object) -> BlobInfo:
        return self.put(read_chunks(fh), codec, **kwargs)  # type: ignore[arg-type]

    def put(
        self,
        chunks: Iterable[bytes],
        codec: Codec,
        *,
        level: int | None = None,
        threads: int = 2,
        progress: Progress | None = None,
    ) -> BlobInfo:
        """Stream `chunks` in; return where they landed and whether new bytes were stored."""
        codec = Codec(codec)
        self._mkdir(self.blobs_dir)
        tmp = self.blobs_dir / f"{TMP_PREFIX}{secrets.token_hex(8)}"
        raw = _Counting(chunks, progress)
        try:
            # Reading the producer and hashing the raw bytes overlap with compression.
            stored_sha, stored_size = self._write_tmp(
                tmp, sealed_stream(prefetch(raw, depth=16), codec, self.keys, level, threads)
            )
            digest = raw.sha.hexdigest()
            final = self.path_for(digest, codec)
            self._claim(digest, codec)
            created = self._link(tmp, final)
            repair: tuple[str, str] | None = None
            if not created:  # describe the bytes that are really there, unless damaged
                there = _hash_file(final)
                if there[0] != stored_sha:  # not the same bytes: are they a valid copy?
                    repair = self._replace_if_damaged(tmp, final, digest, codec, there[0])
                if repair is None:
                    stored_sha, stored_size = there
            tmp.unlink(missing_ok=True)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.errno == errno.ENOSPC:
                raise StoreFull(str(self.blobs_dir)) from None
            raise
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return BlobInfo(
            digest=digest,
            codec=codec,
            raw_size=raw.size,
            stored_size=stored_size,
            stored_sha256=stored_sha,
            path=final,
            created=created,
            repaired_from=repair[0] if repair else None,
            repair_reason=repair[1] if repair else None,
        )

    def _replace_if_damaged(
        self, tmp: Path, final: Path, digest: str, codec: Codec, there: str
    ) -> tuple[str, str] | None:
        """A dedup hit whose stored copy differs from the fresh one (another level, another
        encryption, or damage): keep it if it verifies, else the fresh bytes replace it in
        one rename. Returns (the damaged copy's SHA-256, what was wrong) when replaced."""
        check = self.verify(digest, codec)
        if check.ok:
            return None
        os.replace(tmp, final)
        _fsync_dir(final.parent)
        return there, check.error or "failed verification"

    def _claim(self, digest: str, codec: Codec) -> None:
        """Journal the write as the writer's before the blob is published (see store.roots)."""
        if self.writer is not None:
            self.roots.journal(self.writer, Ref(digest, Codec(codec)))

    def put_stored(
        self, chunks: Iterable[bytes], digest: str, codec: Codec, *, stored_sha256: str
    ) -> bool:
        """Take a blob's stored (compressed) bytes as they are, e.g. from an offsite copy.

        Published only if they hash to `stored_sha256`; False when the digest was present.
        """
        final = self.path_for(digest, codec)
        self._mkdir(self.blobs_dir)
        tmp = self.blobs_dir / f"{TMP_PREFIX}{secrets.token_hex(8)}"
        try:
            actual, _ = self._write_tmp(tmp, chunks)
            if actual != stored_sha256:
                raise BlobCorrupted(
                    f"blob {digest}: the copy hashes to {actual}, not {stored_sha256}; "
                    "verify the copy it came from (dumpledger verify --target)"
                )
            self._claim(digest, codec)
            return self._link(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)

    def _link(self, tmp: Path, final: Path) -> bool:
        """Link tmp as final unless final exists (exclusive even against a concurrent writer);
        the caller removes tmp."""
        self._mkdir(final.parent)
        try:
            os.link(tmp, final)
        except FileExistsError:
            return False
        _fsync_dir(final.parent)
        return True

    def _write_tmp(self, tmp: Path, data: Iterable[bytes]) -> tuple[str, int]:
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

    def _mkdir(self, path: Path) -> None:
        if not path.is_dir():
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
            for p in (self.root, self.blobs_dir, path):
                if p.is_dir():
                    os.chmod(p, 0o700)

    @contextmanager
    def open_raw(self, digest: str, codec: Codec) -> Iterator[Iterator[bytes]]:
        """Yield an iterator over the blob's uncompressed bytes."""
        path = self.path_for(digest, codec)
        try:
            fh = path.open("rb")
        except FileNotFoundError:
            raise BlobMissing(
                f"blob {digest} is missing from {path.parent}; run `dumpledger verify --all`"
            ) from None
        with fh:
            yield opened_stream(read_chunks(fh), Codec(codec), self.keys, f"blob {path}")

    def verify(
        self,
        digest: str,
        codec: Codec,
        *,
        expected_stored_sha256: str | None = None,
        progress: Progress | None = None,
    ) -> VerifyResult:
        """Re-read, decompress and re-hash; problems are reported, not raised."""
        codec = Codec(codec)
        path = self.path_for(digest, codec)
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
        path = self.path_for(digest, codec)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        _fsync_dir(path.parent)
        return True

    def iter_blobs(self) -> Iterator[tuple[str, Codec, Path]]:
        by_suffix = {suffix: codec for codec, suffix in SUFFIXES.items()}
        if not self.blobs_dir.is_dir():
            return
        for path in sorted(self.blobs_dir.glob("??/*")):
            digest, _, _ = path.name.partition(".")
            codec = by_suffix.get(path.name[len(digest) :])
            if codec is not None and DIGEST.fullmatch(digest):
                yield digest, codec, path

    # -- collection protocol ---------------------------------------------------------------
    # A backup holds a shared lock from its first put until the catalog references its blobs
    # (restores and drills hold it while they read). The collector takes the lock exclusively,
    # so it never sees a blob that is written or deduplicated but not yet referenced; inside
    # that window it re-checks each candidate in a catalog transaction before removing it.
    # flock is advisory and per host: the store must be on a local filesystem.

    @contextmanager
    def protect(self) -> Iterator[None]:
        """Hold blobs against collection (shared; many holders at once)."""
        with self._lock(fcntl.LOCK_SH, wait=None):
            yield

    @contextmanager
    def collecting(self, wait: float = 0.0) -> Iterator[bool]:
        """Exclusive hold for collection; yields False when holders did not leave in `wait`."""
        with self._lock(fcntl.LOCK_EX, wait=wait) as got:
            yield got

    @contextmanager
    def _lock(self, mode: int, wait: float | None) -> Iterator[bool]:
        self._mkdir(self.root)
        fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if wait is None:
                fcntl.flock(fd, mode)
            else:
                deadline = time.monotonic() + wait
                while True:
                    try:
                        fcntl.flock(fd, mode | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() >= deadline:
                            yield False
                            return
                        time.sleep(0.05)
            yield True
        finally:
            os.close(fd)  # releases the lock

    def remove_stale_temp_files(self, older_than_seconds: float = 0) -> int:
        """Remove temp files that crashed writers left behind."""
        if not self.blobs_dir.is_dir():
            return 0
        cutoff = time.time() - older_than_seconds
        removed = 0
        for tmp in self.blobs_dir.glob(f"{TMP_PREFIX}*"):
            if tmp.stat().st_mtime <= cutoff:
                tmp.unlink(missing_ok=True)
                removed += 1
        return removed

    # -- roots: which owners (catalogs) reference what, who wrote what (store.roots) -------

    def registered(self, owner: str) -> bool:
        return self.roots.registered(owner)

    def register(
        self,
        owner: str,
        *,
        label: Mapping[str, str],
        known: Container[Ref],
        referenced: Iterable[Ref],
    ) -> None:
        self._mkdir(self.root)
        self.roots.register(
            owner, label=label, known=known, referenced=referenced, present=self._present
        )

    def write_as(self, owner: str) -> None:
        self.writer = check_owner(owner)

    def add_roots(self, owner: str, refs: Iterable[Ref]) -> None:
        self.roots.add(owner, refs)

    def set_roots(self, owner: str, refs: Iterable[Ref]) -> None:
        self.roots.replace(owner, refs, lambda r: self.exists(r.digest, r.codec))

    def owners(self) -> list[OwnerInfo]:
        return self.roots.owners()

    def roots_of(self, owner: str) -> set[Ref]:
        return self.roots.roots_of(owner)

    def plan_collection(
        self, owner: str | None, *, known: Container[Ref], releasing: Collection[Ref]
    ) -> CollectionPlan:
        state = self.roots.state(self._present())
        return plan_for(state, owner, known=known, releasing=releasing)

    def forget(self, owner: str) -> None:
        self.roots.forget(owner)

    def adopt(self, owner: str) -> AdoptResult:
        state = self.roots.state(self._present())
        result = adoptable(state)
        self.roots.adopt(owner, [s.ref for s in result.adopted])
        return result

    def _present(self) -> dict[Ref, int]:
        out = {}
        for digest, codec, path in self.iter_blobs():
            try:
                out[Ref(digest, codec)] = path.stat().st_size
            except FileNotFoundError:
                continue
        return out

"""An in-memory store with the same contract as LocalStore, for fast tests of use cases."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from store.age import AgeKeys
from store.chunked import layout
from store.chunked.store import StoredObject
from store.codecs import SUFFIXES, Codec
from store.errors import BlobCorrupted, BlobMissing, DecryptionKeyError, StoreError
from store.files import write_file
from store.local import check_digest, opened_stream, read_chunks, sealed_stream
from store.results import BlobInfo, VerifyResult


class MemoryStore:
    def __init__(self, keys: AgeKeys | None = None) -> None:
        self.keys = keys or AgeKeys()
        self.blobs: dict[tuple[str, Codec], bytes] = {}
        self.holders = 0

    def path_for(self, digest: str, codec: Codec) -> Path:
        return Path("/memory") / f"{check_digest(digest)}{SUFFIXES[Codec(codec)]}"

    def exists(self, digest: str, codec: Codec) -> bool:
        return (check_digest(digest), Codec(codec)) in self.blobs

    def blob_file(self, digest: str, codec: Codec) -> Path | None:
        return None  # nothing is on disk

    def put_file(self, fh: BinaryIO, codec: Codec, **kwargs: object) -> BlobInfo:
        return self.put(read_chunks(fh), codec, **kwargs)  # type: ignore[arg-type]

    def put(
        self,
        chunks: Iterable[bytes],
        codec: Codec,
        *,
        level: int | None = None,
        threads: int = 2,
        progress: Callable[[int], None] | None = None,
        chunk_codec: Codec = Codec.GZIP,
    ) -> BlobInfo:
        """Whole blobs, as the first layout stored them (a small, fast stand-in)."""
        codec = Codec(codec)
        raw_sha, raw_size = hashlib.sha256(), 0

        def counted() -> Iterator[bytes]:
            nonlocal raw_size
            for chunk in chunks:
                raw_sha.update(chunk)
                raw_size += len(chunk)
                if progress:
                    progress(raw_size)
                yield chunk

        data = b"".join(sealed_stream(counted(), codec, self.keys, level, threads))
        key = (raw_sha.hexdigest(), codec)
        created = key not in self.blobs
        if created:
            self.blobs[key] = data
        stored = self.blobs[key]
        return BlobInfo(
            digest=key[0],
            codec=codec,
            raw_size=raw_size,
            stored_size=len(stored),
            stored_sha256=hashlib.sha256(stored).hexdigest(),
            path=self.path_for(key[0], codec),
            created=created,
            added_bytes=len(stored) if created else 0,
        )

    def put_stored(
        self, chunks: Iterable[bytes], digest: str, codec: Codec, *, stored_sha256: str
    ) -> bool:
        data = b"".join(chunks)
        actual = hashlib.sha256(data).hexdigest()
        if actual != stored_sha256:
            raise BlobCorrupted(f"blob {digest}: the copy hashes to {actual}, not {stored_sha256}")
        key = (check_digest(digest), Codec(codec))
        created = key not in self.blobs
        self.blobs.setdefault(key, data)
        return created

    @contextmanager
    def open_raw(self, digest: str, codec: Codec) -> Iterator[Iterator[bytes]]:
        try:
            data = self.blobs[(check_digest(digest), Codec(codec))]
        except KeyError:
            raise BlobMissing(f"blob {digest} is missing from the memory store") from None
        yield opened_stream(iter([data]), Codec(codec), self.keys, f"blob {digest}")

    def verify(
        self,
        digest: str,
        codec: Codec,
        *,
        expected_stored_sha256: str | None = None,
        progress: Callable[[int], None] | None = None,
        read_data: bool = False,
    ) -> VerifyResult:
        codec = Codec(codec)
        data = self.blobs.get((check_digest(digest), codec))
        if data is None:
            return VerifyResult.failed(digest, f"blob {digest} is missing")
        if codec.sealed and self.keys.identity_file is None:
            stored = hashlib.sha256(data).hexdigest()
            return VerifyResult.stored_only(
                digest, stored, len(data), expected_stored_sha256, "memory"
            )
        sha, size = hashlib.sha256(), 0
        try:
            for chunk in opened_stream(iter([data]), codec, self.keys, f"blob {digest}"):
                sha.update(chunk)
                size += len(chunk)
        except DecryptionKeyError:
            raise
        except Exception as exc:  # a corrupt stream, whatever the codec's error type
            return VerifyResult.failed(digest, f"cannot decompress: {exc}")
        return VerifyResult.check(
            digest,
            sha.hexdigest(),
            size,
            hashlib.sha256(data).hexdigest(),
            len(data),
            expected_stored_sha256,
            "memory",
        )

    def materialize(
        self, digest: str, codec: Codec, dest: Path, *, expected_stored_sha256: str | None = None
    ) -> int:
        return write_file(dest, self.file_stream(digest, codec, expected_stored_sha256))

    def file_stream(
        self, digest: str, codec: Codec, expected_stored_sha256: str | None = None
    ) -> Iterator[bytes]:
        data = self.blobs.get((check_digest(digest), Codec(codec)))
        if data is None:
            raise BlobMissing(f"blob {digest} is missing from the memory store")
        actual = hashlib.sha256(data).hexdigest()
        if expected_stored_sha256 and actual != expected_stored_sha256:
            raise BlobCorrupted(f"blob {digest} hashes to {actual}, not {expected_stored_sha256}")
        return iter([data])

    def objects_of(self, digest: str, codec: Codec, stored_sha256: str) -> list[StoredObject]:
        raise StoreError("the memory store has no files to copy")

    def adopt(self, rel: str, data: Iterable[bytes], *, sha256: str) -> bool:
        parsed = layout.parse_rel(rel)
        if parsed is None or parsed[0] != "blob" or parsed[2] is None:
            raise StoreError(f"the memory store takes whole blobs only, not {rel}")
        return self.put_stored(data, parsed[1], parsed[2], stored_sha256=sha256)

    def delete(self, digest: str, codec: Codec) -> bool:
        return self.blobs.pop((check_digest(digest), Codec(codec)), None) is not None

    def iter_blobs(self) -> Iterator[tuple[str, Codec, Path]]:
        for digest, codec in sorted(self.blobs):
            yield digest, codec, self.path_for(digest, codec)

    def remove_stale_temp_files(self, older_than_seconds: float = 0) -> int:
        return 0

    @contextmanager
    def protect(self) -> Iterator[None]:
        self.holders += 1
        try:
            yield
        finally:
            self.holders -= 1

    @contextmanager
    def collecting(self, wait: float = 0.0) -> Iterator[bool]:
        yield self.holders == 0

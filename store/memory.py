"""An in-memory store with the same contract as LocalStore, for fast tests of use cases."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Collection, Container, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from store.age import AgeKeys
from store.chunked import layout
from store.chunked.gc import PackPlan
from store.chunked.repack import PackReport
from store.chunked.store import StoredObject
from store.codecs import SUFFIXES, Codec
from store.errors import BlobCorrupted, BlobMissing, DecryptionKeyError, StoreError
from store.files import write_file
from store.local import check_digest, opened_stream, read_chunks, sealed_stream
from store.results import BlobInfo, VerifyResult
from store.roots import (
    AdoptResult,
    CollectionPlan,
    OwnerInfo,
    Ref,
    State,
    adoptable,
    check_owner,
    legacy_at_registration,
)
from store.roots import plan as plan_for


class MemoryStore:
    def __init__(self, keys: AgeKeys | None = None) -> None:
        self.keys = keys or AgeKeys()
        self.blobs: dict[tuple[str, Codec], bytes] = {}
        self.holders = 0
        self.writer: str | None = None
        self.labels: dict[str, dict[str, str]] = {}  # registered owners
        self.updated: dict[str, float] = {}
        self.root_sets: dict[str, set[Ref]] = {}
        self.journals: dict[str, set[Ref]] = {}
        self.legacy: set[Ref] = set()
        self.initialised = False

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
        repaired_from = reason = None
        if not created and self.blobs[key] != data:
            check = self.verify(*key)
            if not check.ok:  # a damaged copy: the fresh bytes replace it
                repaired_from = hashlib.sha256(self.blobs[key]).hexdigest()
                reason = check.error or "failed verification"
        if created or repaired_from:
            self._claim(*key)
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
            repaired_from=repaired_from,
            repair_reason=reason,
            added_bytes=len(stored) if created or repaired_from else 0,
        )

    def _claim(self, digest: str, codec: Codec) -> None:
        if self.writer is not None:
            self.journals.setdefault(self.writer, set()).add(Ref(digest, Codec(codec)))
            self.updated[self.writer] = time.time()

    def put_stored(
        self, chunks: Iterable[bytes], digest: str, codec: Codec, *, stored_sha256: str
    ) -> bool:
        data = b"".join(chunks)
        actual = hashlib.sha256(data).hexdigest()
        if actual != stored_sha256:
            raise BlobCorrupted(f"blob {digest}: the copy hashes to {actual}, not {stored_sha256}")
        key = (check_digest(digest), Codec(codec))
        created = key not in self.blobs
        if created:
            self._claim(*key)
            self.blobs[key] = data
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

    def adopt_file(self, rel: str, data: Iterable[bytes], *, sha256: str) -> bool:
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

    def disk_usage(self) -> int:
        return sum(len(data) for data in self.blobs.values())

    def plan_packs(
        self,
        threshold: float,
        *,
        excluding: Collection[Ref] = (),
        groups: Mapping[Ref, int] | None = None,
    ) -> PackPlan:
        return PackPlan()  # whole blobs only: no packs

    def collect_packs(self, threshold: float) -> tuple[PackPlan, PackReport]:
        return PackPlan(), PackReport()

    # -- roots (store.roots) ---------------------------------------------------------------

    def registered(self, owner: str) -> bool:
        return check_owner(owner) in self.labels

    def register(
        self,
        owner: str,
        *,
        label: Mapping[str, str],
        known: Container[Ref],
        referenced: Iterable[Ref],
    ) -> None:
        if not self.initialised:
            self.legacy = legacy_at_registration(self._present(), known)
            self.initialised = True
        self.labels[check_owner(owner)] = dict(label)
        self.root_sets[owner] = set(referenced)
        self.updated[owner] = time.time()

    def write_as(self, owner: str) -> None:
        self.writer = check_owner(owner)

    def add_roots(self, owner: str, refs: Iterable[Ref]) -> None:
        self.root_sets.setdefault(check_owner(owner), set()).update(refs)
        self.updated[owner] = time.time()

    def set_roots(self, owner: str, refs: Iterable[Ref]) -> None:
        self.root_sets[check_owner(owner)] = set(refs)
        mine = self.journals.get(owner, set())
        self.journals[owner] = {r for r in mine if r in self.blobs}
        self.updated[owner] = time.time()

    def owners(self) -> list[OwnerInfo]:
        return [
            OwnerInfo(
                id=owner,
                label=label,
                registered_at=None,
                updated_at=self.updated.get(owner, 0.0),
                refs=len(self.root_sets.get(owner, ())),
            )
            for owner, label in sorted(self.labels.items())
        ]

    def roots_of(self, owner: str) -> set[Ref]:
        return set(self.root_sets.get(check_owner(owner), ()))

    def plan_collection(
        self, owner: str | None, *, known: Container[Ref], releasing: Collection[Ref]
    ) -> CollectionPlan:
        return plan_for(self._state(), owner, known=known, releasing=releasing)

    def forget(self, owner: str) -> None:
        check_owner(owner)
        self.labels.pop(owner, None)
        self.root_sets.pop(owner, None)
        self.journals.pop(owner, None)
        self.updated.pop(owner, None)

    def adopt(self, owner: str) -> AdoptResult:
        result = adoptable(self._state())
        self.journals.setdefault(check_owner(owner), set()).update(s.ref for s in result.adopted)
        self.legacy = set()
        return result

    def _state(self) -> State:
        return State(
            present=self._present(),
            roots={o: set(r) for o, r in self.root_sets.items() if o in self.labels},
            journals={o: set(j) for o, j in self.journals.items()},
            legacy=set(self.legacy),
            initialised=self.initialised,
        )

    def _present(self) -> dict[Ref, int]:
        return {Ref(d, c): len(data) for (d, c), data in self.blobs.items()}

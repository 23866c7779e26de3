"""The port the use cases talk to; LocalStore and MemoryStore implement it."""

from __future__ import annotations

from collections.abc import Callable, Collection, Container, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from store.chunked.gc import PackPlan
from store.chunked.repack import PackReport
from store.chunked.store import StoredObject
from store.codecs import Codec
from store.results import BlobInfo, VerifyResult
from store.roots import AdoptResult, CollectionPlan, OwnerInfo, Ref


class BlobStore(Protocol):
    def path_for(self, digest: str, codec: Codec) -> Path:
        """The stored object whose SHA-256 is the artifact's stored_sha256 (a whole blob or a
        chunked artifact's manifest): for messages, not for reading the artifact."""
        ...

    def exists(self, digest: str, codec: Codec) -> bool: ...

    def blob_file(self, digest: str, codec: Codec) -> Path | None:
        """The file of an artifact stored whole (the first layout), readable in place; None
        for a chunked one."""
        ...

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
        """Store the stream under the SHA-256 of its bytes. A digest already present is not
        written again, unless its stored copy fails its check: then the fresh bytes replace
        it in one step (BlobInfo.repaired_from says so)."""
        ...

    def put_stored(
        self, chunks: Iterable[bytes], digest: str, codec: Codec, *, stored_sha256: str
    ) -> bool:
        """Take stored (compressed) bytes verbatim if they hash to `stored_sha256`."""
        ...

    def open_raw(self, digest: str, codec: Codec) -> AbstractContextManager[Iterator[bytes]]: ...

    def verify(
        self,
        digest: str,
        codec: Codec,
        *,
        expected_stored_sha256: str | None = None,
        progress: Callable[[int], None] | None = None,
        read_data: bool = False,
    ) -> VerifyResult:
        """Graded for chunked artifacts: stored objects re-hashed by default, every chunk
        decompressed and re-hashed with `read_data`; a whole blob is always read whole."""
        ...

    def materialize(
        self, digest: str, codec: Codec, dest: Path, *, expected_stored_sha256: str | None = None
    ) -> int:
        """Write the artifact's file (gzip/zstd stream; a custom dump as is) to `dest`."""
        ...

    def file_stream(
        self, digest: str, codec: Codec, expected_stored_sha256: str | None = None
    ) -> Iterator[bytes]:
        """The bytes `materialize` writes, checked as they are read."""
        ...

    def objects_of(self, digest: str, codec: Codec, stored_sha256: str) -> list[StoredObject]:
        """The files an offsite copy of the artifact needs, with their relative paths: the
        blob or manifest first (taken to hash to `stored_sha256`), then its packs."""
        ...

    def adopt_file(self, rel: str, data: Iterable[bytes], *, sha256: str) -> bool:
        """Take a file of another store at its relative path if it hashes to `sha256`."""
        ...

    def delete(self, digest: str, codec: Codec) -> bool: ...

    def iter_blobs(self) -> Iterator[tuple[str, Codec, Path]]: ...

    def remove_stale_temp_files(self, older_than_seconds: float = 0) -> int: ...

    def protect(self) -> AbstractContextManager[None]:
        """Shared hold: no blob is collected while any holder runs."""
        ...

    def collecting(self, wait: float = 0.0) -> AbstractContextManager[bool]:
        """Exclusive hold for collection; False when holders stayed longer than `wait`."""
        ...

    def disk_usage(self) -> int:
        """Bytes the store's files take (deduplicated: a chunk counts once)."""
        ...

    def plan_packs(
        self,
        threshold: float,
        *,
        excluding: Collection[Ref] = (),
        groups: Mapping[Ref, int] | None = None,
    ) -> PackPlan:
        """Read only: what `collect_packs` would do once the artifacts `excluding` are gone,
        exactly (a dry run); `groups` (artifact -> group) also gets, per group, the stored
        bytes of the chunks only that group's artifacts use."""
        ...

    def collect_packs(self, threshold: float) -> tuple[PackPlan, PackReport]:
        """Delete the packs no artifact present uses, repack those whose dead bytes exceed
        `threshold` of their size and the small ones; the caller holds `collecting()`."""
        ...

    # -- roots: the store shared by several owners (catalogs); see store.roots -------------

    def registered(self, owner: str) -> bool: ...

    def register(
        self,
        owner: str,
        *,
        label: Mapping[str, str],
        known: Container[Ref],
        referenced: Iterable[Ref],
    ) -> None:
        """Register `owner` with `referenced` as its roots; the first registration in a store
        without roots keeps the blobs present as legacy unless `known` has every one."""
        ...

    def write_as(self, owner: str) -> None:
        """Journal every later write of this object as `owner`'s (before it is published)."""
        ...

    def add_roots(self, owner: str, refs: Iterable[Ref]) -> None:
        """Add to `owner`'s roots: before the catalog event that references them."""
        ...

    def set_roots(self, owner: str, refs: Iterable[Ref]) -> None:
        """Replace `owner`'s roots and compact its journal; the caller holds collecting()."""
        ...

    def owners(self) -> list[OwnerInfo]: ...

    def roots_of(self, owner: str) -> set[Ref]: ...

    def plan_collection(
        self, owner: str | None, *, known: Container[Ref], releasing: Collection[Ref]
    ) -> CollectionPlan:
        """What `owner` may collect: read-only, the same answer a dry run and a real run get."""
        ...

    def forget(self, owner: str) -> None:
        """`owner`'s roots and journal go: what they held is kept until someone claims it."""
        ...

    def adopt(self, owner: str) -> AdoptResult:
        """Blobs in no roots and no journal become `owner`'s to collect; legacy roots go."""
        ...

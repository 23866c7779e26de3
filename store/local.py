"""The local store: chunked artifacts (store/chunked/: packs, manifests, an index) and the
first layout's whole blobs (store/wholeblobs.py), read side by side; which form an artifact
has, and which one to read while both are there, is decided here.

New artifacts are stored chunked; with encryption (age) their new chunks go into sealed
packs (store/chunked/sealed.py); whole age-encrypted blobs of before are still read. Files are
0600 and directories 0700 (not read-only 0400: cleanup must be able to remove them without
chmod).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Collection, Container, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import BinaryIO

from store.age import AgeKeys
from store.chunked import layout
from store.chunked.gc import PackPlan
from store.chunked.repack import PackReport
from store.chunked.sealed import PackKeys, sealed_file
from store.chunked.store import ChunkStore, StoredObject
from store.codecs import Codec
from store.errors import BlobCorrupted, BlobMissing, StoreError
from store.files import checked_copy, full_disk_is_store_full, write_file
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
from store.sealed_files import SealedFiles
from store.storelock import StoreLock
from store.streams import (
    check_digest,
    opened_stream,
    read_chunks,
    sealed_stream,
)
from store.streams import hash_file as _hash_file
from store.wholeblobs import TMP_PREFIX, WholeBlobs, write_checked

__all__ = ["LocalStore", "check_digest", "opened_stream", "read_chunks", "sealed_stream"]

Progress = Callable[[int], None]


class LocalStore:
    def __init__(self, root: Path, keys: AgeKeys | None = None, *, chunked: bool = True) -> None:
        self.root = Path(root)
        self.keys = keys or AgeKeys()
        self.whole = WholeBlobs(self.root, self.keys, self._mkdir, self._claim)
        self.blobs_dir = self.whole.dir
        self.chunks = ChunkStore(self.root, PackKeys(self.keys))
        self.sealed_files = SealedFiles(self.root / "files")  # encrypted puts' files
        self.chunked = chunked  # False writes whole blobs, as the first layout did
        self.roots = RootDir(self.root)
        self.writer: str | None = None  # whose journal records this object's writes
        self.lock = StoreLock(self.root, self._mkdir)

    def blob_path(self, digest: str, codec: Codec) -> Path:
        return self.whole.path(digest, codec)

    def path_for(self, digest: str, codec: Codec) -> Path:
        """The stored object that identifies the artifact (its stored_sha256 is this file's):
        the whole blob, or else the manifest of a chunked artifact."""
        blob = self.blob_path(digest, codec)
        if blob.is_file() or not self.chunks.has(digest, codec):
            return blob
        return self.chunks.manifest_path(digest, codec)

    def blob_file(self, digest: str, codec: Codec) -> Path | None:
        return self.whole.file(digest, codec)

    def _is_whole(self, digest: str, codec: Codec, expected: str | None = None) -> bool:
        """Read the whole blob (else the chunked form)? When both are there (`store migrate`
        between storing the chunked form and removing the blob: store/convert.py), the one
        whose SHA-256 is `expected` (the catalog's): the manifest's is cheap to hash."""
        if not self.blob_path(digest, codec).is_file():
            return False
        if expected and self.chunks.has(digest, codec):
            return _hash_file(self.chunks.manifest_path(digest, codec))[0] != expected
        return True

    def exists(self, digest: str, codec: Codec) -> bool:
        return self._is_whole(digest, codec) or self.chunks.has(digest, codec)

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
        chunk_codec: Codec = Codec.GZIP,
    ) -> BlobInfo:
        """Stream `chunks` in; return where they landed and whether new bytes were stored.

        Chunked unless the store writes whole blobs (an encrypted codec: into sealed packs);
        chunks of a "none" artifact (a custom-format dump) are compressed with `chunk_codec`.
        """
        codec = Codec(codec)
        if self.chunked:
            return self._put_chunked(chunks, codec, level, threads, progress, chunk_codec)
        return self.whole.put(chunks, codec, level=level, threads=threads, progress=progress)

    def _claim(self, digest: str, codec: Codec) -> None:
        """Journal the write as the writer's before it is published (see store.roots)."""
        if self.writer is not None:
            self.roots.journal(self.writer, Ref(digest, Codec(codec)))

    def _put_chunked(
        self,
        chunks: Iterable[bytes],
        codec: Codec,
        level: int | None,
        threads: int,
        progress: Progress | None,
        chunk_codec: Codec,
    ) -> BlobInfo:
        inner = codec.compression
        if inner is Codec.NONE:
            inner = Codec(chunk_codec).compression
        self._mkdir(self.root)
        tee = None
        if codec.sealed:  # its file too, as it goes (store/sealed_files.py)
            self.keys.parsed_recipients()
            chunks, tee = self.sealed_files.start(chunks, codec, self.keys, level, threads)
        with full_disk_is_store_full(self.root):
            try:
                out = self.chunks.put(
                    chunks,
                    codec,
                    chunk_codec=inner,
                    level=level,
                    threads=threads,
                    progress=progress,
                    claim=lambda digest: self._claim(digest, codec),
                )
                if tee is not None:
                    self.sealed_files.finish(tee, out.digest, codec, out.manifest_sha256)
            except BaseException:
                if tee is not None:
                    self.sealed_files.abort(tee)
                raise
        blob = self.blob_path(out.digest, codec)
        if blob.is_file():  # stored whole before chunking came: that blob stays the artifact
            if out.created:
                self.chunks.delete(out.digest, codec)
                out.added_bytes -= out.manifest_size
            sha, size = _hash_file(blob)
            return BlobInfo(
                digest=out.digest,
                codec=codec,
                raw_size=out.raw_size,
                stored_size=size,
                stored_sha256=sha,
                path=blob,
                created=False,
                added_bytes=out.added_bytes,  # its chunks, for the next backups to share
                chunks=out.chunks,
                new_chunks=out.new_chunks,
            )
        return BlobInfo(
            digest=out.digest,
            codec=codec,
            raw_size=out.raw_size,
            stored_size=out.stored_size,
            stored_sha256=out.manifest_sha256,
            path=self.chunks.manifest_path(out.digest, codec),
            chunked=True,
            created=out.created,
            added_bytes=out.added_bytes,
            chunks=out.chunks,
            new_chunks=out.new_chunks,
            repaired_from=out.repaired_from,
            repair_reason=out.repair_reason,
        )

    def put_stored(
        self, chunks: Iterable[bytes], digest: str, codec: Codec, *, stored_sha256: str
    ) -> bool:
        """Take a whole blob's stored bytes as they are (an offsite copy of an older store);
        published only if they hash to `stored_sha256`; False when the digest was present."""
        return self.whole.put_stored(chunks, digest, codec, stored_sha256=stored_sha256)

    def _mkdir(self, path: Path) -> None:
        if not path.is_dir():
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
            for p in (self.root, self.blobs_dir, path):
                if p.is_dir():
                    os.chmod(p, 0o700)

    @contextmanager
    def open_raw(self, digest: str, codec: Codec) -> Iterator[Iterator[bytes]]:
        """Yield an iterator over the artifact's uncompressed bytes (a chunked artifact's
        chunks are checked as they are read, the whole digest at the end)."""
        with self._reading():
            path = self.blob_path(digest, codec)
            if not path.is_file() and self.chunks.has(digest, codec):
                self.chunks.manifest(digest, codec)  # a damaged manifest fails here, not later
                chunks = self.chunks.read(digest, codec)
                try:
                    yield chunks
                finally:
                    chunks.close()  # a reader that stopped early: packs, manifest closed now
                return
            with self.whole.open(digest, codec) as whole:
                yield whole

    def verify(
        self,
        digest: str,
        codec: Codec,
        *,
        expected_stored_sha256: str | None = None,
        progress: Progress | None = None,
        read_data: bool = False,
    ) -> VerifyResult:
        """Check the stored artifact; problems are reported, not raised.

        A whole blob is always re-read, decompressed and re-hashed. A chunked artifact: its
        manifest and every pack it uses re-hashed; with `read_data`, also every chunk and the
        whole stream decompressed and re-hashed.
        """
        with self._reading():
            return self._verify(digest, codec, expected_stored_sha256, progress, read_data)

    def _verify(
        self,
        digest: str,
        codec: Codec,
        expected_stored_sha256: str | None,
        progress: Progress | None,
        read_data: bool,
    ) -> VerifyResult:
        codec = Codec(codec)
        whole = self._is_whole(digest, codec, expected_stored_sha256)
        if not whole and self.chunks.has(digest, codec):
            return self.chunks.verify(
                digest,
                codec,
                expected_stored_sha256=expected_stored_sha256,
                progress=progress,
                read_data=read_data,
            )
        return self.whole.verify(digest, codec, expected_stored_sha256, progress)

    def delete(self, digest: str, codec: Codec) -> bool:
        """Remove the blob or the manifest (a chunked artifact's chunks stay in their packs
        until `collect_packs` finds no manifest uses them)."""
        gone = self.chunks.delete(digest, codec)
        return self.whole.delete(digest, codec) or gone

    def iter_blobs(self) -> Iterator[tuple[str, Codec, Path]]:
        """Every stored artifact: whole blobs, then chunked ones (by their manifests)."""
        yield from self.whole
        yield from self.chunks.iter_manifests()

    # -- files for people and for copies -------------------------------------------------

    def materialize(
        self, digest: str, codec: Codec, dest: Path, *, expected_stored_sha256: str | None = None
    ) -> int:
        """Write the artifact's file (what `gunzip -c FILE | psql` or pg_restore reads) to
        `dest`: a copy of a whole blob (checked against `expected_stored_sha256`), or a
        chunked artifact's chunks, each checked; 0600, atomically. Returns its size."""
        with self._reading():  # no repack pulls a pack from under the copy
            if not self._is_whole(digest, codec, expected_stored_sha256):  # run by run
                size = self.chunks.copy_as_written(digest, codec, dest, expected_stored_sha256)
                if size is None and Codec(codec).sealed:  # written as it was stored
                    size = self.sealed_files.take(digest, codec, dest, expected_stored_sha256)
                if size is not None:
                    return size
            return write_file(dest, self.file_stream(digest, codec, expected_stored_sha256))

    def file_stream(
        self, digest: str, codec: Codec, expected_stored_sha256: str | None = None
    ) -> Iterator[bytes]:
        """The bytes `materialize` writes, as a stream (export to stdout); the caller holds
        `protect()` while it reads (packs may be repacked otherwise)."""
        codec = Codec(codec)
        blob = self.blob_path(digest, codec)
        if self._is_whole(digest, codec, expected_stored_sha256) or not self.chunks.has(
            digest, codec
        ):
            return checked_copy(blob, digest, expected_stored_sha256)
        self.chunks.manifest(digest, codec)
        if expected_stored_sha256:
            actual, _ = _hash_file(self.chunks.manifest_path(digest, codec))
            if actual != expected_stored_sha256:
                raise BlobCorrupted(
                    f"manifest {self.chunks.manifest_path(digest, codec)} hashes to {actual}, "
                    f"not {expected_stored_sha256}; run `dumpledger verify --all`"
                )
        if codec.sealed:  # its file: the stored stream, age-encrypted (to today's recipients)
            return sealed_file(self.chunks.read(digest, codec, stored=True), self.chunks.keys)
        return self.chunks.file_bytes(digest, codec)

    def objects_of(self, digest: str, codec: Codec, stored_sha256: str) -> list[StoredObject]:
        """The files an offsite copy needs for this artifact: the blob, or the manifest and
        every pack its chunks are in. The first (blob or manifest) is taken to hash to
        `stored_sha256` (the catalog's); a pack hashes to its name."""
        blob = self.blob_path(digest, codec)
        if self._is_whole(digest, codec, stored_sha256) or not self.chunks.has(digest, codec):
            if not blob.is_file():
                raise BlobMissing(f"blob {digest} is missing from {blob.parent}")
            rel = layout.blob_rel(digest, codec)
            size = blob.stat().st_size
            return [StoredObject(rel=rel, path=blob, sha256=stored_sha256, size=size)]
        return self.chunks.objects(digest, codec, stored_sha256)

    def adopt_file(self, rel: str, data: Iterable[bytes], *, sha256: str) -> bool:
        """Take a file of another store (an offsite copy) at its relative path, if its bytes
        hash to `sha256`: a blob, a manifest or a pack (whose chunks are then indexed)."""
        parsed = layout.parse_rel(rel)
        if parsed is None:
            raise StoreError(f"{rel} is not a file of a dumpledger store")
        kind, digest, codec = parsed
        if kind == "blob":
            assert codec is not None
            return self.put_stored(data, digest, codec, stored_sha256=sha256)
        final = self.root / rel
        self._mkdir(final.parent)
        tmp = final.parent / f"{TMP_PREFIX}{secrets.token_hex(8)}"
        try:
            write_checked(tmp, data, sha256, rel)
            return self.chunks.adopt(rel, tmp, sha256)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    # -- collection protocol (store/storelock.py) -------------------------------------------

    def protect(self) -> AbstractContextManager[None]:
        """Hold blobs against collection (shared; many holders at once)."""
        return self.lock.shared()

    def collecting(self, wait: float = 0.0) -> AbstractContextManager[bool]:
        """Exclusive hold for collection; yields False when holders did not leave in `wait`."""
        return self.lock.exclusive(wait)

    def _reading(self) -> AbstractContextManager[None]:
        return self.lock.reading()

    def disk_usage(self) -> int:
        """Bytes the store's files take: packs, manifests, whole blobs, the index, roots
        (deduplicated: each chunk once, whatever the number of backups using it)."""
        total = 0
        if self.root.is_dir():
            for path in self.root.rglob("*"):
                try:
                    st = path.lstat()
                except FileNotFoundError:
                    continue
                if not path.is_symlink() and path.is_file():
                    total += st.st_size
        return total

    # -- pack collection (store/chunked/gc.py, store/chunked/repack.py) --------------------

    def plan_packs(
        self,
        threshold: float,
        *,
        excluding: Collection[Ref] = (),
        groups: Mapping[Ref, int] | None = None,
    ) -> PackPlan:
        """What `collect_packs` would do once the manifests `excluding` are gone (a dry run),
        and for each group of manifests the stored bytes of the chunks only it uses."""
        going = {(r.digest, Codec(r.codec)) for r in excluding}
        keyed = {(r.digest, Codec(r.codec)): g for r, g in (groups or {}).items()}
        return self.chunks.plan_packs(threshold, excluding=going, groups=keyed)

    def collect_packs(self, threshold: float) -> tuple[PackPlan, PackReport]:
        """Delete the packs no manifest present uses, repack the mostly dead and the small
        ones; the caller holds `collecting()`."""
        return self.chunks.collect_packs(threshold)

    def remove_stale_temp_files(self, older_than_seconds: float = 0) -> int:
        """Remove temp files that crashed writers left behind."""
        removed = self.chunks.remove_stale_temp_files(older_than_seconds)
        removed += self.sealed_files.remove_stale(max(older_than_seconds, 86400))
        return removed + self.whole.remove_stale_temp_files(older_than_seconds)

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

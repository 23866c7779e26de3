"""The chunked side of a local store: put, read, verify, list and adopt chunked artifacts.

An artifact is addressed by (digest of its whole raw stream, codec): its manifest lives at
manifests/<2 hex>/<digest>.<codec>.manifest and its SHA-256 is the artifact's stored_sha256.
Chunks are stored with the artifact's codec (gzip or zstd); a custom-format dump (codec
"none": its file is the raw dump) has its chunks compressed with `chunk_codec`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import threading
import time
from collections.abc import Callable, Container, Generator, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from store.chunked import crashpoint, layout
from store.chunked.compress import empty_stream
from store.chunked.extents import Run, copy_runs
from store.chunked.gc import PackPlan, Planner
from store.chunked.index import ChunkIndex, Location
from store.chunked.manifest import Manifest
from store.chunked.packs import hash_file, publish, read_trailer
from store.chunked.reader import Packs, locate, read_artifact
from store.chunked.refs import GONE
from store.chunked.repack import PackReport, execute
from store.chunked.sealed import PackKeys, is_sealed
from store.chunked.writer import ChunkWriter, Stored
from store.codecs import Codec
from store.errors import BlobCorrupted, BlobMissing, DecryptionKeyError, StoreError
from store.files import fsync_dir, write_atomically
from store.results import VerifyResult

Progress = Callable[[int], None]
DAMAGED_SUFFIX = ".damaged"  # a pack set aside: not read, not indexed, not collected yet
COPY_RUN = 4 << 20  # adjacent stored chunks copied in one read, up to this many bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredObject:
    """A file of the store, as an offsite copy names and checks it."""

    rel: str  # relative POSIX path under the store: the key under store/ on a target
    path: Path
    sha256: str
    size: int


class ChunkStore:
    def __init__(self, root: Path, keys: PackKeys | None = None) -> None:
        self.root = root
        self.keys = keys or PackKeys()  # age: sealed packs (store/chunked/sealed.py)
        self.packs_dir = root / layout.PACKS
        self.manifests_dir = root / layout.MANIFESTS
        self.index_path = root / layout.INDEX
        self._pack_ok: dict[tuple[str, int, int, int], bool] = {}  # this process's re-hashes
        # (digest, codec) -> (manifest SHA-256, stored size, packs) of this process's puts
        self._structures: dict[tuple[str, Codec], tuple[str, int, list[str]]] = {}
        # (digest, codec) -> (manifest SHA-256, where its chunks are) of this process's puts
        self._extents: dict[tuple[str, Codec], tuple[str, list[Run]]] = {}
        self._rehashing: set[str] = set()  # packs a put's background re-hash holds now
        self._rehash_lock = threading.Lock()

    def manifest_path(self, digest: str, codec: Codec) -> Path:
        return self.root / layout.manifest_rel(digest, codec)

    def pack_path(self, name: str) -> Path:
        return self.root / layout.pack_rel(name)

    def has(self, digest: str, codec: Codec) -> bool:
        return self.manifest_path(digest, codec).is_file()

    @contextmanager
    def index(self) -> Iterator[ChunkIndex]:
        idx = ChunkIndex(self.index_path, self.packs_dir, self.keys)
        try:
            yield idx
        finally:
            idx.close()

    def put(
        self,
        pieces: Iterable[bytes],
        codec: Codec,
        *,
        chunk_codec: Codec,
        level: int | None,
        threads: int,
        progress: Progress | None,
        claim: Callable[[str], None] | None = None,
    ) -> Stored:
        """Store the stream chunked; `claim(digest)` runs just before its manifest is
        published (the roots' journal records who wrote it: store.roots)."""

        def where(digest: str) -> Path:
            if claim is not None:
                claim(digest)
            return self.manifest_path(digest, codec)

        seal = self.keys if Codec(codec).sealed else None
        if seal is not None:
            seal.recipients()  # no recipient, or a bad one: said before the dump starts
        with self.index() as idx, self._rehashing_packs() as rehash:
            idx.reconcile()  # packs a killed writer published but did not index
            writer = ChunkWriter(
                idx, self.packs_dir, self.manifests_dir, chunk_codec, level, threads, rehash, seal
            )
            out = writer.put(pieces, codec, where, progress)
        # The put located every chunk: this process's read-back need not look them up again,
        # nor the copy of its file.
        self._structures[(out.digest, codec)] = (out.manifest_sha256, out.stored_size, out.packs)
        if out.extents is not None:
            self._extents[(out.digest, codec)] = (out.manifest_sha256, out.extents)
        return out

    @contextmanager
    def _rehashing_packs(self) -> Iterator[Callable[[str], None]]:
        """Re-hash, on a thread of their own while the put goes on, the packs the put names
        (those its chunks were found in, those it wrote), as the read-back would after it;
        the put ends when they are done, so its read-back finds them checked. The result of
        each is kept as `_check_pack` keeps its own: a damaged pack is reported, and set
        aside, by the read-back's `_check_pack`."""
        pool = ThreadPoolExecutor(1, thread_name_prefix="rehash")

        def submit(name: str) -> None:
            with self._rehash_lock:
                if name in self._rehashing:
                    return
                self._rehashing.add(name)
            pool.submit(self._rehash_pack, name)

        try:
            yield submit
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)

    def _rehash_pack(self, name: str) -> None:
        try:
            key = self._pack_key(name)
            if key[1] >= 0 and key not in self._pack_ok:
                self._pack_ok[key] = hash_file(self.pack_path(name))[0] == name
        except OSError:
            pass  # not kept: the read-back checks it again, and reports what is wrong
        finally:
            with self._rehash_lock:
                self._rehashing.discard(name)

    def manifest(self, digest: str, codec: Codec) -> Manifest:
        path = self.manifest_path(digest, codec)
        if not path.is_file():
            raise BlobMissing(f"artifact {digest} is missing: no manifest {path}")
        found = Manifest(path)
        if found.footer.digest != digest:
            raise BlobCorrupted(f"manifest {path} describes {found.footer.digest}, not {digest}")
        return found

    def read(
        self, digest: str, codec: Codec, *, stored: bool = False
    ) -> Generator[bytes, None, None]:
        """Raw bytes, or the file form (`stored`): for gzip/zstd the chunks' stored bytes,
        for "none" the raw dump. Every chunk and the whole digest are checked."""
        found = self.manifest(digest, codec)
        keep = stored and Codec(codec).compression is not Codec.NONE
        if keep and found.footer.chunks == 0:
            yield empty_stream(Codec(found.footer.chunk_codec))
        with self.index() as idx:
            yield from read_artifact(
                idx, self.packs_dir, found, digest, stored=keep, keys=self.keys
            )

    def file_bytes(self, digest: str, codec: Codec) -> Iterator[bytes]:
        """The artifact's file (see `read(stored=True)`). When every pack it uses re-hashed
        right in this process and is unchanged since (a backup's read-back just did that),
        its stored bytes are copied as they are; otherwise every chunk is decompressed and
        checked on the way."""
        found = self.manifest(digest, codec)
        plain = Codec(codec).compression is Codec.NONE or Codec(codec).sealed
        if plain or found.footer.chunks == 0:
            yield from self.read(digest, codec, stored=True)
            return
        _, packs = self._structure(found, digest, hash_file(found.path)[0])
        if not all(self._pack_ok.get(self._pack_key(name)) for name in packs):
            yield from self.read(digest, codec, stored=True)
            return
        yield from self._copy_stored(found, digest)

    def copy_as_written(
        self, digest: str, codec: Codec, dest: Path, expected: str | None
    ) -> int | None:
        """Write the artifact's file at `dest` from where this process's put stored its chunks
        (run by run, in the kernel), when every pack it uses re-hashed right in this process
        and is unchanged since (a backup's read-back just did that) and the manifest is the one
        that put wrote (and `expected`); its size. None when that does not hold: the caller
        copies it the way `file_bytes` does."""
        memo = self._extents.get((digest, Codec(codec)))
        whole_file = Codec(codec).sealed or Codec(codec).compression is Codec.NONE
        if memo is None or not memo[1] or whole_file:
            return None
        manifest_sha, runs = memo
        try:
            actual = hash_file(self.manifest_path(digest, codec))[0]
        except FileNotFoundError:
            return None
        if actual != manifest_sha or expected not in (None, "", actual):
            return None
        if not all(self._pack_ok.get(self._pack_key(name)) for name in {r[0] for r in runs}):
            return None
        return write_atomically(dest, lambda fd: copy_runs(runs, self.pack_path, fd))

    def _copy_stored(self, found: Manifest, digest: str) -> Iterator[bytes]:
        """Stored bytes in manifest order, adjacent chunks of a pack read at once; a pack
        not re-hashed yet in this process is re-hashed before it is read from."""
        codec = Codec(found.footer.chunk_codec)
        run: tuple[str, int, int] | None = None  # pack, offset, length
        packs = Packs(self.packs_dir, self.keys)
        try:
            with self.index() as idx:
                for records in found.records():
                    where = locate(idx, records, codec, f"artifact {digest}")
                    for d, _ in records:
                        loc = where[d]
                        adjacent = run and run[0] == loc.pack and run[1] + run[2] == loc.offset
                        if run and adjacent and run[2] < COPY_RUN:
                            run = (run[0], run[1], run[2] + loc.stored_len)
                            continue
                        if run:
                            yield packs.read(Location(run[0], run[1], run[2], 0))
                        if not self._pack_ok.get(self._pack_key(loc.pack)):
                            self._check_pack(loc.pack)
                        run = (loc.pack, loc.offset, loc.stored_len)
            if run:
                yield packs.read(Location(run[0], run[1], run[2], 0))
        finally:
            packs.close()

    # -- verify ----------------------------------------------------------------------------

    def verify(
        self,
        digest: str,
        codec: Codec,
        *,
        expected_stored_sha256: str | None,
        progress: Progress | None,
        read_data: bool,
    ) -> VerifyResult:
        """Default: the manifest's SHA-256, every chunk located, every pack it uses re-hashed
        against its name. `read_data`: also decompress and re-hash every chunk and the stream."""
        path = self.manifest_path(digest, codec)
        if not path.is_file():
            return VerifyResult.failed(digest, f"manifest {path} is missing")
        manifest_sha, _ = hash_file(path)
        note = None
        if Codec(codec).sealed and not self.keys.can_open:
            note = (
                "encrypted; stored digest checked only (no identity_file to decrypt with): "
                "the manifest and its packs"
            )
            read_data = False
        try:
            found = self.manifest(digest, codec)
            size, actual = found.footer.raw_size, digest
            if read_data:  # first: a damaged chunk is named, not only its pack
                actual, size = self._rehash(digest, codec, progress)
            elif progress:
                progress(size)
            stored_size, packs = self._structure(found, digest, manifest_sha)
            for name in sorted(packs):
                self._check_pack(name)
            if Codec(codec).sealed and self.keys.can_open and not read_data:
                self._key_fits(packs)
        except DecryptionKeyError:
            raise  # the key is wrong, not the artifact: nothing to record against it
        except StoreError as exc:
            return VerifyResult.failed(digest, str(exc))
        result = VerifyResult.check(
            digest, actual, size, manifest_sha, stored_size, expected_stored_sha256, path
        )
        return result if note is None else dataclasses.replace(result, note=note)

    def _structure(
        self, found: Manifest, digest: str, manifest_sha: str | None = None
    ) -> tuple[int, set[str]]:
        """The stored size and the packs of an artifact; BlobMissing/BlobCorrupted if the
        manifest does not add up or a chunk is in no pack. A manifest this process wrote (the
        same SHA-256) was located chunk by chunk as it was written."""
        memo = self._structures.get((digest, Codec(found.footer.codec)))
        if memo is not None and manifest_sha is not None and memo[0] == manifest_sha:
            return memo[1], set(memo[2])
        codec = Codec(found.footer.chunk_codec)
        stored, raw, packs = 0, 0, set()
        with self.index() as idx:
            for records in found.records():
                where = locate(idx, records, codec, f"artifact {digest}")
                for d, raw_len in records:
                    stored += where[d].stored_len
                    raw += raw_len
                    packs.add(where[d].pack)
        if raw != found.footer.raw_size:
            raise BlobCorrupted(
                f"manifest {found.path}: its chunks add up to {raw} bytes, not "
                f"{found.footer.raw_size}"
            )
        return stored, packs

    def _key_fits(self, packs: set[str]) -> None:
        """DecryptionKeyError unless the identity opens the artifact's smallest sealed pack
        (its first 64 KiB): the key a restore would use is checked, not only the digests."""
        sealed = [(self.pack_path(n).stat().st_size, n) for n in packs if self._sealed(n)]
        if sealed:
            self.keys.fits(self.pack_path(min(sealed)[1]))

    def _sealed(self, name: str) -> bool:
        try:
            return is_sealed(self.pack_path(name))
        except FileNotFoundError:
            return False

    def _check_pack(self, name: str) -> None:
        path = self.pack_path(name)
        try:
            st = path.stat()
        except FileNotFoundError:
            raise BlobMissing(f"pack {path} is missing") from None
        key = (name, st.st_size, st.st_mtime_ns, st.st_ino)
        if key not in self._pack_ok:
            self._pack_ok[key] = hash_file(path)[0] == name
        if not self._pack_ok[key]:
            aside = self._quarantine(name)
            raise BlobCorrupted(
                f"pack {path} is damaged: its bytes no longer hash to its name; it was set "
                f"aside as {aside.name}, so the next backup stores its chunks again (and the "
                "backups that used them read again once a backup has)"
            )

    def _quarantine(self, name: str) -> Path:
        """Move a damaged pack out of use: renamed (kept for a post-mortem), then its index
        rows dropped, so no backup deduplicates against it any more. A chunk is addressed by
        its digest, so once a later backup stores it again, every manifest naming it reads."""
        path = self.pack_path(name)
        aside = path.with_name(f"{path.name}{DAMAGED_SUFFIX}")
        with contextlib.suppress(FileNotFoundError):
            os.replace(path, aside)
        with self.index() as idx:
            idx.drop_pack(name)
        return aside

    def _pack_key(self, name: str) -> tuple[str, int, int, int]:
        try:
            st = self.pack_path(name).stat()
        except FileNotFoundError:
            return (name, -1, -1, -1)
        return (name, st.st_size, st.st_mtime_ns, st.st_ino)

    def _rehash(self, digest: str, codec: Codec, progress: Progress | None) -> tuple[str, int]:
        sha, size = hashlib.sha256(), 0
        for piece in self.read(digest, codec):
            sha.update(piece)
            size += len(piece)
            if progress:
                progress(size)
        return sha.hexdigest(), size

    def packs_of(self, digest: str, codec: Codec) -> set[str]:
        found = self.manifest(digest, codec)
        return self._structure(found, digest)[1]

    # -- files -----------------------------------------------------------------------------

    def objects(self, digest: str, codec: Codec, manifest_sha256: str) -> list[StoredObject]:
        """The manifest, then every pack its chunks are in (a copy needs them all)."""
        path = self.manifest_path(digest, codec)
        sha, size = manifest_sha256, path.stat().st_size
        out = [
            StoredObject(rel=layout.manifest_rel(digest, codec), path=path, sha256=sha, size=size)
        ]
        for name in sorted(self.packs_of(digest, codec)):
            pack = self.pack_path(name)
            out.append(
                StoredObject(
                    rel=layout.pack_rel(name), path=pack, sha256=name, size=pack.stat().st_size
                )
            )
        return out

    def adopt(self, rel: str, tmp: Path, sha256: str) -> bool:
        """Publish a downloaded pack or manifest (already in a temp file of this store, its
        SHA-256 checked by the caller); a pack's chunks are indexed."""
        final = self.root / rel
        created = publish(tmp, final)
        kind = layout.parse_rel(rel)
        if kind is not None and kind[0] == "pack":
            entries = read_trailer(final, self.keys)  # a sealed pack: with the identity
            with self.index() as idx:
                idx.add_pack(kind[1], final.stat().st_size, entries, sealed=is_sealed(final))
        return created

    def delete(self, digest: str, codec: Codec) -> bool:
        """Remove the manifest: renamed aside in one step (no longer a manifest of the store),
        its file deleted once the next pack collection has taken back its chunks' counts
        (store/chunked/refs.py); its chunks stay in their packs until no manifest lists them."""
        path = self.manifest_path(digest, codec)
        try:
            os.replace(path, path.with_name(f"{path.name}{GONE}"))
        except FileNotFoundError:
            return False
        fsync_dir(path.parent)
        crashpoint.reached("manifest-set-aside")
        return True

    def gone_manifests(self) -> list[Path]:
        """Manifests deleted whose chunks' counts were not taken back yet."""
        if not self.manifests_dir.is_dir():
            return []
        return sorted(self.manifests_dir.glob(f"??/*{layout.MANIFEST_SUFFIX}{GONE}"))

    # -- collection (store/chunked/gc.py plans, store/chunked/repack.py carries out) ------

    @contextmanager
    def planner(
        self,
        *,
        excluding: Container[tuple[str, Codec]] = frozenset(),
        groups: Mapping[tuple[str, Codec], int] | None = None,
        strict: bool = False,
    ) -> Iterator[Planner]:
        """The chunks every manifest present lists (but `excluding`), counted (packs a killed
        writer left unindexed are indexed first). `strict`: a manifest that could not be
        counted (replaced or gone meanwhile) is an error."""
        manifests = list(self.iter_manifests())
        with self.index() as idx:
            if idx.writable:
                idx.reconcile()
            planner = Planner(idx, self.packs_dir, self.keys)
            try:
                gone = self.gone_manifests() if idx.writable else []
                missed = planner.count((path for _, _, path in manifests), gone)
                if missed and strict:
                    raise StoreError(
                        f"manifest {missed[0]} changed while pack collection counted it; "
                        "nothing was deleted from the packs: run the cleanup again"
                    )
                planner.exclude(p for d, c, p in manifests if (d, c) in excluding)
                groups = groups or {}
                planner.group((p, groups[(d, c)]) for d, c, p in manifests if (d, c) in groups)
                yield planner
            finally:
                planner.close()

    def plan_packs(
        self,
        threshold: float,
        *,
        excluding: Container[tuple[str, Codec]] = frozenset(),
        groups: Mapping[tuple[str, Codec], int] | None = None,
    ) -> PackPlan:
        """What collecting the packs would do once the manifests `excluding` are gone (read
        only, but for the counts of manifests kept in the index), and per group the bytes of
        the chunks only it uses."""
        if not self.packs_dir.is_dir():
            return PackPlan()
        with self.planner(excluding=excluding, groups=groups) as planner:
            plan = planner.plan(threshold)
            plan.group_bytes = planner.group_bytes() if groups else {}
            plan.manifests = planner.manifests
        return plan

    def collect_packs(self, threshold: float) -> tuple[PackPlan, PackReport]:
        """Delete the packs no manifest uses and repack the mostly dead and small ones; the
        caller holds the store's exclusive lock (no put, read or copy runs)."""
        if not self.packs_dir.is_dir():
            return PackPlan(), PackReport()
        try:
            with self.planner(strict=True) as planner:
                plan = planner.plan(threshold)
                plan.manifests = planner.manifests
                return plan, execute(planner, plan, self._quarantine, self.keys)
        finally:
            self._structures.clear()  # this process's memos name packs that may be gone

    def iter_manifests(self) -> Iterator[tuple[str, Codec, Path]]:
        if not self.manifests_dir.is_dir():
            return
        for path in sorted(self.manifests_dir.glob(f"??/*{layout.MANIFEST_SUFFIX}")):
            parsed = layout.parse_rel(path.relative_to(self.root).as_posix())
            if parsed is not None and parsed[2] is not None:
                yield parsed[1], parsed[2], path

    def temp_dirs(self) -> list[Path]:
        return [self.packs_dir, self.manifests_dir]

    def remove_stale_temp_files(self, older_than_seconds: float) -> int:
        cutoff = time.time() - older_than_seconds
        removed = 0
        for directory in self.temp_dirs():
            if not directory.is_dir():
                continue
            for tmp in directory.glob(f"{layout.TMP_PREFIX}*"):
                try:
                    if tmp.stat().st_mtime <= cutoff:
                        os.unlink(tmp)
                        removed += 1
                except FileNotFoundError:
                    continue
        return removed

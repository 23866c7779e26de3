"""Storing one stream as chunks: cut, hash, look up, compress what is new, pack, manifest.

Threads: a reader pulls the producer (pg_dump's pipe) and hashes the whole stream; another
cuts chunks and hashes them; this one looks them up in the index a batch at a time; a pool
compresses the new ones (zlib-ng and zstd release the GIL), in order, at most a few batches
ahead, so memory stays bounded whatever the stream's length. Durable in this order: each
pack (fsynced, published), then its index rows, then the manifest; the caller records the
artifact (BackupCompleted) after that.

On the way it records where each chunk's stored bytes are (store.chunked.extents), and names
every pack the artifact uses as soon as it knows it (`on_pack`: the store re-hashes it in the
background, so the read-back that follows finds it checked).
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from store.chunked import chunker
from store.chunked.compress import compress_batch
from store.chunked.extents import ExtentRecorder, Run
from store.chunked.index import ChunkIndex
from store.chunked.manifest import Footer, ManifestWriter
from store.chunked.packs import TARGET_SIZE, PackWriter
from store.chunked.sealed import PackKeys
from store.codecs import Codec
from store.pipeline import prefetch

BATCH = 256  # chunks looked up per query and compressed per job
Progress = Callable[[int], None]


@dataclass(slots=True)
class _Fresh:
    """A chunk of this put not yet in the index: its ordinal among the put's new chunks, its
    stored length once compressed, and how many more times the stream used it meanwhile."""

    ordinal: int
    stored_len: int | None = None
    repeats: int = 0


@dataclass(slots=True, kw_only=True)
class Stored:
    digest: str = ""
    raw_size: int = 0
    stored_size: int = 0  # the artifact's stored form: every chunk reference's stored bytes
    manifest_sha256: str = ""
    manifest_size: int = 0
    created: bool = False
    added_bytes: int = 0  # new packs and the manifest, if new
    chunks: int = 0
    new_chunks: int = 0
    packs: list[str] = field(default_factory=list)  # every pack its chunks are in
    # Where the manifest's chunks are stored, as runs (None: too many to keep, or the
    # manifest already there lists other chunks): its file is copied from these.
    extents: list[Run] | None = None
    # A manifest already there that was damaged and is now replaced: its SHA-256, and why.
    repaired_from: str | None = None
    repair_reason: str | None = None


class _Counted:
    """The producer's pieces, hashed and counted as the reader thread pulls them."""

    def __init__(self, pieces: Iterable[bytes], progress: Progress | None) -> None:
        self.pieces = pieces
        self.sha = hashlib.sha256()
        self.size = 0
        self.progress = progress

    def __iter__(self) -> Iterator[bytes]:
        for piece in self.pieces:
            self.sha.update(piece)
            self.size += len(piece)
            if self.progress:
                self.progress(self.size)
            yield piece


class ChunkWriter:
    def __init__(
        self,
        index: ChunkIndex,
        packs_dir: Path,
        manifests_dir: Path,
        chunk_codec: Codec,
        level: int | None,
        threads: int,
        on_pack: Callable[[str], None] | None = None,
        seal: PackKeys | None = None,
    ) -> None:
        self.index = index
        self.seal = seal  # new chunks go into sealed packs only; None: plain packs only
        self.keyset = seal.keyset if seal is not None else None
        self.packs_dir = packs_dir
        self.manifests_dir = manifests_dir
        self.codec = chunk_codec
        self.level = level
        self.threads = max(1, threads)
        self.fresh: dict[bytes, _Fresh] = {}
        self.pack: PackWriter | None = None
        self.pack_ids: set[int] = set()  # packs of the chunks found in the index
        self.on_pack = on_pack or (lambda _name: None)
        self.extents = ExtentRecorder()
        self.out = Stored()

    def put(
        self,
        pieces: Iterable[bytes],
        codec: Codec,
        final: Callable[[str], Path],
        progress: Progress | None,
    ) -> Stored:
        """Store the stream; `final(digest)` is where its manifest goes."""
        counted = _Counted(pieces, progress)
        manifest = ManifestWriter(self.manifests_dir)
        try:
            with ThreadPoolExecutor(self.threads, thread_name_prefix="chunks") as pool:
                pending: deque[tuple[Future[list[bytes]], list[tuple[bytes, int]]]] = deque()
                # reading + whole digest | cutting + chunk digests | lookups + packs: three
                # threads, each stage a bounded queue ahead of the next
                stream = chunker.cut(prefetch(counted, depth=8))
                for batch in prefetch(_batches(stream), depth=4):
                    new = self._take(batch, manifest)
                    if new:
                        views = [v for _, v in new]
                        job = pool.submit(compress_batch, views, self.codec, self.level)
                        pending.append((job, [(d, len(v)) for d, v in new]))
                    while len(pending) > 2 * self.threads:
                        self._write(*pending.popleft())
                while pending:
                    self._write(*pending.popleft())
            self._roll()
            out = self.out
            out.digest, out.raw_size = counted.sha.hexdigest(), counted.size
            footer = Footer(
                digest=out.digest,
                raw_size=out.raw_size,
                chunks=manifest.count,
                codec=codec.value,
                chunk_codec=self.codec.value,
                chunker=chunker.NAME,
            )
            done = manifest.finish(footer, final(out.digest))
            created, out.manifest_sha256, out.manifest_size = done.created, done.sha, done.size
            out.repaired_from, out.repair_reason = done.repaired_from, done.repair_reason
            if self.seal is None and done.sha == manifest.sha.hexdigest():  # as written
                out.extents = self.extents.resolve(self.index.pack_name)
        except BaseException:
            manifest.abort()
            if self.pack is not None:
                self.pack.abort()
            raise
        out.created = created
        out.added_bytes += out.manifest_size if created or out.repaired_from else 0
        out.packs = sorted({*out.packs, *map(self.index.pack_name, self.pack_ids)})
        return out

    def _take(
        self, batch: list[tuple[bytes, memoryview]], manifest: ManifestWriter
    ) -> list[tuple[bytes, memoryview]]:
        """Record the batch in the manifest; return the chunks to store (new ones, once)."""
        known = self.index.known(
            (d for d, _ in batch if d not in self.fresh), self.codec, keyset=self.keyset
        )
        new = []
        manifest.add([(digest, len(view)) for digest, view in batch])
        self.out.chunks += len(batch)
        for digest, view in batch:
            fresh = self.fresh.get(digest)
            if fresh is not None:
                self.extents.again(fresh.ordinal)
                if fresh.stored_len is None:
                    fresh.repeats += 1
                else:
                    self.out.stored_size += fresh.stored_len
            elif digest in known:
                stored_len, pack, offset = known[digest]
                self.extents.known(pack, offset, stored_len)
                self.out.stored_size += stored_len
                if pack not in self.pack_ids:
                    self.pack_ids.add(pack)
                    self.on_pack(self.index.pack_name(pack))
            else:
                self.fresh[digest] = _Fresh(self.extents.new())
                new.append((digest, view))
        return new

    def _write(self, job: Future[list[bytes]], items: list[tuple[bytes, int]]) -> None:
        for (digest, raw_len), stored in zip(items, job.result(), strict=True):
            if self.pack is None:
                self.pack = PackWriter(self.packs_dir, self.seal)
            self.extents.written(self.pack.size, len(stored))
            self.pack.add(digest, stored, raw_len, self.codec)
            fresh = self.fresh[digest]
            fresh.stored_len = len(stored)
            self.out.stored_size += len(stored) * (1 + fresh.repeats)
            self.out.new_chunks += 1
            if self.pack.size >= TARGET_SIZE:
                self._roll()

    def _roll(self) -> None:
        """Close the open pack: durable and published, then its chunks go in the index."""
        if self.pack is None:
            return
        pack, self.pack = self.pack, None
        try:
            name, size, entries = pack.finish()
        except BaseException:
            pack.abort()
            raise
        self.index.add_pack(name, size, entries, sealed=self.seal is not None, keyset=self.keyset)
        self.extents.pack_done(name)
        self.on_pack(name)
        for e in entries:
            self.fresh.pop(e.digest, None)
        self.out.added_bytes += size
        self.out.packs.append(name)


def _batches(chunks: Iterable[memoryview]) -> Iterator[list[tuple[bytes, memoryview]]]:
    batch: list[tuple[bytes, memoryview]] = []
    for view in chunks:
        batch.append((hashlib.sha256(view).digest(), view))
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch

"""Reading an artifact back from its manifest: every chunk's SHA-256 is checked as it is
read, and the whole stream's at the end. A flipped byte is BlobCorrupted naming the pack and
the chunk; a chunk no pack holds is BlobMissing.

Reads and decompression overlap: chunks are read from the packs here and checked in a small
pool, in order, a few batches ahead (memory stays bounded).
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from store.age import AGE_MAGIC
from store.chunked.compress import check_batch
from store.chunked.index import ChunkIndex, Location
from store.chunked.layout import PACK_SUFFIX
from store.chunked.manifest import Manifest
from store.chunked.sealed import OpenedPacks, PackKeys
from store.codecs import Codec
from store.errors import BlobCorrupted, BlobMissing

JOB = 128  # chunks per decompression job
_OPEN_PACKS = 32


class Packs:
    """Open pack files, the most recently used kept open; sealed ones are decrypted (with
    the identity of `keys`), a few kept (store/chunked/sealed.py)."""

    def __init__(self, packs_dir: Path, keys: PackKeys | None = None) -> None:
        self.packs_dir = packs_dir
        self.fds: OrderedDict[str, int] = OrderedDict()
        self.opened = OpenedPacks(keys or PackKeys())
        self.sealed: set[str] = set()

    def path(self, name: str) -> Path:
        return self.packs_dir / name[:2] / f"{name}{PACK_SUFFIX}"

    def read(self, loc: Location) -> bytes:
        if loc.pack in self.sealed:
            return self._unsealed(loc)
        fd = self.fds.get(loc.pack)
        if fd is None:
            try:
                fd = os.open(self.path(loc.pack), os.O_RDONLY)
            except FileNotFoundError:
                raise BlobMissing(
                    f"pack {self.path(loc.pack)} is missing; run `dumpledger verify --all`"
                ) from None
            if os.pread(fd, len(AGE_MAGIC), 0) == AGE_MAGIC:
                os.close(fd)
                self.sealed.add(loc.pack)
                return self._unsealed(loc)
            self.fds[loc.pack] = fd
            if len(self.fds) > _OPEN_PACKS:
                os.close(self.fds.popitem(last=False)[1])
        else:
            self.fds.move_to_end(loc.pack)
        data = os.pread(fd, loc.stored_len, loc.offset)
        if len(data) != loc.stored_len:
            raise BlobCorrupted(f"pack {self.path(loc.pack)} is truncated; run `dumpledger verify`")
        return data

    def _unsealed(self, loc: Location) -> bytes:
        try:
            plain = self.opened.get(loc.pack, self.path(loc.pack))
        except FileNotFoundError:
            raise BlobMissing(
                f"pack {self.path(loc.pack)} is missing; run `dumpledger verify --all`"
            ) from None
        data = bytes(plain[loc.offset : loc.offset + loc.stored_len])
        if len(data) != loc.stored_len:
            raise BlobCorrupted(f"pack {self.path(loc.pack)} is truncated; run `dumpledger verify`")
        return data

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()


def locate(
    index: ChunkIndex, records: list[tuple[bytes, int]], codec: Codec, what: str
) -> dict[bytes, Location]:
    """Where each chunk of `records` is; a pack the index missed is indexed first."""
    found = index.lookup((d for d, _ in records), codec)
    if len(found) < len({d for d, _ in records}) and index.reconcile():
        found = index.lookup((d for d, _ in records), codec)
    for digest, raw_len in records:
        loc = found.get(digest)
        if loc is None:
            raise BlobMissing(
                f"{what}: chunk {digest.hex()} is in no pack of the store; "
                "run `dumpledger verify --all`"
            )
        if loc.raw_len != raw_len:
            raise BlobCorrupted(
                f"{what}: chunk {digest.hex()} is {loc.raw_len} bytes in pack {loc.pack}, "
                f"the manifest says {raw_len}"
            )
    return found


def read_artifact(
    index: ChunkIndex,
    packs_dir: Path,
    manifest: Manifest,
    digest: str,
    *,
    stored: bool = False,
    threads: int = 2,
    keys: PackKeys | None = None,
) -> Iterator[bytes]:
    """The artifact's raw bytes (or, with `stored`, its chunks' stored bytes), chunk by chunk,
    each checked; the whole digest is checked at the end."""
    what = f"artifact {digest}"
    codec = Codec(manifest.footer.chunk_codec)
    packs = Packs(packs_dir, keys)
    whole = hashlib.sha256()
    size = 0
    try:
        with ThreadPoolExecutor(max(1, threads), thread_name_prefix="unpack") as pool:
            pending: deque[tuple[Future[list[tuple[bytes | None, str | None]]], list[_Item]]]
            pending = deque()
            for records in manifest.records():
                where = locate(index, records, codec, what)
                for start in range(0, len(records), JOB):
                    items = [
                        (d, where[d], packs.read(where[d])) for d, _ in records[start : start + JOB]
                    ]
                    job = [(d, data, loc.raw_len, codec) for d, loc, data in items]
                    pending.append((pool.submit(check_batch, job), items))
                    while len(pending) > 2 * threads:
                        for out in _emit(pending.popleft(), packs, what, stored):
                            whole.update(out[0])
                            size += len(out[0])
                            yield out[1]
            while pending:
                for out in _emit(pending.popleft(), packs, what, stored):
                    whole.update(out[0])
                    size += len(out[0])
                    yield out[1]
    finally:
        packs.close()
    if size != manifest.footer.raw_size or whole.hexdigest() != digest:
        raise BlobCorrupted(
            f"{what}: its chunks make {size} bytes hashing to {whole.hexdigest()}, not "
            f"{manifest.footer.raw_size} bytes hashing to {digest} (manifest {manifest.path})"
        )


_Item = tuple[bytes, Location, bytes]


def _emit(
    entry: tuple[Future[list[tuple[bytes | None, str | None]]], list[_Item]],
    packs: Packs,
    what: str,
    stored: bool,
) -> Iterator[tuple[bytes, bytes]]:
    job, items = entry
    for (digest, loc, data), (raw, problem) in zip(items, job.result(), strict=True):
        if raw is None:
            raise BlobCorrupted(
                f"{what}: chunk {digest.hex()} in pack {packs.path(loc.pack)} "
                f"(offset {loc.offset}) is damaged: it {problem}"
            )
        yield raw, (data if stored else raw)

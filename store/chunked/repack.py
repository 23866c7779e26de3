"""Pack collection, carried out (store/chunked/gc.py plans it), under the store's exclusive
lock, in an order that a SIGKILL at any step leaves readable (restic's prune is the model):

1. each pack with no live chunk: its index rows dropped, then the file deleted;
2. each new pack: the live chunks of the packs to repack copied into it as stored (no
   recompression; each old pack re-hashed against its name before a byte of it is copied),
   the pack made durable and published, then indexed (its chunks' rows point to it);
3. then each old pack all of whose live chunks are in indexed new packs: its rows dropped,
   then the file deleted.

A crash between leaves a pack published but not indexed (the index learns it from its
trailer; it holds no live chunk then, and the next collection deletes it), or an old pack
whose chunks are indexed elsewhere (dead: the next collection deletes it). A chunk is never
without an indexed, durable copy. `crashpoint.reached` names each step for the tests.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from store.chunked import crashpoint
from store.chunked.gc import NewPack, PackPlan, PackSize, Planner
from store.chunked.index import ChunkIndex
from store.chunked.layout import PACK_SUFFIX
from store.chunked.packs import CODECS, Entry, PackWriter, read_trailer
from store.chunked.sealed import PackKeys, is_sealed
from store.errors import BlobCorrupted
from store.files import fsync_dir


@dataclass(slots=True, kw_only=True)
class PackReport:
    """What a collection did to the packs (sizes as the files had them)."""

    deleted: list[PackSize] = field(default_factory=list)  # held no live chunk
    repacked: list[PackSize] = field(default_factory=list)  # rewritten, then deleted
    written: list[PackSize] = field(default_factory=list)  # the new packs

    @property
    def freed_bytes(self) -> int:
        gone = sum(p.size for p in (*self.deleted, *self.repacked))
        return gone - sum(p.size for p in self.written)


class _Source:
    """Reads old packs whole, one at a time, each checked against its name first: a damaged
    pack's bytes are never copied into a pack that would then hash to its own name."""

    def __init__(self, packs_dir: Path, quarantine: Callable[[str], Path], keys: PackKeys) -> None:
        self.packs_dir = packs_dir
        self.keys = keys  # a sealed pack is decrypted after its check
        self.quarantine = quarantine
        self.name = ""
        self.data: bytes | bytearray = b""
        self.checked: set[str] = set()  # hashed to their names

    def read(self, name: str, offset: int, length: int) -> bytes:
        if name != self.name:
            data: bytes | bytearray = _path(self.packs_dir, name).read_bytes()
            if hashlib.sha256(data).hexdigest() != name:
                aside = self.quarantine(name)
                raise BlobCorrupted(
                    f"pack {_path(self.packs_dir, name)} is damaged: its bytes no longer hash "
                    f"to its name; it was set aside as {aside.name} and pack collection "
                    "stopped (the next backup stores its chunks again; run `dumpledger "
                    "verify --all`, then `dumpledger cleanup` again)"
                )
            if is_sealed(_path(self.packs_dir, name)):
                data = self.keys.open(_path(self.packs_dir, name))
            self.name, self.data = name, data
            self.checked.add(name)
        piece = bytes(self.data[offset : offset + length])
        if len(piece) != length:
            raise BlobCorrupted(f"pack {_path(self.packs_dir, name)}: a chunk runs past its end")
        return piece


def execute(
    planner: Planner, plan: PackPlan, quarantine: Callable[[str], Path], keys: PackKeys
) -> PackReport:
    """Carry out `plan` (made by `planner` just now, under the same lock)."""
    report = PackReport()
    index, packs_dir = planner.index, planner.packs_dir
    for item in plan.delete:
        size = _retire(index, packs_dir, item.name, checked=False, point="dead-pack-forgotten")
        if size is not None:
            report.deleted.append(PackSize(item.name, size))
    going: dict[int, list[str]] = defaultdict(list)
    for name, after in plan.drop_after.items():
        going[after].append(name)
    source = _Source(packs_dir, quarantine, keys)
    for k, new in enumerate(plan.new_packs):
        name, size, entries, created = _write(planner, new, source)
        crashpoint.reached("new-pack-written")
        keyset = source.keys.keyset if new.sealed else None
        index.add_pack(name, size, entries, moved=True, sealed=new.sealed, keyset=keyset)
        crashpoint.reached("new-pack-indexed")
        if created:
            report.written.append(PackSize(name, size))
        for old in sorted(going.get(k, [])):
            checked = old in source.checked
            gone = _retire(index, packs_dir, old, checked=checked, point="old-pack-forgotten")
            if gone is not None:
                report.repacked.append(PackSize(old, gone))
            crashpoint.reached("old-pack-deleted")
    return report


def _write(planner: Planner, new: NewPack, source: _Source) -> tuple[str, int, list[Entry], bool]:
    writer = PackWriter(planner.packs_dir, source.keys if new.sealed else None)
    try:
        for digest, codec, old, offset, stored_len, raw_len in planner.moves(new):
            writer.add(digest, source.read(old, offset, stored_len), raw_len, CODECS[codec])
        name, size, entries = writer.finish()
    except BaseException:
        writer.abort()
        raise
    return name, size, entries, writer.created


def _retire(
    index: ChunkIndex, packs_dir: Path, name: str, *, checked: bool, point: str
) -> int | None:
    """Drop a pack's index rows, then delete its file; its size, or None if it was gone.
    Its rows are found by its trailer when its bytes hash to its name (`checked`: they were
    just now), else by a scan of the index."""
    path = _path(packs_dir, name)
    try:
        size = path.stat().st_size
        sound = checked or _hash(path) == name
        entries = read_trailer(path) if sound and not is_sealed(path) else None
    except FileNotFoundError:
        index.drop_pack(name)
        return None
    except BlobCorrupted:
        entries = None
    index.drop_pack(name, entries)
    crashpoint.reached(point)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fsync_dir(path.parent)
    return size


def _hash(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as fh:
        while data := fh.read(1 << 20):
            sha.update(data)
    return sha.hexdigest()


def _path(packs_dir: Path, name: str) -> Path:
    return packs_dir / name[:2] / f"{name}{PACK_SUFFIX}"

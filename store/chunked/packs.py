"""Pack files: many compressed chunks in one file, with a trailer that lists them.

    b"DLPACK1\\n" || stored chunk 1 || ... || stored chunk N || entries || footer

Each stored chunk is one complete gzip member or zstd frame. An entry (49 bytes) is the
chunk's SHA-256 (of its raw bytes), its offset and stored length in the pack, its raw length
and its codec; the footer (12 bytes) is the number of entries and b"DLPACKT1". The trailer is
enough to rebuild the index from the packs alone (restic's packs keep their header at the
end for the same reason). A pack is named by the SHA-256 of the whole file.

Written to a temp file in the store (0600), fsynced, then published under its name by link,
as blobs are; the index learns its chunks only after that (data before references). A sealed
pack (store/chunked/sealed.py) is built in memory and only its age encryption is written.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from store.chunked.layout import PACK_SUFFIX, TMP_PREFIX
from store.chunked.sealed import PackKeys, is_sealed
from store.codecs import Codec
from store.errors import BlobCorrupted
from store.files import fsync_dir

MAGIC = b"DLPACK1\n"
FOOTER_MAGIC = b"DLPACKT1"
ENTRY = struct.Struct(">32sQIIB")
FOOTER = struct.Struct(">I8s")
TARGET_SIZE = 16 << 20  # a pack is closed once it holds this many stored bytes
CODEC_IDS = {Codec.GZIP: 1, Codec.ZSTD: 2}
CODECS = {v: k for k, v in CODEC_IDS.items()}


@dataclass(frozen=True, slots=True)
class Entry:
    digest: bytes  # SHA-256 of the chunk's raw bytes
    offset: int
    stored_len: int
    raw_len: int
    codec: Codec


def private_mkdir(path: Path) -> None:
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path, 0o700)


def publish(tmp: Path, final: Path) -> bool:
    """Link tmp to final (exclusive: a concurrent writer of the same name loses nothing) and
    remove tmp; fsync the directory. False when final was there already."""
    private_mkdir(final.parent)
    try:
        os.link(tmp, final)
    except FileExistsError:
        tmp.unlink()
        return False
    tmp.unlink()
    fsync_dir(final.parent)
    return True


class PackWriter:
    """Appends stored chunks to a temp file; `finish` closes and publishes it. With `seal`
    (the store's age keys) the pack is built in memory and written encrypted by `finish`."""

    def __init__(self, directory: Path, seal: PackKeys | None = None) -> None:
        self.directory = directory
        private_mkdir(directory)
        self.tmp = directory / f"{TMP_PREFIX}{secrets.token_hex(8)}"
        fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.fh = os.fdopen(fd, "wb", buffering=1 << 20)  # each write hands the GIL off
        self.sealed = _Hashed(self.fh, self.tmp)  # a sealed pack's file: ciphertext
        self.sealing = seal.sealing(self.sealed) if seal is not None else None
        self.sha = hashlib.sha256()
        self.size = 0  # bytes of the plain pack so far
        self.entries: list[Entry] = []
        self.created = False  # set by finish: False when a pack of that name was there
        self._write(MAGIC)

    def _write(self, data: bytes) -> None:
        if self.sealing is not None:
            self.sealing.write(data)
        else:
            _write_all(self.fh, data, self.tmp)
            self.sha.update(data)
        self.size += len(data)

    def add(self, digest: bytes, stored: bytes, raw_len: int, codec: Codec) -> None:
        self.entries.append(Entry(digest, self.size, len(stored), raw_len, codec))
        self._write(stored)

    def finish(self) -> tuple[str, int, list[Entry]]:
        """Write the trailer, fsync, publish; (name, size, entries)."""
        self._write(
            b"".join(
                ENTRY.pack(e.digest, e.offset, e.stored_len, e.raw_len, CODEC_IDS[e.codec])
                for e in self.entries
            )
        )
        self._write(FOOTER.pack(len(self.entries), FOOTER_MAGIC))
        size = self.size
        if self.sealing is not None:
            self.sealing.close()
            self.sha, size = self.sealed.sha, self.sealed.size
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        name = self.sha.hexdigest()
        self.created = publish(self.tmp, self.directory / name[:2] / f"{name}{PACK_SUFFIX}")
        return name, size, self.entries

    def abort(self) -> None:
        if self.sealing is not None:
            with contextlib.suppress(BaseException):
                self.sealing.close()
        self.fh.close()
        self.tmp.unlink(missing_ok=True)


def _write_all(fh: BinaryIO, data: bytes, where: Path) -> None:
    if fh.write(data) != len(data):
        raise OSError(errno.EIO, f"short write to {where}")


class _Hashed:
    """A file-like sink (for age) that writes through, hashing and counting."""

    def __init__(self, fh: BinaryIO, where: Path) -> None:
        self.fh, self.where = fh, where
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        _write_all(self.fh, data, self.where)
        self.sha.update(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass


def read_trailer(path: Path, keys: PackKeys | None = None) -> list[Entry]:
    """The entries a pack's trailer lists, checked for consistency (not the chunks' bytes).
    A sealed pack is decrypted first: `keys` must hold the identity (DecryptionKeyError)."""
    if is_sealed(path):
        plain = (keys or PackKeys()).open(path)
        return parse_trailer(plain, len(plain), path)
    with path.open("rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size < len(MAGIC) + FOOTER.size:
            raise BlobCorrupted(f"pack {path} is truncated ({size} bytes)")
        fh.seek(size - FOOTER.size)
        count, _ = FOOTER.unpack(fh.read(FOOTER.size))
        start = max(0, size - FOOTER.size - count * ENTRY.size)
        fh.seek(start)
        tail = fh.read(size - start)
    return parse_trailer(tail, size, path)


def parse_trailer(tail: bytes | bytearray, size: int, path: Path) -> list[Entry]:
    """The entries of a pack of `size` bytes whose last bytes are `tail` (or all of it)."""
    if size < len(MAGIC) + FOOTER.size or len(tail) < FOOTER.size:
        raise BlobCorrupted(f"pack {path} is truncated ({size} bytes)")
    count, magic = FOOTER.unpack(tail[-FOOTER.size :])
    start = size - FOOTER.size - count * ENTRY.size
    if magic != FOOTER_MAGIC or start < len(MAGIC):
        raise BlobCorrupted(f"pack {path} has no valid trailer: truncated or damaged")
    base = size - len(tail)
    raw = tail[start - base : len(tail) - FOOTER.size]
    entries = []
    end = len(MAGIC)
    for digest, offset, stored_len, raw_len, codec_id in ENTRY.iter_unpack(raw):
        codec = CODECS.get(codec_id)
        if codec is None or offset != end or offset + stored_len > start:
            raise BlobCorrupted(f"pack {path}: its trailer is inconsistent (damaged)")
        entries.append(Entry(digest, offset, stored_len, raw_len, codec))
        end = offset + stored_len
    if end != start:
        raise BlobCorrupted(f"pack {path}: its trailer is inconsistent (damaged)")
    return entries


def hash_file(path: Path, chunk: int = 1 << 20) -> tuple[str, int]:
    sha, size = hashlib.sha256(), 0
    with path.open("rb") as fh:
        while data := fh.read(chunk):
            sha.update(data)
            size += len(data)
    return sha.hexdigest(), size

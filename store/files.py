"""Files for people and for copies: an artifact's file written atomically, a whole blob's
bytes copied with their digest checked."""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from store.codecs import READ_CHUNK
from store.errors import BlobCorrupted, BlobMissing, StoreFull


@contextmanager
def full_disk_is_store_full(where: Path) -> Iterator[None]:
    """A write that runs out of space (ENOSPC) raises StoreFull naming `where`."""
    try:
        yield
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise StoreFull(str(where)) from None
        raise


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_blob(path: Path, digest: str) -> BinaryIO:
    """A whole blob's file, opened; BlobMissing naming it when it is not there."""
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise BlobMissing(
            f"blob {digest} is missing from {path.parent}; run `dumpledger verify --all`"
        ) from None


def checked_copy(path: Path, digest: str, expected: str | None) -> Iterator[bytes]:
    """A whole blob's bytes as stored; BlobCorrupted at the end if they do not hash to
    `expected`."""
    sha = hashlib.sha256()
    with open_blob(path, digest) as fh:
        for chunk in iter(lambda: fh.read(READ_CHUNK), b""):
            sha.update(chunk)
            yield chunk
    if expected and sha.hexdigest() != expected:
        raise BlobCorrupted(f"blob {path} hashes to {sha.hexdigest()}, not {expected}")


def write_file(dest: Path, data: Iterable[bytes]) -> int:
    """Write `data` to `dest` atomically: a temp file beside it, fsync, rename, 0600."""

    def fill(fd: int) -> int:
        size = 0
        with os.fdopen(fd, "wb", closefd=False) as fh:
            for piece in data:
                if fh.write(piece) != len(piece):
                    raise OSError(errno.EIO, f"short write to {dest}")
                size += len(piece)
        return size

    return write_atomically(dest, fill)


def write_atomically(dest: Path, fill: Callable[[int], int]) -> int:
    """`fill(fd)` writes a file's content to a temp file beside `dest` (0600) and returns its
    size; then fsync, rename to `dest`, fsync the directory. Nothing is left on failure."""
    dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = dest.parent / f".{dest.name}.{secrets.token_hex(4)}.tmp"
    with full_disk_is_store_full(dest.parent):
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                size = fill(fd)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, dest)
            fsync_dir(dest.parent)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return size

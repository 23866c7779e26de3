"""Offsite targets: a copy of the store and of the event log's export, on a directory (an
external drive) or an S3-compatible bucket.

Layout, the same on both: ``<root>/store/<the local store's relative paths>`` and
``<root>/catalog/events.jsonl``. Keys are relative POSIX paths under the root. Every upload is
checked after it landed by re-reading what was stored (size and SHA-256).
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol

from store.codecs import READ_CHUNK
from store.errors import StoreError

STORE_PREFIX = "store/"
EXPORT_KEY = "catalog/events.jsonl"


class OffsiteError(StoreError):
    """An offsite target could not do what was asked."""


class OffsiteCorrupted(OffsiteError):
    """What the target stored is not what was sent."""


class OffsiteTarget(Protocol):
    """The port push, verify --target and recover talk to."""

    @property
    def location(self) -> str:
        """Where the copy is (a path or s3://bucket/prefix), never with credentials."""
        ...

    def list(self, prefix: str) -> dict[str, int]:
        """Every key under `prefix`, with its size."""
        ...

    def put_file(self, key: str, source: Path, *, sha256: str, size: int) -> None:
        """Upload, then re-read what was stored; OffsiteCorrupted (and nothing left) if it
        is not `size` bytes hashing to `sha256`."""
        ...

    def hash(self, key: str) -> tuple[str, int] | None:
        """SHA-256 and size of what is stored under `key` (re-read); None when missing."""
        ...

    def get_chunks(self, key: str) -> Iterator[bytes]:
        """The stored bytes, streamed; OffsiteError when missing."""
        ...

    def read(self, key: str) -> bytes | None:
        """A small object whole (the export); None when missing."""
        ...

    def replace(self, key: str, data: bytes) -> None:
        """Write a small object whole, atomically, and check it was stored as sent."""
        ...


def check_key(key: str) -> str:
    parts = PurePosixPath(key).parts
    if not parts or key.startswith("/") or any(p in ("..", ".", "") for p in parts):
        raise ValueError(f"not a relative key: {key!r}")
    return key


def hash_chunks(chunks: Iterator[bytes]) -> tuple[str, int]:
    sha, size = hashlib.sha256(), 0
    for chunk in chunks:
        sha.update(chunk)
        size += len(chunk)
    return sha.hexdigest(), size


def file_chunks(fh: BinaryIO) -> Iterator[bytes]:
    while chunk := fh.read(READ_CHUNK):
        yield chunk


def expect(location: str, key: str, got: tuple[str, int] | None, sha256: str, size: int) -> None:
    if got is None:
        raise OffsiteCorrupted(f"{location}: {key} is missing right after it was uploaded")
    if got != (sha256, size):
        raise OffsiteCorrupted(
            f"{location}: {key} was stored as {got[1]} bytes with SHA-256 {got[0]}, "
            f"not the {size} bytes with SHA-256 {sha256} sent; check the target and push again"
        )


class DirectoryTarget:
    """A directory, typically on an external drive. Files 0600, directories 0700."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def location(self) -> str:
        return str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def list(self, prefix: str) -> dict[str, int]:
        base = self.root / prefix
        if not base.is_dir():
            return {}
        return {
            p.relative_to(self.root).as_posix(): p.stat().st_size
            for p in sorted(base.rglob("*"))
            if p.is_file() and not p.name.startswith(".tmp-")
        }

    def put_file(self, key: str, source: Path, *, sha256: str, size: int) -> None:
        with source.open("rb") as fh:
            self._write(key, file_chunks(fh))
        got = self.hash(key)
        try:
            expect(self.location, key, got, sha256, size)
        except OffsiteCorrupted:
            self._path(key).unlink(missing_ok=True)
            raise

    def hash(self, key: str) -> tuple[str, int] | None:
        path = self._path(key)
        try:
            with path.open("rb") as fh:
                return hash_chunks(file_chunks(fh))
        except FileNotFoundError:
            return None

    def get_chunks(self, key: str) -> Iterator[bytes]:
        try:
            fh = self._path(key).open("rb")
        except FileNotFoundError:
            raise OffsiteError(f"{self.location}: {key} is missing") from None
        with fh:
            yield from file_chunks(fh)

    def read(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def replace(self, key: str, data: bytes) -> None:
        self._write(key, iter([data]))
        expect(self.location, key, self.hash(key), hashlib.sha256(data).hexdigest(), len(data))

    def _write(self, key: str, chunks: Iterator[bytes]) -> None:
        """Temp file beside the target, write, fsync, rename, fsync the directory."""
        final = self._path(key)
        try:
            final.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise OffsiteError(
                f"cannot write to {self.location}: {exc.strerror}; is the drive mounted "
                "and writable?"
            ) from None
        tmp = final.parent / f".tmp-{secrets.token_hex(8)}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                for chunk in chunks:
                    if fh.write(chunk) != len(chunk):
                        raise OSError(errno.EIO, f"short write to {tmp}")
                fh.flush()
                os.fsync(fh.fileno())
                if hasattr(os, "posix_fadvise"):  # the check after the upload reads the device
                    os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            os.replace(tmp, final)
            dfd = os.open(final.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise OffsiteError(
                f"cannot write {key} to {self.location}: {exc.strerror or exc}; "
                "free space on the target or check it is writable"
            ) from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def open_target(
    url: str, *, endpoint_url: str | None = None, region: str | None = None
) -> OffsiteTarget:
    """A directory for a path or file:// URL, an S3 bucket for s3://bucket/prefix."""
    if url.startswith("s3://"):
        from store.s3 import S3Target

        return S3Target(url, endpoint_url=endpoint_url, region=region)
    path = url.removeprefix("file://")
    if "://" in path:
        raise OffsiteError(f"offsite URL {url!r}: use a directory path, file:// or s3://")
    return DirectoryTarget(Path(path).expanduser())

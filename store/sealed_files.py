"""The files of encrypted backups, written as they are stored.

An encrypted artifact's file (backups/database/NAME_full.sql.gz.age: `age -d -i KEY FILE |
gunzip | psql`) is its compressed stream, age-encrypted. Its chunks are in sealed packs, which
only the identity reads, and a backup host may have the recipients alone; so a put of an
encrypted artifact also compresses and encrypts the stream into a temp file in store/files/,
on a thread of its own (gzip at level 4 at most: it is a copy, and this compression is what
an encrypted backup costs more than a plain one), and the backup's `materialize` moves that
file into place. Files no materialize took are removed when the
process ends (or by `remove_stale_temp_files` a day after a crash).
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import os
import queue
import secrets
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from store import age
from store.age import AgeKeys
from store.chunked.layout import TMP_PREFIX
from store.chunked.packs import private_mkdir
from store.codecs import DEFAULT_LEVELS, Codec, zstd_stream
from store.files import write_file
from store.streams import read_chunks

try:  # zlib-ng: the same gzip format, faster (as store.codecs)
    from zlib_ng import zlib_ng as zlib
except ImportError:  # pragma: no cover - zlib-ng is a dependency
    import zlib  # type: ignore[no-redef]

FILE_GZIP_LEVEL = 4  # the file is compressed again beside the chunks: speed over bytes
_DEPTH = 4  # pieces of the producer queued for the file's compressor


def _sealed(pieces: Iterator[bytes], codec: Codec, keys: AgeKeys, level: int | None) -> Any:
    """The file's bytes: compressed as one stream on this thread (one gzip member: a few
    hundred KiB in memory, not the parallel compressor's members in flight), age-encrypted."""
    inner = Codec(codec).compression
    if inner is Codec.GZIP:
        stream: Iterator[bytes] = _gzip(pieces, min(level or FILE_GZIP_LEVEL, FILE_GZIP_LEVEL))
    elif inner is Codec.ZSTD:
        stream = zstd_stream(pieces, DEFAULT_LEVELS[Codec.ZSTD] if level is None else level, 1)
    else:
        stream = pieces
    return age.encrypt(stream, keys.parsed_recipients())


def _gzip(pieces: Iterator[bytes], level: int) -> Iterator[bytes]:
    cobj = zlib.compressobj(level, zlib.DEFLATED, 31)
    for piece in pieces:
        if out := cobj.compress(piece):
            yield out
    yield cobj.flush()


class _Tee:
    """Pieces passed on as they are, and also to a thread writing the sealed file."""

    def __init__(self, path: Path, codec: Codec, keys: AgeKeys, level: int | None) -> None:
        self.path = path
        self.queue: queue.Queue[bytes | None] = queue.Queue(_DEPTH)
        self.error: BaseException | None = None
        stream = _sealed(iter(self.queue.get, None), codec, keys, level)
        self.thread = threading.Thread(target=self._write, args=(stream,), name="sealed-file")
        self.thread.start()

    def _write(self, stream: Iterator[bytes]) -> None:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                for piece in stream:
                    if fh.write(piece) != len(piece):
                        raise OSError(errno.EIO, f"short write to {self.path}")
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException as exc:
            self.error = exc
            with contextlib.suppress(queue.Empty):
                while True:  # unblock the producer
                    self.queue.get_nowait()

    def _put(self, item: bytes | None) -> None:
        while self.thread.is_alive():
            try:
                self.queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def pieces(self, source: Iterable[bytes]) -> Iterator[bytes]:
        for piece in source:
            self._put(bytes(piece))
            yield piece

    def close(self) -> None:
        """End the file; raises what went wrong writing it."""
        self._put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error


class SealedFiles:
    """This process's encrypted puts' files, by (digest, codec): (manifest SHA-256, path)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.files: dict[tuple[str, Codec], tuple[str, Path]] = {}
        self._registered = False

    def start(
        self, pieces: Iterable[bytes], codec: Codec, keys: AgeKeys, level: int | None, threads: int
    ) -> tuple[Iterator[bytes], _Tee]:
        private_mkdir(self.directory)
        path = self.directory / f"{TMP_PREFIX}file-{secrets.token_hex(8)}"
        tee = _Tee(path, codec, keys, level)
        return tee.pieces(pieces), tee

    def finish(self, tee: _Tee, digest: str, codec: Codec, manifest_sha: str) -> None:
        tee.close()
        old = self.files.pop((digest, Codec(codec)), None)
        if old is not None:
            old[1].unlink(missing_ok=True)
        self.files[(digest, Codec(codec))] = (manifest_sha, tee.path)
        if not self._registered:
            atexit.register(self.drop)
            self._registered = True

    @staticmethod
    def abort(tee: _Tee) -> None:
        with contextlib.suppress(BaseException):
            tee.close()
        tee.path.unlink(missing_ok=True)

    def take(self, digest: str, codec: Codec, dest: Path, expected: str | None) -> int | None:
        """Move the put's file to `dest` (0600, atomically); its size. None when this process
        wrote none for that artifact (or for another manifest than `expected`)."""
        memo = self.files.get((digest, Codec(codec)))
        if memo is None or expected not in (None, "", memo[0]) or not memo[1].is_file():
            return None
        del self.files[(digest, Codec(codec))]
        path = memo[1]
        dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            os.replace(path, dest)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            with path.open("rb") as fh:
                size = write_file(dest, read_chunks(fh))
            path.unlink(missing_ok=True)
            return size
        fd = os.open(dest.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return dest.stat().st_size

    def remove_stale(self, older_than_seconds: float) -> int:
        cutoff = time.time() - older_than_seconds
        removed = 0
        for path in self.directory.glob(f"{TMP_PREFIX}file-*") if self.directory.is_dir() else []:
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime <= cutoff:
                    path.unlink()
                    removed += 1
        return removed

    def drop(self) -> None:
        for _, path in self.files.values():
            path.unlink(missing_ok=True)
        self.files.clear()

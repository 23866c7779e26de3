"""Artifact manifests: the ordered chunk list of one stored stream, and its whole digest.

    b"DLMANIFEST1\\n" || records || footer JSON || len(footer JSON) as 4 bytes big-endian

A record (36 bytes) is a chunk's SHA-256 and raw length. The footer (canonical JSON) holds
the whole stream's SHA-256 and size, the artifact's codec, the chunks' codec and the chunker.
The bytes depend only on the stream, the codecs and the chunker, never on where chunks sit
in packs: the same dump stored twice is the same manifest, stored once, and packs can be
rewritten without touching manifests. Written streaming (records before the footer), so a
dump of any size needs no memory for its chunk list.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import secrets
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from store.chunked.layout import TMP_PREFIX
from store.chunked.packs import private_mkdir
from store.errors import BlobCorrupted
from store.files import fsync_dir

MAGIC = b"DLMANIFEST1\n"
RECORD = struct.Struct(">32sI")
LENGTH = struct.Struct(">I")
_READ = 2048  # records per read


@dataclass(frozen=True, slots=True, kw_only=True)
class Footer:
    digest: str
    raw_size: int
    chunks: int
    codec: str
    chunk_codec: str
    chunker: str

    def to_json(self) -> bytes:
        body: dict[str, Any] = {
            "format": 1,
            "digest": self.digest,
            "raw_size": self.raw_size,
            "chunks": self.chunks,
            "codec": self.codec,
            "chunk_codec": self.chunk_codec,
            "chunker": self.chunker,
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


class ManifestWriter:
    def __init__(self, directory: Path) -> None:
        private_mkdir(directory)
        self.directory = directory
        self.tmp = directory / f"{TMP_PREFIX}{secrets.token_hex(8)}"
        fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.fh = os.fdopen(fd, "wb")
        self.sha = hashlib.sha256()
        self.size = 0
        self.count = 0
        self._write(MAGIC)

    def _write(self, data: bytes) -> None:
        if self.fh.write(data) != len(data):
            raise OSError(errno.EIO, f"short write to {self.tmp}")
        self.sha.update(data)
        self.size += len(data)

    def add(self, records: list[tuple[bytes, int]]) -> None:
        """Append (chunk digest, raw length) records, in stream order."""
        self._write(b"".join([RECORD.pack(d, n) for d, n in records]))
        self.count += len(records)

    def finish(self, footer: Footer, final: Path) -> Finished:
        """Write the footer, fsync, publish at `final`: what is there now. A manifest already
        there is kept unless it is damaged (another chunk codec or chunker is a valid other
        form; the same ones give the same bytes): then this one replaces it in one rename."""
        body = footer.to_json()
        self._write(body + LENGTH.pack(len(body)))
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        sha, size = self.sha.hexdigest(), self.size
        private_mkdir(final.parent)
        try:
            os.link(self.tmp, final)  # exclusive: a concurrent writer of the same name wins
        except FileExistsError:
            there, there_size = _hash(final)
            problem = None if there == sha else _damage(final, footer)
            if problem is None:
                self.tmp.unlink()
                return Finished(created=False, sha=there, size=there_size)
            os.replace(self.tmp, final)
            fsync_dir(final.parent)
            return Finished(
                created=False, sha=sha, size=size, repaired_from=there, repair_reason=problem
            )
        self.tmp.unlink()
        fsync_dir(final.parent)
        return Finished(created=True, sha=sha, size=size)

    def abort(self) -> None:
        self.fh.close()
        self.tmp.unlink(missing_ok=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class Finished:
    created: bool
    sha: str
    size: int
    repaired_from: str | None = None
    repair_reason: str | None = None


def _damage(path: Path, fresh: Footer) -> str | None:
    """Why the manifest at `path` (whose bytes differ from a fresh one of the same stream) is
    damaged, or None when it is a valid manifest of another chunk codec or chunker."""
    try:
        found = Manifest(path).footer
    except BlobCorrupted as exc:
        return str(exc)
    if (found.chunk_codec, found.chunker) != (fresh.chunk_codec, fresh.chunker):
        return None
    return f"manifest {path} is damaged: its bytes differ from the stream's chunk list"


def _hash(path: Path) -> tuple[str, int]:
    data = path.read_bytes()
    return hashlib.sha256(data).hexdigest(), len(data)


class Manifest:
    """A published manifest, read back: its footer, then its records on demand."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with path.open("rb") as fh:
            total = os.fstat(fh.fileno()).st_size
            if total < len(MAGIC) + LENGTH.size or fh.read(len(MAGIC)) != MAGIC:
                raise BlobCorrupted(f"manifest {path} is damaged: no manifest header")
            fh.seek(total - LENGTH.size)
            (length,) = LENGTH.unpack(fh.read(LENGTH.size))
            start = total - LENGTH.size - length
            if start < len(MAGIC):
                raise BlobCorrupted(f"manifest {path} is damaged: bad footer length")
            fh.seek(start)
            try:
                doc = json.loads(fh.read(length))
                self.footer = Footer(**{k: doc[k] for k in Footer.__dataclass_fields__})
            except (ValueError, KeyError, TypeError):
                raise BlobCorrupted(f"manifest {path} is damaged: unreadable footer") from None
        if start - len(MAGIC) != self.footer.chunks * RECORD.size:
            raise BlobCorrupted(f"manifest {path} is damaged: it lists the wrong number of chunks")

    def records(self) -> Iterator[list[tuple[bytes, int]]]:
        """(chunk digest, raw length) in stream order, a batch at a time."""
        left = self.footer.chunks
        with self.path.open("rb") as fh:
            fh.seek(len(MAGIC))
            while left:
                n = min(left, _READ)
                data = fh.read(n * RECORD.size)
                if len(data) != n * RECORD.size:
                    raise BlobCorrupted(f"manifest {self.path} changed while being read")
                yield list(RECORD.iter_unpack(data))
                left -= n

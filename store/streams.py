"""Streams of a whole blob: hashed and counted, compressed and sealed, opened and read."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from store import age
from store.age import AgeKeys
from store.codecs import READ_CHUNK, Codec, compress, decompress

DIGEST = re.compile(r"^[0-9a-f]{64}$")
Progress = Callable[[int], None]


def check_digest(digest: str) -> str:
    if not DIGEST.fullmatch(digest):
        raise ValueError(f"not a SHA-256 hex digest: {digest!r}")
    return digest


def read_chunks(fh: BinaryIO, size: int = READ_CHUNK) -> Iterator[bytes]:
    while chunk := fh.read(size):
        yield chunk


def hash_file(path: Path) -> tuple[str, int]:
    sha, size = hashlib.sha256(), 0
    with path.open("rb") as fh:
        for chunk in read_chunks(fh):
            sha.update(chunk)
            size += len(chunk)
    return sha.hexdigest(), size


class _Counting:
    """Hashes and counts the raw bytes as the compressor pulls them."""

    def __init__(self, chunks: Iterable[bytes], progress: Progress | None) -> None:
        self.chunks = chunks
        self.sha = hashlib.sha256()
        self.size = 0
        self.progress = progress

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.sha.update(chunk)
            self.size += len(chunk)
            if self.progress:
                self.progress(self.size)
            yield chunk


def sealed_stream(
    chunks: Iterable[bytes], codec: Codec, keys: AgeKeys, level: int | None, threads: int
) -> Iterator[bytes]:
    """Compress, then age-encrypt when the codec says so (recipients checked up front)."""
    recipients = keys.parsed_recipients() if codec.sealed else None
    stream = compress(chunks, codec, level, threads)
    return stream if recipients is None else age.encrypt(stream, recipients)


def opened_stream(
    chunks: Iterable[bytes], codec: Codec, keys: AgeKeys, what: str
) -> Iterator[bytes]:
    """Decrypt when the codec says so (identities loaded up front), then decompress."""
    if codec.sealed:
        chunks = age.decrypt(chunks, keys.identities(), what=what, key_file=keys.identity_file)
    return decompress(chunks, codec)

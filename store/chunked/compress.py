"""One chunk, one gzip member or zstd frame; checked by decompressing it at once.

Each chunk compressed on its own makes any artifact's stored form the concatenation of its
chunks' stored bytes: a valid multi-member gzip (or multi-frame zstd) stream, so the files
people restore from are byte copies, never a recompression.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from typing import Any

from store.codecs import DEFAULT_LEVELS, Codec, _zstd

try:  # zlib-ng: the same format, ~3x faster deflate at level 9 (as store.codecs)
    from zlib_ng import zlib_ng as zlib
except ImportError:  # pragma: no cover - zlib-ng is a dependency
    import zlib  # type: ignore[no-redef]
from store.errors import StoreError

# The level a chunk gets when none is configured. gzip: 6, not the 9 of a whole dump: on
# chunks of ~5 KiB zlib-ng's level 6 stores less than its level 9 (and than zlib's level 9)
# for two thirds of the CPU; measured on a realistic dump (docs/PERFORMANCE.md, "Per-chunk
# level"), and kept so by tests/unit/test_chunk_levels.py.
CHUNK_LEVELS: dict[Codec, int] = {**DEFAULT_LEVELS, Codec.GZIP: 6}


def compress_batch(items: Sequence[memoryview], codec: Codec, level: int | None) -> list[bytes]:
    """Compress each chunk, then decompress it and compare: a chunk is written only once it
    is known to read back (so a backup's read-back need not decompress what it just wrote).
    Compared as bytes: comparing with the memoryview itself goes byte by byte in Python's
    memoryview code, 10x slower than memcmp (a quarter of a CPU-second per 120 MiB)."""
    lvl = CHUNK_LEVELS[codec] if level is None else level
    out = []
    if codec is Codec.GZIP:
        for raw in items:
            stored = zlib.compress(raw, lvl, 31)  # one gzip member; zlib's header has mtime 0
            if zlib.decompress(stored, 31) != raw.tobytes():
                raise StoreError("gzip produced a member that does not decompress to its input")
            out.append(stored)
        return out
    if codec is Codec.ZSTD:
        zstandard = _zstd()
        cz = zstandard.ZstdCompressor(level=lvl, write_content_size=True)
        dz = zstandard.ZstdDecompressor()
        for raw in items:
            stored = cz.compress(raw)
            if dz.decompress(stored) != raw.tobytes():
                raise StoreError("zstd produced a frame that does not decompress to its input")
            out.append(stored)
        return out
    raise StoreError(f"chunks cannot be stored with codec {codec.value}")


def empty_stream(codec: Codec) -> bytes:
    """What an empty artifact's file holds: one empty member/frame (an empty file is not a
    valid gzip file)."""
    return compress_batch([memoryview(b"")], codec, None)[0]


def decompress_one(stored: bytes, codec: Codec, raw_len: int) -> bytes:
    """Raises ValueError (or the codec's error) when `stored` is not one whole member/frame."""
    if codec is Codec.GZIP:
        d = zlib.decompressobj(wbits=31)
        raw = d.decompress(stored, raw_len + 1)
        if not d.eof or d.unused_data or d.unconsumed_tail:
            raise ValueError("not one complete gzip member")
        return raw
    if codec is Codec.ZSTD:
        out: bytes = _dz().decompress(stored, max_output_size=raw_len + 1)
        return out
    raise ValueError(f"unknown chunk codec {codec.value}")


_LOCAL = threading.local()


def _dz() -> Any:
    """A zstd decompressor per thread (one is not safe to share)."""
    dz = getattr(_LOCAL, "dz", None)
    if dz is None:
        dz = _LOCAL.dz = _zstd().ZstdDecompressor()
    return dz


def check_batch(
    items: Sequence[tuple[bytes, bytes, int, Codec]],
) -> list[tuple[bytes | None, str | None]]:
    """(raw bytes, None) for each (digest, stored, raw_len, codec) that decompresses to
    `raw_len` bytes hashing to `digest`; (None, the problem) for one that does not."""
    out: list[tuple[bytes | None, str | None]] = []
    for digest, stored, raw_len, codec in items:
        try:
            raw = decompress_one(stored, codec, raw_len)
        except Exception as exc:  # zlib.error, zstandard.ZstdError, ValueError
            out.append((None, f"cannot decompress: {exc}"))
            continue
        if len(raw) != raw_len:
            out.append((None, f"decompresses to {len(raw)} bytes, not {raw_len}"))
        elif hashlib.sha256(raw).digest() != digest:
            out.append((None, f"hashes to {hashlib.sha256(raw).hexdigest()}"))
        else:
            out.append((raw, None))
    return out

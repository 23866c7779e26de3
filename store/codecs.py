"""Codecs: parallel gzip (independent members, as pigz writes them), zstd, and none.

Every codec compresses a stream of chunks with bounded memory and decompresses to a stream.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from enum import StrEnum
from typing import Any

from store.errors import StoreError

try:  # zlib-ng: the same gzip format, ~3x faster deflate at level 9 and much faster inflate
    from zlib_ng import zlib_ng as zlib
except ImportError:  # pragma: no cover - zlib-ng is a dependency; stdlib zlib still works
    import zlib  # type: ignore[no-redef]

GZIP_MEMBER = 4 << 20  # raw bytes per gzip member: big enough that the ratio barely moves
READ_CHUNK = 1 << 20
OUT_CHUNK = 1 << 20  # most raw bytes one decompression step may yield
ZSTD_FEED = 32 << 10  # compressed bytes per zstd step: output <= ZSTD_FEED x ratio


class Codec(StrEnum):
    """How a blob's bytes are stored. The ``+age`` ones are age-encrypted after compression:
    a separate stored object from the plain one of the same digest (another file name)."""

    GZIP = "gzip"
    ZSTD = "zstd"
    NONE = "none"  # pg_dump custom format: already compressed
    GZIP_AGE = "gzip+age"
    ZSTD_AGE = "zstd+age"
    NONE_AGE = "none+age"

    @property
    def sealed(self) -> bool:
        """True when the stored bytes are age-encrypted."""
        return self.value.endswith(AGE_TAG)

    @property
    def compression(self) -> Codec:
        """The compression alone: what (de)compress applies under the encryption."""
        return Codec(self.value.removesuffix(AGE_TAG))

    def with_age(self) -> Codec:
        return Codec(self.compression.value + AGE_TAG)


AGE_TAG = "+age"
SUFFIXES: dict[Codec, str] = {Codec.GZIP: ".sql.gz", Codec.ZSTD: ".sql.zst", Codec.NONE: ".dump"}
SUFFIXES.update({c.with_age(): s + ".age" for c, s in list(SUFFIXES.items())})
DEFAULT_LEVELS: dict[Codec, int] = {Codec.GZIP: 9, Codec.ZSTD: 3, Codec.NONE: 0}


def _zstd() -> Any:
    try:
        import zstandard
    except ImportError:
        raise StoreError(
            "zstd compression needs the zstandard package: pip install 'dumpledger[zstd]'"
        ) from None
    return zstandard


def rechunk(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    """Regroup a stream into pieces of exactly `size` bytes (the last may be shorter)."""
    buf = bytearray()
    for chunk in chunks:
        buf += chunk
        while len(buf) >= size:
            yield bytes(buf[:size])
            del buf[:size]
    if buf:
        yield bytes(buf)


def _gzip_member(data: bytes, level: int) -> bytes:
    """One complete gzip member; zlib's own gzip header has mtime 0, so output is repeatable."""
    cobj = zlib.compressobj(level, zlib.DEFLATED, 31)
    return cobj.compress(data) + cobj.flush()


def gzip_parallel(chunks: Iterable[bytes], level: int, threads: int) -> Iterator[bytes]:
    """Independent gzip members compressed on `threads` cores, emitted in order.

    At most 2 x threads members are in flight, so memory stays bounded whatever the input.
    """
    with ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="gzip") as pool:
        pending: deque[Future[bytes]] = deque()
        members = 0
        for piece in rechunk(chunks, GZIP_MEMBER):
            members += 1
            pending.append(pool.submit(_gzip_member, piece, level))
            while len(pending) > 2 * max(1, threads):
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
        if members == 0:  # empty input still makes a valid (empty) gzip file
            yield _gzip_member(b"", level)


def zstd_stream(chunks: Iterable[bytes], level: int, threads: int) -> Iterator[bytes]:
    """zstd on `threads` cores; the chunker API keeps memory bounded (compressobj did not)."""
    zstandard = _zstd()
    compressor = zstandard.ZstdCompressor(level=level, threads=threads, write_checksum=True)
    chunker = compressor.chunker(chunk_size=READ_CHUNK)
    for chunk in chunks:
        yield from chunker.compress(chunk)
    yield from chunker.finish()


def compress(
    chunks: Iterable[bytes], codec: Codec, level: int | None, threads: int
) -> Iterator[bytes]:
    codec = Codec(codec).compression  # the age layer is the store's, after this
    lvl = DEFAULT_LEVELS[codec] if level is None else level
    if codec is Codec.GZIP:
        return gzip_parallel(chunks, lvl, threads)
    if codec is Codec.ZSTD:
        return zstd_stream(chunks, lvl, threads)
    return iter(chunks)


def decompress(chunks: Iterable[bytes], codec: Codec) -> Iterator[bytes]:
    codec = Codec(codec).compression  # decrypted (by the store) before this
    if codec is Codec.GZIP:
        return _gunzip_checked(chunks)
    if codec is Codec.ZSTD:
        return _unzstd(chunks)
    return iter(chunks)


def _gunzip_checked(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Inflate member after member, at most OUT_CHUNK bytes at a time (pgbench-like data
    inflates 35:1, so unbounded calls would balloon memory); a member without its end is
    truncation."""
    d = zlib.decompressobj(wbits=31)
    in_member = False
    for chunk in chunks:
        data = chunk
        while True:
            if data:
                in_member = True
            out = d.decompress(data, OUT_CHUNK)
            if out:
                yield out
            if d.eof:
                data, in_member = d.unused_data, False
                d = zlib.decompressobj(wbits=31)
                if not data:
                    break
            elif d.unconsumed_tail:
                data = d.unconsumed_tail
            elif len(out) == OUT_CHUNK:
                data = b""  # output may still be pending: ask again
            else:
                break
    if in_member:
        raise EOFError("gzip stream is truncated: the last member has no end")


def _unzstd(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Frame after frame (an exported chunked artifact is one frame per chunk); small slices
    are fed, so each call's output stays small even at 100:1 ratios."""
    zstandard = _zstd()
    dctx = zstandard.ZstdDecompressor()
    dobj = dctx.decompressobj()
    in_frame = False
    for chunk in chunks:
        view = memoryview(chunk)
        for start in range(0, len(view), ZSTD_FEED):
            data = bytes(view[start : start + ZSTD_FEED])
            while data:
                in_frame = True
                out = dobj.decompress(data)
                if out:
                    yield out
                data = b""
                if dobj.eof:
                    data, in_frame = dobj.unused_data, False
                    dobj = dctx.decompressobj()
    if in_frame:
        raise EOFError("zstd stream is truncated: no end-of-frame")

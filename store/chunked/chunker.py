"""Content-defined chunking of a stream (FastCDC 2020, pyfastcdc's Cython implementation).

Cut points depend only on the bytes from a chunk's start up to `MAX` bytes on, so an edit
moves only the chunks around it. The stream is cut in buffers of `FEED` bytes; a chunk that
starts less than `MAX` bytes before a buffer's end is cut again with the next buffer, so the
chunks are exactly those of cutting the whole stream at once, whatever the pieces' sizes.

Average 4 KiB (pyfastcdc's real mean is avg + min, about 5 KiB): on a realistic dump with a
6-hour slice of writes, 5-8 % of the chunks are new per backup, against 8-13 % at 8 KiB and
14-22 % at 16 KiB (docs/PERFORMANCE.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

AVG = 4096
MIN = 1024
MAX = 16384
FEED = 2 << 20  # bytes cut per call: large, so the per-call cost vanishes
NAME = f"fastcdc2020 avg={AVG} min={MIN} max={MAX}"


def _fastcdc() -> object:
    from pyfastcdc import FastCDC

    return FastCDC(AVG, min_size=MIN, max_size=MAX)


def cut(pieces: Iterable[bytes]) -> Iterator[memoryview]:
    """The chunks of the concatenated `pieces`, in order, as read-only views (no copy)."""
    cdc = _fastcdc()
    pending: list[bytes] = []
    size = 0
    for piece in pieces:
        if not piece:
            continue
        pending.append(piece)
        size += len(piece)
        if size < FEED:
            continue
        buf = b"".join(pending)
        done = 0
        for ch in cdc.cut_buf(buf):  # type: ignore[attr-defined]
            if ch.offset + MAX > len(buf):
                break  # its cut may move with more bytes: cut it again with the next buffer
            yield ch.data
            done = ch.offset + ch.length
        pending, size = [buf[done:]], len(buf) - done
    if size:
        buf = b"".join(pending)
        for ch in cdc.cut_buf(buf):  # type: ignore[attr-defined]
            yield ch.data

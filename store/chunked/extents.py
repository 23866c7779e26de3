"""Where a put's stored bytes are, in manifest order: runs of adjacent chunks in packs.

The artifact's file (what `gunzip -c` reads) is its chunks' stored bytes in manifest order.
The put that writes a manifest learns where each chunk is (an index hit: pack and offset; a
new chunk: where it was written), so it records that here as runs of adjacent stored bytes,
and the file is then copied run by run in the kernel (`os.copy_file_range`), without one
index lookup and one Python call per chunk. Memory is bounded: past `BUDGET` bytes of runs
the recorder gives up, and the file is copied chunk by chunk as for any other artifact.
"""

from __future__ import annotations

import errno
import os
from array import array
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path

from store.errors import BlobCorrupted, BlobMissing

BUDGET = 16 << 20  # bytes of run and new-chunk records, at most, before giving up
_NEW = -1  # a run of new chunks: (NEW, first ordinal, count)
_OPEN = 32  # pack files kept open while copying
_NO_KERNEL_COPY = (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM)

Run = tuple[str, int, int]  # pack name, offset, length


class ExtentRecorder:
    """Built in stream order by one put. A chunk the index knows is (pack id, offset, stored
    length); a new one is its ordinal among the put's new chunks, placed once written (new
    chunks are written in ordinal order, consecutively, into the put's packs)."""

    def __init__(self) -> None:
        self.runs: array[int] | None = array("q")  # (pack id | NEW, offset | ordinal, len)
        self.offsets = array("Q")  # offset of each new chunk in its pack, by ordinal
        self.lengths = array("I")  # its stored length
        self.packs: list[tuple[int, str]] = []  # (first ordinal, name) of each new pack
        self.count = 0  # new chunks taken (ordinals given)
        self._first = 0  # first ordinal of the pack being written

    @property
    def dropped(self) -> bool:
        return self.runs is None

    def known(self, pack: int, offset: int, length: int) -> None:
        runs = self.runs
        if runs is None:
            return
        if runs and runs[-3] == pack and runs[-2] + runs[-1] == offset:
            runs[-1] += length
            return
        runs.extend((pack, offset, length))
        self._check_budget()

    def new(self) -> int:
        """A chunk first seen now: its ordinal (for `again`)."""
        ordinal = self.count
        self.count += 1
        self.again(ordinal)
        return ordinal

    def again(self, ordinal: int) -> None:
        """A chunk new in this put, seen (again) here."""
        runs = self.runs
        if runs is None:
            return
        if runs and runs[-3] == _NEW and runs[-2] + runs[-1] == ordinal:
            runs[-1] += 1
            return
        runs.extend((_NEW, ordinal, 1))
        self._check_budget()

    def written(self, offset: int, length: int) -> None:
        """The next new chunk (in ordinal order) went to `offset` of the open pack."""
        if self.runs is not None:
            self.offsets.append(offset)
            self.lengths.append(length)

    def pack_done(self, name: str) -> None:
        """The open pack was published as `name`; the next new chunk starts another."""
        if self.runs is not None:
            self.packs.append((self._first, name))
        self._first = len(self.offsets)

    def _check_budget(self) -> None:
        assert self.runs is not None
        used = len(self.runs) * 8 + len(self.offsets) * 12
        if used > BUDGET:
            self.runs, self.offsets, self.lengths, self.packs = None, array("Q"), array("I"), []

    def resolve(self, pack_name: Callable[[int], str]) -> list[Run] | None:
        """The runs as (pack name, offset, length), adjacent ones merged; None if dropped."""
        if self.runs is None or len(self.offsets) != self.count:
            return None
        firsts = [first for first, _ in self.packs]
        out: list[Run] = []
        runs = self.runs
        for i in range(0, len(runs), 3):
            ref, start, length = runs[i], runs[i + 1], runs[i + 2]
            if ref != _NEW:
                _append(out, (pack_name(ref), start, length))
                continue
            while length:  # ordinals start .. start+length-1, split where a pack ends
                p = bisect_right(firsts, start) - 1
                end = firsts[p + 1] if p + 1 < len(firsts) else self.count
                take = min(length, end - start)
                last = start + take - 1
                span = self.offsets[last] + self.lengths[last] - self.offsets[start]
                _append(out, (self.packs[p][1], self.offsets[start], span))
                start, length = start + take, length - take
        return out


def _append(out: list[Run], run: Run) -> None:
    if out and out[-1][0] == run[0] and out[-1][1] + out[-1][2] == run[1]:
        out[-1] = (run[0], out[-1][1], out[-1][2] + run[2])
    else:
        out.append(run)


def copy_runs(runs: Iterable[Run], pack_path: Callable[[str], Path], out: int) -> int:
    """Append the runs' bytes to the file `out` (an fd); their total length. In the kernel
    where it can (`copy_file_range`), else through a buffer."""
    fds: OrderedDict[str, int] = OrderedDict()
    total = 0
    kernel = True
    name = ""
    try:
        for name, offset, length in runs:
            fd = _open(fds, name, pack_path)
            kernel = kernel and _copy_in_kernel(fd, out, offset, length)
            if not kernel:
                _copy_buffered(fd, out, offset, length)
            total += length
    except _Truncated:
        raise BlobCorrupted(
            f"pack {pack_path(name)} is truncated; run `dumpledger verify`"
        ) from None
    finally:
        for fd in fds.values():
            os.close(fd)
    return total


class _Truncated(Exception):
    pass


def _open(fds: OrderedDict[str, int], name: str, pack_path: Callable[[str], Path]) -> int:
    fd = fds.get(name)
    if fd is not None:
        fds.move_to_end(name)
        return fd
    try:
        fd = os.open(pack_path(name), os.O_RDONLY)
    except FileNotFoundError:
        raise BlobMissing(
            f"pack {pack_path(name)} is missing; run `dumpledger verify --all`"
        ) from None
    fds[name] = fd
    if len(fds) > _OPEN:
        os.close(fds.popitem(last=False)[1])
    return fd


def _copy_in_kernel(src: int, dst: int, offset: int, length: int) -> bool:
    """`length` bytes from `offset` of src, at dst's position (which advances); False, with
    nothing copied, when the kernel cannot copy between these two files."""
    first = True
    while length:
        try:
            n = os.copy_file_range(src, dst, length, offset)
        except OSError as exc:
            if first and exc.errno in _NO_KERNEL_COPY:
                return False
            raise
        if n == 0:
            raise _Truncated
        first = False
        offset, length = offset + n, length - n
    return True


def _copy_buffered(src: int, dst: int, offset: int, length: int) -> None:
    while length:
        data = os.pread(src, min(length, 1 << 20), offset)
        if not data:
            raise _Truncated
        view = memoryview(data)
        while view:
            view = view[os.write(dst, view) :]
        offset, length = offset + len(data), length - len(data)

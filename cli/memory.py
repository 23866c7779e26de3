"""A dumpledger process's memory (glibc): two malloc arenas, and free memory handed back.

A backup runs six threads that allocate and free buffers of 1-2 MiB and many smaller ones
(reading pg_dump, cutting, compressing, re-hashing packs). glibc gives a thread that allocates
while another holds the main arena an arena of its own, up to eight per core, and keeps what a
thread frees in its arena; the free pieces between live ones are not returned to the system.
The process's resident memory grew with the size of the dump: 158 MB at 2 GiB of plain dump,
231 MB at 3.9 GiB, against the 150 MB a backup may use (docs/PERFORMANCE.md). So, while a
command runs: at most two arenas, and `malloc_trim` twice a second (it returns the free pages
inside the heaps; ~1 ms). The backup is no slower for it.

Elsewhere (another C library, macOS) nothing changes.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
from collections.abc import Iterator

M_ARENA_MAX = -8  # glibc's mallopt parameter
ARENAS = 2
TRIM_EVERY = 0.5  # seconds


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):  # no C library to ask, or not glibc
        return None
    return libc


def limit_arenas(libc: ctypes.CDLL, arenas: int = ARENAS) -> bool:
    """At most `arenas` malloc arenas from now on; whether glibc took the setting."""
    return bool(libc.mallopt(M_ARENA_MAX, arenas))


@contextlib.contextmanager
def bounded_heap(every: float = TRIM_EVERY) -> Iterator[bool]:
    """Two arenas, and the heaps' free pages returned every `every` seconds until the block
    ends; yields whether this C library allows it. Enter it before threads allocate."""
    libc = _libc()
    if libc is None or not limit_arenas(libc):
        yield False
        return
    stop = threading.Event()

    def trim() -> None:
        while not stop.wait(every):
            libc.malloc_trim(0)

    trimmer = threading.Thread(target=trim, name="malloc-trim", daemon=True)
    trimmer.start()
    try:
        yield True
    finally:
        stop.set()
        trimmer.join()

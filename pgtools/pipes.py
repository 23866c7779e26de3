"""Wider pipes between dumpledger and the client programs it runs (Linux).

A pipe holds 64 KiB by default. pg_dump writes its dump into one while the store cuts, hashes
and looks up what it read; each time the store's threads are busy past the moment the pipe
fills, pg_dump stops writing and the server stops sending. With a pipe of 1 MiB (the most an
unprivileged process may ask for, `/proc/sys/fs/pipe-max-size`) pg_dump writes on meanwhile:
a later backup's dump phase took ~25 % less wall time here (docs/PERFORMANCE.md). Where the
system refuses (another limit, another kernel) the pipe stays as it was: nothing else changes.
"""

from __future__ import annotations

import fcntl
import functools
from pathlib import Path
from typing import IO

WANTED = 1 << 20  # bytes: a dump read (pgtools.dump.CHUNK) empties it in one call


@functools.cache
def _allowed() -> int:
    try:
        return int(Path("/proc/sys/fs/pipe-max-size").read_text())
    except (OSError, ValueError):
        return WANTED


def widen(pipe: IO[bytes] | None) -> int | None:
    """Ask the kernel for a pipe of up to WANTED bytes; its size now, or None (not widened)."""
    setsize = getattr(fcntl, "F_SETPIPE_SZ", None)
    if pipe is None or setsize is None:
        return None
    try:
        return fcntl.fcntl(pipe.fileno(), setsize, min(WANTED, _allowed()))
    except OSError:  # EPERM: the user's pipe pages are over the soft limit; EBUSY
        return None

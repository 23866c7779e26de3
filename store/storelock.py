"""The store's lock: who may collect while who writes or reads (store/.collect.lock).

A backup holds a shared lock from its first put until the catalog references its blobs
(restores and drills hold it while they read). The collector takes the lock exclusively, so
it never sees a blob that is written or deduplicated but not yet referenced; inside that
window it re-checks each candidate in a catalog transaction before removing it. A read holds
the shared lock too (packs are repacked under the exclusive one). flock is advisory and per
host: the store must be on a local filesystem.
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from store.errors import StoreError

LOCK_FILE = ".collect.lock"


class StoreLock:
    """The lock file of the store at `root`; `mkdir` makes the root (0700) when needed."""

    def __init__(self, root: Path, mkdir: Callable[[Path], None]) -> None:
        self.root = root
        self._mkdir = mkdir
        self.holds = 0  # locks this object holds now (protect or collecting)
        self._holds_lock = threading.Lock()

    @contextmanager
    def shared(self) -> Iterator[None]:
        """Hold blobs against collection (many holders at once)."""
        with self._lock(fcntl.LOCK_SH, wait=None):
            yield

    @contextmanager
    def exclusive(self, wait: float = 0.0) -> Iterator[bool]:
        """Exclusive hold for collection; yields False when holders did not leave in `wait`."""
        with self._lock(fcntl.LOCK_EX, wait=wait) as got:
            yield got

    @contextmanager
    def reading(self) -> Iterator[None]:
        """A read holds the shared lock, unless this object holds a lock already; a store that
        cannot be locked (a read-only copy) is read as it is: nothing collects it from here."""
        if self.holds:
            yield
            return
        try:
            fd = self._open()
        except StoreError:
            raise
        except OSError:
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    def _open(self) -> int:
        """The lock file, never through a symbolic link (one planted there would have
        dumpledger create or lock a file elsewhere)."""
        path = self.root / LOCK_FILE
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise StoreError(
                    f"{path} is a symbolic link, not the store's lock file: remove it "
                    "(dumpledger creates the lock file itself)"
                ) from None
            raise

    @contextmanager
    def _lock(self, mode: int, wait: float | None) -> Iterator[bool]:
        self._mkdir(self.root)
        fd = self._open()
        try:
            if wait is None:
                fcntl.flock(fd, mode)
            else:
                deadline = time.monotonic() + wait
                while True:
                    try:
                        fcntl.flock(fd, mode | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() >= deadline:
                            yield False
                            return
                        time.sleep(0.05)
            self._held(+1)
            try:
                yield True
            finally:
                self._held(-1)
        finally:
            os.close(fd)  # releases the lock

    def _held(self, change: int) -> None:
        with self._holds_lock:
            self.holds += change

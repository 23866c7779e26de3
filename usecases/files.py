"""File helpers for the views under backups/: one atomic-write primitive, private modes."""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    os.chmod(path, DIR_MODE)
    return path


@contextmanager
def dir_lock(path: Path, name: str) -> Iterator[None]:
    """An exclusive lock on the file `name` in the directory `path` (created 0600, never
    through a symbolic link), held until the block ends."""
    fd = os.open(path / name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, mode: int = FILE_MODE, private: bool = True) -> None:
    """Temp file beside the target, write, fsync, rename, fsync the directory; 0600.

    `private=False` (with another `mode`) is for files other programs read, in a directory
    that is not ours (node_exporter's textfile directory): the directory is left as it is.
    """
    if private:
        private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            written = fh.write(data)
            if written != len(data):
                raise OSError(f"short write to {tmp}: {written} of {len(data)} bytes")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_symlink(link: Path, target: Path) -> None:
    """Point `link` at `target` (relative), replacing any old link in one rename."""
    private_dir(link.parent)
    relative = os.path.relpath(target, link.parent)
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(relative, tmp)
    try:
        os.replace(tmp, link)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(link.parent)

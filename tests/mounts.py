"""Real filesystems for failure tests: a size-limited tmpfs (a disk that fills up) that can be
remounted read-only (a mounted offsite disk, a write-protected copy). Mounting needs root (CI
and this container run the suite as root)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def tmpfs(path: Path, size: str = "64m") -> Iterator[Path]:
    """A tmpfs of `size` mounted at `path` (made if missing), unmounted afterwards."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        raise RuntimeError("the full-disk and read-only tests need root and mount(8)")
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size},mode=0700"
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def remount(path: Path, *, read_only: bool) -> None:
    """Make the tmpfs at `path` read-only (or writable again), for root too."""
    mode = "ro" if read_only else "rw"
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True)

"""A log file per run in backups/logs/: what ran, timings, sizes, errors; never a secret.

A run log is always a new file, created exclusively and never through a symbolic link: a link
planted at `backups/logs/backup_<time>.log` (or at `backups/logs` itself) must not make a backup
append to whatever it points at. Two runs in the same second get `_2`, `_3`, ...
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import TextIO

from usecases.errors import UseCaseError
from usecases.files import FILE_MODE, private_dir

NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class RunLogUnavailable(UseCaseError):
    """The run log cannot be created (read-only directory, full disk, a planted link)."""


class _QuietHandler(logging.StreamHandler[TextIO]):
    """Writes to the run log; a write that fails (a full disk) is dropped, not printed as a
    traceback: the log is a convenience, the catalog holds the record."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass

    def close(self) -> None:
        try:
            self.acquire()
            with contextlib.suppress(OSError):
                self.stream.close()
        finally:
            self.release()
            super().close()


def open_run_log(logs_dir: Path, kind: str, now_local: datetime) -> tuple[logging.Logger, Path]:
    stem = f"{kind}_{now_local.strftime('%Y%m%d_%H%M%S')}"
    try:
        if logs_dir.is_symlink():  # private_dir would chmod whatever it points at
            raise OSError(errno.ELOOP, "a symbolic link")
        private_dir(logs_dir)
        dir_fd = os.open(logs_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        raise RunLogUnavailable(_why(logs_dir, exc)) from None
    try:
        fd, path = _create(dir_fd, logs_dir, stem)
    finally:
        os.close(dir_fd)
    logger = logging.getLogger(f"dumpledger.run.{path.name}.{os.getpid()}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler = _QuietHandler(os.fdopen(fd, "a", encoding="utf-8"))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    return logger, path


def _create(dir_fd: int, logs_dir: Path, stem: str) -> tuple[int, Path]:
    for n in range(1, 100):
        name = f"{stem}.log" if n == 1 else f"{stem}_{n}.log"
        try:
            return os.open(name, NEW_FILE, FILE_MODE, dir_fd=dir_fd), logs_dir / name
        except FileExistsError:
            continue  # another run of the same second, or something planted: never reuse it
        except OSError as exc:
            raise RunLogUnavailable(_why(logs_dir / name, exc)) from None
    raise RunLogUnavailable(f"cannot create a run log in {logs_dir}: 99 logs of this second exist")


def _why(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return (
            f"cannot create a run log: {path} is a symbolic link; remove it "
            "(run logs are never written through a link)"
        )
    return (
        f"cannot create a run log in {path}: {exc.strerror or exc}; check that the backup "
        "directory is writable and the disk has room"
    )


def append_line(path: Path, line: str) -> None:
    """Add a line to a run log, never through a link (O_NOFOLLOW also refuses to create one's
    target); a failure is ignored (the catalog has the record)."""
    from datetime import datetime as _dt

    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, FILE_MODE)
    except OSError:
        return
    try:
        os.write(fd, f"{_dt.now():%Y-%m-%d %H:%M:%S} INFO {line}\n".encode())
    except OSError:
        pass
    finally:
        os.close(fd)


def close_run_log(logger: logging.Logger) -> None:
    for handler in list(logger.handlers):
        handler.close()
        logger.removeHandler(handler)

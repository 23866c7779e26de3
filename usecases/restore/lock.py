"""One restore into a database at a time: a lock file per target in this backup directory,
and an advisory lock on the target's server (restores from other hosts or backup
directories). The second restore is refused before it records or touches anything, naming
the one that runs."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pgtools.advisory import RestoreLock
from pgtools.databases import maintenance_target
from pgtools.target import DbTarget
from usecases.errors import UseCaseError
from usecases.files import private_dir

if TYPE_CHECKING:
    from usecases.context import App


class RestoreBusy(UseCaseError):
    """Another restore into the same database is running; nothing was done."""


def busy(dbname: str, who: str, since: datetime | None) -> RestoreBusy:
    when = f", since {since.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC" if since else ""
    return RestoreBusy(
        f"another restore into {dbname} is running ({who}{when}); nothing was done: wait for "
        "it to finish, then run this one again"
    )


@contextmanager
def restore_lock(app: App, target: DbTarget) -> Iterator[None]:
    pid, host = os.getpid(), socket.gethostname()
    with _local_lock(app, target, pid, host):
        lock = RestoreLock(
            maintenance_target(target), target.dbname, f"dumpledger restore pid {pid} on {host}"
        )
        try:
            held = lock.acquire()
            if held is not None:
                raise busy(
                    target.dbname, held.label.removeprefix("dumpledger restore "), held.since
                )
            yield
        finally:
            lock.release()


@contextmanager
def _local_lock(app: App, target: DbTarget, pid: int, host: str) -> Iterator[None]:
    where = f"{target.host}:{target.port}/{target.dbname}"
    name = hashlib.sha256(where.encode()).hexdigest()[:16]
    path = private_dir(app.settings.backup_dir / "locks") / f"restore-{name}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _held_by(fd, target.dbname) from None
        os.ftruncate(fd, 0)
        since = app.clock().isoformat()
        os.pwrite(
            fd, json.dumps({"pid": pid, "host": host, "since": since, "target": where}).encode(), 0
        )
        yield
    finally:
        os.close(fd)  # releases the lock


def _held_by(fd: int, dbname: str) -> RestoreBusy:
    info: dict[str, object] = {}
    with contextlib.suppress(OSError, ValueError):
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
    since = None
    with contextlib.suppress(TypeError, ValueError):
        since = datetime.fromisoformat(str(info.get("since")))
    return busy(dbname, f"pid {info.get('pid', '?')} on {info.get('host', '?')}", since)

"""A PostgreSQL advisory lock that one restore into a database holds while it runs, on the
target's server: two restores into one database, from any host or backup directory, never
run at once. The holding session's application_name says who holds it."""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from pgtools.session import connect
from pgtools.target import DbTarget

LOCK_CLASS = 0x646C7273  # "dlrs": dumpledger restore
HOLDER_SQL = """
SELECT a.application_name, a.backend_start, a.client_addr::text
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s
  AND l.objsubid = 2
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


@dataclass(frozen=True, slots=True)
class Holder:
    label: str  # the holder's application_name: "dumpledger restore pid N on HOST"
    since: datetime | None


def lock_key(dbname: str) -> int:
    return int.from_bytes(hashlib.sha256(dbname.encode()).digest()[:4], "big") & 0x7FFFFFFF


class RestoreLock:
    """Held from `acquire` until `release` (or the session ends, the process with it)."""

    def __init__(self, where: DbTarget, dbname: str, holder: str) -> None:
        self.key = lock_key(dbname)
        self.conn: psycopg.Connection[Any] = connect(
            where, autocommit=True, application_name=holder[:63]
        )

    def acquire(self) -> Holder | None:
        """None when this session holds the lock now; else who does."""
        row = self.conn.execute(
            "SELECT pg_try_advisory_lock(%s, %s)", (LOCK_CLASS, self.key)
        ).fetchone()
        if row and row[0]:
            return None
        held = self.conn.execute(HOLDER_SQL, (LOCK_CLASS, self.key)).fetchone()
        if held is None:  # released in between: one more try
            row = self.conn.execute(
                "SELECT pg_try_advisory_lock(%s, %s)", (LOCK_CLASS, self.key)
            ).fetchone()
            return None if row and row[0] else Holder("another session", None)
        return Holder(str(held[0] or "another session"), held[1])

    def release(self) -> None:
        with contextlib.suppress(psycopg.Error):
            self.conn.close()  # ends the session: the lock goes with it

"""A restore into a live database that waits too long for a lock: cancelled, and who holds it.

`restore --table`, `--schema` and the restore into a Supabase instance write into the live
database in one transaction. Their first statements (TRUNCATE, DROP) need ACCESS EXCLUSIVE
locks; behind an application's open transaction such a statement waits, and while it waits
every other query on that table queues behind it: the application stalls. pg_dump's own
`SET lock_timeout = 0` at the top of every dump rules out a session setting, so the restore's
psql session is watched from a second connection instead: once one of its lock requests has
waited `database.lock_wait_timeout_seconds`, its statement is cancelled (the transaction rolls
back: nothing was changed) and the sessions it waited for are named (pid, user, application,
state, since when; never their query text, which may hold data or a password).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pgtools.errors import RestoreError
from pgtools.target import DbTarget

POLL_SECONDS = 0.2
WAITING_SQL = """
SELECT l.pid, pg_blocking_pids(l.pid),
       coalesce(quote_ident(n.nspname) || '.' || quote_ident(c.relname), l.locktype) AS what
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
  LEFT JOIN pg_class c ON c.oid = l.relation
  LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE a.application_name = %s AND NOT l.granted
"""
BLOCKERS_SQL = """
SELECT pid, usename, application_name, state,
       to_char(xact_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS xact_start
FROM pg_stat_activity WHERE pid = ANY(%s) ORDER BY xact_start NULLS LAST, pid
"""


class RestoreLockTimeout(RestoreError):
    """A restore's lock request waited longer than database.lock_wait_timeout_seconds."""


class LockWatch:
    """Watches the sessions named `app_name` from a connection of its own (a thread)."""

    def __init__(self, target: DbTarget, timeout: float) -> None:
        self.target = target
        self.timeout = timeout
        self.app_name = f"dumpledger-restore-{secrets.token_hex(6)}"
        self.fired: str | None = None  # what was cancelled, and who held the lock
        self.failed: str | None = None  # the watch itself could not run (said, not raised)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lockwatch", daemon=True)

    def _run(self) -> None:
        from pgtools.session import connect

        try:
            with connect(self.target, autocommit=True) as conn:
                self._watch(conn)
        except Exception as exc:  # a watch that cannot connect must not fail the restore
            self.failed = " ".join(str(exc).split())

    def _watch(self, conn: Any) -> None:
        since: dict[tuple[int, str], float] = {}
        while not self._stop.wait(POLL_SECONDS):
            now = time.monotonic()
            rows = conn.execute(WAITING_SQL, (self.app_name,)).fetchall()
            waiting = {(int(pid), str(what)): list(blockers) for pid, blockers, what in rows}
            since = {k: since.get(k, now) for k in waiting}
            late = [k for k, t in since.items() if now - t >= self.timeout]
            if late:
                pid, what = late[0]
                self.fired = self._describe(conn, what, waiting[late[0]])
                conn.execute("SELECT pg_cancel_backend(%s)", (pid,))
                return

    def _describe(self, conn: Any, what: str, blockers: list[int]) -> str:
        rows = conn.execute(BLOCKERS_SQL, (blockers,)).fetchall()
        held = "; ".join(_holder(r) for r in rows) or "sessions that have ended since"
        first = f"SELECT pg_terminate_backend({rows[0][0]})" if rows else "nothing"
        return (
            f"the restore waited longer than database.lock_wait_timeout_seconds "
            f"({self.timeout:g} s) for a lock on {what}, held by {held}; it was cancelled and "
            f"nothing was changed (its transaction rolled back): let that transaction finish or "
            f"end it ({first}) and restore again, or raise database.lock_wait_timeout_seconds"
        )

    def __enter__(self) -> LockWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _holder(row: tuple[Any, ...]) -> str:
    pid, user, app, state, since = row
    parts = [f"user {user}" if user else "", f"application {app!r}" if app else ""]
    parts += [state or "", f"transaction since {since}" if since else ""]
    return f"pid {pid} ({', '.join(p for p in parts if p)})"


@contextmanager
def watched(target: DbTarget, timeout: float) -> Iterator[LockWatch | None]:
    """A LockWatch over the sessions that will name themselves `watch.app_name`; None when
    `timeout` is 0 (wait for ever)."""
    if timeout <= 0:
        yield None
        return
    with LockWatch(target, timeout) as watch:
        yield watch

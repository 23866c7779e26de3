"""A backup that waited too long for a table lock: who holds it.

pg_dump (`--lock-wait-timeout`) and the snapshot session (`lock_timeout`) give up after the
configured wait instead of queueing for ever behind another session. Then the sessions that
hold, or queue for, an ACCESS EXCLUSIVE lock on a table of the database (the only mode that
conflicts with the ACCESS SHARE a dump needs) are named: table, pid, user, application and
since when, from pg_locks and pg_stat_activity. Never their query text: it may hold data or
a password.
"""

from __future__ import annotations

from typing import Any

from pgtools.errors import PgDumpFailed
from pgtools.target import DbTarget

HOLDERS_SQL = """
SELECT format('%I.%I', n.nspname, c.relname) AS relation, l.mode, l.granted, a.pid, a.usename,
       a.application_name, a.state,
       to_char(a.xact_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS xact_start,
       to_char(a.query_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS query_start
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
  JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE l.locktype = 'relation' AND l.mode = 'AccessExclusiveLock'
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.pid <> pg_backend_pid()
ORDER BY l.granted DESC, a.xact_start NULLS LAST, a.pid
LIMIT 5
"""
TIMEOUT_WORDS = ("lock timeout", "statement timeout")


class PgLockTimeout(PgDumpFailed):
    """A table lock was not granted within database.lock_wait_timeout_seconds."""


def is_lock_timeout(message: str) -> bool:
    """pg_dump's `--lock-wait-timeout` failure (a statement timeout on its LOCK TABLE), or the
    snapshot session's lock_timeout."""
    lower = message.lower()
    return any(w in lower for w in TIMEOUT_WORDS) and (
        "lock table" in lower or "lock timeout" in lower
    )


def lock_holders(target: DbTarget) -> list[dict[str, Any]]:
    """Sessions holding or queueing for an ACCESS EXCLUSIVE table lock in the database."""
    from pgtools.session import connect

    with connect(target, autocommit=True) as conn:
        cur = conn.execute(HOLDERS_SQL)
        names = [d.name for d in cur.description or []]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def describe_holder(h: dict[str, Any]) -> str:
    how = "held" if h["granted"] else "queued for"
    who = ", ".join(
        part
        for part in (
            f"user {h['usename']}" if h.get("usename") else "",
            f"application {h['application_name']!r}" if h.get("application_name") else "",
            f"{h['state']}" if h.get("state") else "",
            f"transaction since {h['xact_start']}" if h.get("xact_start") else "",
            f"query since {h['query_start']}" if h.get("query_start") else "",
        )
        if part
    )
    return f"{h['relation']} is {how} in ACCESS EXCLUSIVE mode by pid {h['pid']} ({who})"


def lock_timeout_error(target: DbTarget, waited_seconds: float, cause: str) -> PgLockTimeout:
    """The one line a backup that gave up waiting for a lock fails with."""
    try:
        holders = lock_holders(target)
    except Exception:  # the server went away meanwhile (PgError, psycopg): say what we know
        holders = []
    if holders:
        found = "; ".join(describe_holder(h) for h in holders)
        pid = holders[0]["pid"]
        todo = (
            f"let that transaction finish or end it (SELECT pg_terminate_backend({pid})), or "
            "raise database.lock_wait_timeout_seconds"
        )
    else:
        found = "no session holds such a lock any more"
        todo = "run the backup again"
    return PgLockTimeout(
        f"a table was locked by another session for longer than "
        f"database.lock_wait_timeout_seconds ({waited_seconds:g} s): {found}; {todo} "
        f"({cause})"
    )

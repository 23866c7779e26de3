"""Reading the catalog for the listing commands, without paying for what they do not need.

`list` only reads. When the catalog is an up-to-date SQLite file and no backup of this host was
abandoned (its process died), the rows come straight from sqlite3: no SQLAlchemy, no Alembic,
no store. Otherwise (PostgreSQL catalog, a catalog to create or migrate, an abandoned backup to
record as failed) it goes the full way through App.open, exactly as the other commands do.
"""

from __future__ import annotations

import os
import socket
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from catalog.errors import explain_database_error
from catalog.read import Query, open_sqlite, sqlite_file, sqlite_query

if TYPE_CHECKING:
    from usecases.config.settings import Settings


# RestoreStarted events without their end (RestoreCompleted or RestoreFailed, same subject).
OPEN_RESTORES_SQL = """
SELECT json_extract(s.payload, '$.hostname') AS hostname, json_extract(s.payload, '$.pid') AS pid
FROM events s
WHERE s.type = 'RestoreStarted' AND NOT EXISTS (
  SELECT 1 FROM events e
  WHERE e.subject = s.subject AND e.type IN ('RestoreCompleted', 'RestoreFailed')
    AND json_extract(e.payload, '$.restore_id') = json_extract(s.payload, '$.restore_id'))
"""


@contextmanager
def reading(settings: Settings, on_notice: Callable[[str], None] | None = None) -> Iterator[Query]:
    """A query runner over the catalog that `settings` names; `on_notice` hears what opening
    it recorded (an interrupted restore)."""
    where = str(sqlite_file(settings.effective_catalog_url()))
    try:
        conn = direct_reader(settings)
    except sqlite3.Error as exc:  # a damaged file: one line, as the full path says it
        raise explain_database_error(str(exc), where) from exc
    if conn is not None:
        try:
            yield sqlite_query(conn)
        except sqlite3.Error as exc:
            raise explain_database_error(str(exc), where) from exc
        finally:
            conn.close()
        return
    from catalog.queries import engine_query
    from usecases.context import App

    with App.open(settings, read_only_ok=True) as app:
        if on_notice is not None:
            for note in app.notices:
                on_notice(note)
        yield engine_query(app.catalog.engine)


def direct_reader(settings: Settings) -> sqlite3.Connection | None:
    """A query-only sqlite3 connection when nothing has to be written before reading."""
    path = sqlite_file(settings.effective_catalog_url())
    conn = open_sqlite(path) if path is not None else None
    if conn is None:
        return None
    try:
        if _something_to_record(conn):
            conn.close()  # App.open records it first
            return None
    except BaseException:
        conn.close()
        raise
    return conn


def _something_to_record(conn: sqlite3.Connection) -> bool:
    """A backup or a restore of this host whose process died: App.open records it as failed."""
    host = socket.gethostname()
    running = conn.execute("SELECT hostname, pid FROM backups WHERE status = 'running'")
    if any(r["hostname"] == host and not pid_alive(r["pid"]) for r in running):
        return True
    restoring = conn.execute(OPEN_RESTORES_SQL).fetchall()
    return any(r["hostname"] == host and not pid_alive(r["pid"]) for r in restoring)


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

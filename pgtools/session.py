"""One REPEATABLE READ transaction whose snapshot every pg_dump of a backup shares."""

from __future__ import annotations

from types import TracebackType
from typing import Any

import psycopg
from psycopg import sql

from pgtools.errors import PgConnectionFailed
from pgtools.locks import PgLockTimeout
from pgtools.target import DbTarget

TABLES_SQL = """
SELECT n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
ORDER BY 1, 2
"""

MIGRATION_SQL = """
SELECT version::text FROM supabase_migrations.schema_migrations ORDER BY version DESC LIMIT 1
"""


DB_PROPERTIES_SQL = """
SELECT pg_get_userbyid(d.datdba), shobj_description(d.oid, 'pg_database'),
       pg_encoding_to_char(d.encoding), d.datcollate, d.datctype, d.datacl IS NULL,
       (SELECT coalesce(json_agg(json_build_array(
                  CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END,
                  a.privilege_type, a.is_grantable)
                ORDER BY 1), '[]'::json)
          FROM aclexplode(d.datacl) a),
       (SELECT coalesce(json_agg(c ORDER BY c), '[]'::json)
          FROM pg_db_role_setting s, unnest(s.setconfig) c
          WHERE s.setdatabase = d.oid AND s.setrole = 0),
       (SELECT coalesce(json_agg(DISTINCT pg_get_userbyid(e.evtowner)), '[]'::json)
          FROM pg_event_trigger e)
FROM pg_database d WHERE d.datname = current_database()
"""


def database_properties(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """What a plain dump without --create leaves out: owner, comment, grants, settings."""
    row = conn.execute(DB_PROPERTIES_SQL).fetchone()
    assert row is not None
    owner, comment, encoding, collate, ctype, acl_default, acl, settings, et_owners = row
    return {
        "owner": owner,
        "comment": comment,
        "encoding": encoding,
        "collate": collate,
        "ctype": ctype,
        "acl": None if acl_default else [list(a) for a in acl],
        "settings": list(settings),
        "event_trigger_owners": sorted(et_owners),
    }


def connect(target: DbTarget, **kwargs: Any) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(**{**target.connect_kwargs(), **kwargs})
    except psycopg.OperationalError as exc:
        raise PgConnectionFailed(explain_connect_error(target, str(exc))) from None


def explain_connect_error(target: DbTarget, message: str) -> str:
    text = " ".join(message.split())
    lower = text.lower()
    if "password authentication failed" in lower or "no password supplied" in lower:
        hint = "check SUPABASE_DB_PASSWORD (in the environment or .env)"
    elif "connection refused" in lower or "no such file" in lower or "timeout" in lower:
        hint = "is the database running? (`supabase start`, or check SUPABASE_DB_HOST/PORT)"
    elif "does not exist" in lower:
        hint = "check SUPABASE_DB_NAME / SUPABASE_DB_USER"
    else:
        hint = "check the SUPABASE_DB_* settings"
    return f"cannot connect to {target.label()}: {text}; {hint}"


class SnapshotSession:
    """Holds the exported snapshot open until closed; answers questions from inside it."""

    def __init__(self, target: DbTarget, *, lock_timeout_ms: int = 0) -> None:
        self.conn = connect(target, autocommit=True)
        try:
            self.conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            # Refuse (rather than silently filter) rows hidden by row-level security.
            self.conn.execute("SET LOCAL row_security = off")
            # Counting a table locked by another session waits this long, then fails (0: for
            # ever, PostgreSQL's default); pg_dump gets the same as --lock-wait-timeout.
            self.conn.execute(
                "SELECT set_config('lock_timeout', %s, true)", (f"{int(lock_timeout_ms)}ms",)
            )
            # The counts run beside pg_dump: no parallel workers competing for its cores.
            self.conn.execute("SET LOCAL max_parallel_workers_per_gather = 0")
            row = self.conn.execute(
                "SELECT pg_export_snapshot(), current_setting('server_version')"
            )
            snap, version = row.fetchone() or ("", "")
        except BaseException:
            self.conn.close()
            raise
        self.snapshot_id: str = snap
        self.server_version: str = version
        self.server_major: int = self.conn.info.server_version // 10000

    def row_counts(self) -> dict[str, int]:
        """Exact row counts per table, as the snapshot sees them."""
        counts: dict[str, int] = {}
        for schema, table in self.conn.execute(TABLES_SQL).fetchall():
            query = sql.SQL("SELECT count(*) FROM {}.{}").format(
                sql.Identifier(schema), sql.Identifier(table)
            )
            try:
                (n,) = self.conn.execute(query).fetchone() or (0,)
            except psycopg.errors.LockNotAvailable as exc:
                raise PgLockTimeout(
                    f"counting the rows of {schema}.{table}: {str(exc).splitlines()[0]}"
                ) from None
            counts[f"{schema}.{table}"] = int(n)
        return counts

    def latest_migration(self) -> str | None:
        exists = self.conn.execute(
            "SELECT to_regclass('supabase_migrations.schema_migrations') IS NOT NULL"
        ).fetchone()
        if not exists or not exists[0]:
            return None
        row = self.conn.execute(MIGRATION_SQL).fetchone()
        return str(row[0]) if row else None

    def database_properties(self) -> dict[str, Any]:
        return database_properties(self.conn)

    def close(self) -> None:
        try:
            if not self.conn.closed:
                self.conn.execute("ROLLBACK")
        except psycopg.Error:
            pass  # the server may be gone; closing is all that is left to do
        finally:
            self.conn.close()

    def __enter__(self) -> SnapshotSession:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

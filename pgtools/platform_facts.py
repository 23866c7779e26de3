"""What a Supabase target has, read as the role that would restore into it: its schemas and
their owners, the roles it may act as, extensions, event triggers, publications, whether it
may set session_replication_role, and its own definitions (a schema-only pg_dump)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from pgtools.errors import RestoreError
from pgtools.platform import ScriptIndex, index_script
from pgtools.restore import first_error
from pgtools.session import connect, database_properties
from pgtools.target import DbTarget

SCHEMAS_SQL = """
SELECT n.nspname, pg_get_userbyid(n.nspowner)
FROM pg_namespace n
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  AND n.nspname !~ '^pg_(temp|toast_temp)'
ORDER BY 1
"""
ACTING_AS_SQL = "SELECT rolname FROM pg_roles WHERE pg_has_role(current_user, oid, 'USAGE')"
EXTENSIONS_SQL = """
SELECT e.extname, pg_get_userbyid(e.extowner), e.extversion, e.extnamespace::regnamespace::text
FROM pg_extension e
"""
# Objects in public the restore would drop but may not: owned by a role it cannot act as.
FOREIGN_IN_PUBLIC_SQL = """
SELECT o.type || ' ' || o.identity || ' (owner ' || r.rolname || ')'
FROM pg_depend d, LATERAL pg_identify_object(d.classid, d.objid, 0) o,
     LATERAL (SELECT CASE d.classid
                       WHEN 'pg_class'::regclass THEN
                         (SELECT relowner FROM pg_class WHERE oid = d.objid)
                       WHEN 'pg_proc'::regclass THEN
                         (SELECT proowner FROM pg_proc WHERE oid = d.objid)
                       WHEN 'pg_type'::regclass THEN
                         (SELECT typowner FROM pg_type WHERE oid = d.objid)
                     END AS owner) w
JOIN pg_roles r ON r.oid = w.owner
WHERE d.refclassid = 'pg_namespace'::regclass AND d.refobjid = 'public'::regnamespace
  AND d.deptype = 'n' AND o.type <> 'extension'
  AND NOT pg_has_role(current_user, w.owner, 'USAGE')
ORDER BY 1
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetFacts:
    user: str
    schemas: dict[str, str]  # name -> owner
    roles: frozenset[str]
    acting_as: frozenset[str]
    extensions: dict[str, dict[str, str]]  # name -> owner, version, schema
    event_triggers: frozenset[str]
    publications: frozenset[str]
    can_set_replication_role: bool
    foreign_in_public: list[str]
    database_properties: dict[str, Any] = field(default_factory=dict)


def target_facts(target: DbTarget) -> TargetFacts:
    with connect(target, autocommit=True) as conn:

        def names(query: str) -> frozenset[str]:
            return frozenset(str(r[0]) for r in conn.execute(query).fetchall())

        return TargetFacts(
            user=str(conn.execute("SELECT current_user").fetchone()[0]),  # type: ignore[index]
            schemas={str(n): str(o) for n, o in conn.execute(SCHEMAS_SQL).fetchall()},
            roles=names("SELECT rolname FROM pg_roles"),
            acting_as=names(ACTING_AS_SQL),
            extensions={
                str(n): {"owner": str(o), "version": str(v), "schema": str(s)}
                for n, o, v, s in conn.execute(EXTENSIONS_SQL).fetchall()
            },
            event_triggers=names("SELECT evtname FROM pg_event_trigger"),
            publications=names("SELECT pubname FROM pg_publication"),
            can_set_replication_role=_may_set_replication_role(conn),
            foreign_in_public=[str(r[0]) for r in conn.execute(FOREIGN_IN_PUBLIC_SQL)],
            database_properties=database_properties(conn),
        )


def _may_set_replication_role(conn: psycopg.Connection[Any]) -> bool:
    """Tried, not looked up: a superuser may, PostgreSQL 15 grants it (SET ON PARAMETER), and
    Supabase's supautils allows it to postgres on any version."""
    try:
        with conn.transaction(force_rollback=True):
            conn.execute("SET LOCAL session_replication_role = replica")
    except psycopg.errors.InsufficientPrivilege:
        return False
    return True


def privilege_problems(
    target: DbTarget, tables: Iterable[str], sequences: Iterable[str]
) -> list[str]:
    """The platform tables (qualified, quoted names) the restore cannot empty and fill, and
    the sequences it cannot set: missing, or lacking the privilege."""
    problems = []
    wanted = [(t, ("TRUNCATE", "INSERT")) for t in tables] + [(s, ("UPDATE",)) for s in sequences]
    with connect(target, autocommit=True) as conn:
        for name, privileges in wanted:
            exists: Any = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
            if not exists[0]:
                problems.append(f"{name} is in the backup but not on the target")
                continue
            lacking = [
                p
                for p in privileges
                if not conn.execute(  # type: ignore[index]
                    "SELECT has_table_privilege(to_regclass(%s), %s)", (name, p)
                ).fetchone()[0]
            ]
            if lacking:
                problems.append(f"{name}: {', '.join(lacking)} not granted to the restoring role")
    return problems


def definitions(bindir: Path, target: DbTarget) -> ScriptIndex:
    """The target's own definitions: its schema-only dump, as entries."""
    done = subprocess.run(
        [str(bindir / "pg_dump"), "--schema-only", "--no-password", f"--dbname={target.dbname}"],
        env=target.env(dict(os.environ)),
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        raise RestoreError(
            f"cannot read the target's definitions (pg_dump --schema-only): "
            f"{first_error(done.stderr.splitlines())}"
        )
    return index_script([done.stdout])

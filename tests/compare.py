"""What "the target equals the backup's source" means, as comparable values.

Every function reads one database (or, for roles and memberships, the cluster) of a throwaway
cluster as its bootstrap superuser; two databases are equal for the tests when every section
of `state` is equal. `differences` says which sections differ, and how, for a failing assert.
"""

from __future__ import annotations

import difflib
import subprocess
from typing import Any

from pgtools.cluster import Cluster

# Undo the fixture's GRANT SET ON PARAMETER session_replication_role (PostgreSQL 15 and newer).
UNGRANT_REPLICATION_ROLE = """
DO $$ BEGIN
  IF current_setting('server_version_num')::int >= 150000 THEN
    EXECUTE 'REVOKE SET ON PARAMETER session_replication_role FROM postgres';
  END IF;
END $$;
"""

TABLES_SQL = """
SELECT n.nspname || '.' || c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
ORDER BY 1
"""

# An ACL as sorted text: grantee=privileges/grantor, one item per (grantee, grantor).
ACL_TEXT = (
    "coalesce((SELECT string_agg(x::text, ' ' ORDER BY x::text) FROM unnest({acl}) x), 'default')"
)
SYSTEM_SCHEMAS = "('pg_catalog', 'information_schema', 'pg_toast')"

ROLES_SQL = """
SELECT r.rolname, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin,
       r.rolreplication, r.rolbypassrls, r.rolconnlimit, r.rolvaliduntil,
       CASE WHEN a.rolpassword IS NULL THEN 'no password' ELSE 'password' END,
       coalesce(array_to_string(r.rolconfig, ','), '')
FROM pg_roles r JOIN pg_authid a ON a.oid = r.oid WHERE r.rolname !~ '^pg_' ORDER BY 1
"""

MEMBERSHIPS_SQL = """
SELECT g.rolname, m.rolname, coalesce(gr.rolname, '?'), a.admin_option
FROM pg_auth_members a
JOIN pg_roles g ON g.oid = a.roleid
JOIN pg_roles m ON m.oid = a.member
LEFT JOIN pg_roles gr ON gr.oid = a.grantor
WHERE NOT (g.rolname ~ '^pg_' AND m.rolname ~ '^pg_')
ORDER BY 1, 2, 3
"""

EXTENSIONS_SQL = """
SELECT e.extname, pg_get_userbyid(e.extowner), e.extversion, e.extnamespace::regnamespace
FROM pg_extension e ORDER BY 1
"""

PRIVILEGES_SQL = f"""
SELECT 'schema', quote_ident(n.nspname), pg_get_userbyid(n.nspowner),
       {ACL_TEXT.format(acl="n.nspacl")}
FROM pg_namespace n
WHERE n.nspname NOT IN {SYSTEM_SCHEMAS} AND n.nspname !~ '^pg_(temp|toast_temp)'
UNION ALL
SELECT CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'table' WHEN 'v' THEN 'view'
                      WHEN 'm' THEN 'materialized view' WHEN 'S' THEN 'sequence'
                      WHEN 'f' THEN 'foreign table' END,
       c.oid::regclass::text, pg_get_userbyid(c.relowner), {ACL_TEXT.format(acl="c.relacl")}
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND n.nspname NOT IN {SYSTEM_SCHEMAS}
UNION ALL
SELECT 'function', p.oid::regprocedure::text, pg_get_userbyid(p.proowner),
       {ACL_TEXT.format(acl="p.proacl")}
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname NOT IN {SYSTEM_SCHEMAS}
UNION ALL
SELECT 'type', t.oid::regtype::text, pg_get_userbyid(t.typowner),
       {ACL_TEXT.format(acl="t.typacl")}
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname NOT IN {SYSTEM_SCHEMAS}
ORDER BY 1, 2
"""

DEFAULT_PRIVILEGES_SQL = f"""
SELECT pg_get_userbyid(d.defaclrole), coalesce(d.defaclnamespace::regnamespace::text, '-'),
       d.defaclobjtype, {ACL_TEXT.format(acl="d.defaclacl")}
FROM pg_default_acl d ORDER BY 1, 2, 3
"""

EVENT_TRIGGERS_SQL = """
SELECT e.evtname, pg_get_userbyid(e.evtowner), e.evtevent, e.evtenabled,
       e.evtfoid::regprocedure, coalesce(array_to_string(e.evttags, ','), '')
FROM pg_event_trigger e ORDER BY 1
"""

POLICIES_SQL = """
SELECT schemaname, tablename, policyname, permissive, roles::text, cmd, qual, with_check
FROM pg_policies ORDER BY 1, 2, 3
"""

ROW_SECURITY_SQL = f"""
SELECT c.oid::regclass::text, c.relrowsecurity, c.relforcerowsecurity
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN {SYSTEM_SCHEMAS} ORDER BY 1
"""

PUBLICATIONS_SQL = """
SELECT p.pubname, pg_get_userbyid(p.pubowner), p.puballtables, p.pubinsert, p.pubupdate,
       p.pubdelete, p.pubtruncate, p.pubviaroot,
       coalesce((SELECT string_agg(t.schemaname || '.' || t.tablename, ','
                                   ORDER BY t.schemaname, t.tablename)
                 FROM pg_publication_tables t WHERE t.pubname = p.pubname), '')
FROM pg_publication p ORDER BY 1
"""


def schema_dump(cluster: Cluster, dbname: str = "postgres") -> str:
    """Schema-only dump: schemas, objects, owners, grants, RLS policies, comments."""
    done = subprocess.run(
        [str(cluster.bindir / "pg_dump"), "--schema-only", "--restrict-key=roundtrip"],
        env=cluster.env(dbname=dbname),
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def roles(cluster: Cluster) -> str:
    """Every role but the predefined ones: attributes, settings, and whether it has a
    password (never the hash)."""
    return cluster.psql(ROLES_SQL)


def memberships(cluster: Cluster) -> str:
    """Role memberships with the role that granted them and the admin option."""
    return cluster.psql(MEMBERSHIPS_SQL)


def extensions(cluster: Cluster, dbname: str = "postgres") -> str:
    return cluster.psql(EXTENSIONS_SQL, dbname=dbname)


def privileges(cluster: Cluster, dbname: str = "postgres") -> str:
    """Owner and ACL of every schema, table, view, sequence, function and type, those of
    extensions included."""
    return cluster.psql(PRIVILEGES_SQL, dbname=dbname)


def default_privileges(cluster: Cluster, dbname: str = "postgres") -> str:
    return cluster.psql(DEFAULT_PRIVILEGES_SQL, dbname=dbname)


def event_triggers(cluster: Cluster, dbname: str = "postgres") -> str:
    return cluster.psql(EVENT_TRIGGERS_SQL, dbname=dbname)


def publications(cluster: Cluster, dbname: str = "postgres") -> str:
    return cluster.psql(PUBLICATIONS_SQL, dbname=dbname)


def checksums(cluster: Cluster, dbname: str = "postgres") -> dict[str, str]:
    """Per table: row count and md5 of all rows in a stable order."""
    out = {}
    for table in cluster.psql(TABLES_SQL, dbname=dbname).split():
        out[table] = cluster.psql(
            f"SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)),"
            f" '') FROM {table} t",
            dbname=dbname,
        ).strip()
    return out


def sequences(cluster: Cluster, dbname: str = "postgres") -> str:
    return cluster.psql(
        "SELECT schemaname, sequencename, last_value FROM pg_sequences ORDER BY 1, 2",
        dbname=dbname,
    )


def policies(cluster: Cluster, dbname: str = "postgres") -> str:
    """RLS policies, and which tables have row-level security enabled or forced."""
    return cluster.psql(POLICIES_SQL, dbname=dbname) + cluster.psql(ROW_SECURITY_SQL, dbname=dbname)


def database_level(cluster: Cluster, dbname: str = "postgres") -> str:
    """Owner, comment, grants (as a set) and settings of the database itself."""
    return cluster.psql(
        "SELECT pg_get_userbyid(d.datdba), shobj_description(d.oid, 'pg_database'), "
        "(SELECT string_agg(CASE WHEN a.grantee = 0 THEN 'PUBLIC' "
        "ELSE pg_get_userbyid(a.grantee) END || ':' || a.privilege_type || ':' || a.is_grantable,"
        " ',' ORDER BY 1) FROM aclexplode(d.datacl) a), "
        "(SELECT string_agg(c, ',' ORDER BY c) FROM pg_db_role_setting s, unnest(s.setconfig) c"
        " WHERE s.setdatabase = d.oid AND s.setrole = 0) "
        f"FROM pg_database d WHERE d.datname = '{dbname}'"
    )


def state(cluster: Cluster, dbname: str = "postgres") -> dict[str, Any]:
    """Everything a restore must reproduce, in one comparable value."""
    return {
        "roles": roles(cluster),
        "memberships": memberships(cluster),
        "extensions": extensions(cluster, dbname),
        "privileges": privileges(cluster, dbname),
        "default_privileges": default_privileges(cluster, dbname),
        "event_triggers": event_triggers(cluster, dbname),
        "policies": policies(cluster, dbname),
        "publications": publications(cluster, dbname),
        "schema": schema_dump(cluster, dbname),
        "checksums": checksums(cluster, dbname),
        "sequences": sequences(cluster, dbname),
        "database": database_level(cluster, dbname),
    }


def differences(expected: dict[str, Any], actual: dict[str, Any], *, limit: int = 40) -> str:
    """Which sections differ, each with the first lines of a diff: '' when all are equal."""
    out = []
    for section in expected.keys() | actual.keys():
        want, got = expected.get(section), actual.get(section)
        if want == got:
            continue
        diff = list(
            difflib.unified_diff(_lines(want), _lines(got), "source", "target", lineterm="", n=0)
        )
        changed = [d for d in diff if d[:1] in "+-" and d[:3] not in ("---", "+++")]
        out.append(f"[{section}] {len(changed)} line(s) differ:")
        out.extend("  " + d for d in changed[:limit])
    return "\n".join(out)


def _lines(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [f"{k}: {v}" for k, v in sorted(value.items())]
    return str(value).splitlines()

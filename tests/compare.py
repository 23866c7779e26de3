"""What "the target equals the backup's source" means, as comparable values.

Every function reads one database of a throwaway cluster; two databases are equal for the
tests when all of these are equal.
"""

from __future__ import annotations

import subprocess
from typing import Any

from pgtools.cluster import Cluster

TABLES_SQL = """
SELECT n.nspname || '.' || c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
ORDER BY 1
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
    return cluster.psql(
        "SELECT r.rolname, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, "
        "r.rolcanlogin, r.rolreplication, r.rolbypassrls, "
        "coalesce((SELECT string_agg(g.rolname || ':' || m.admin_option, ',' ORDER BY g.rolname)"
        " FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid),'')"
        " FROM pg_roles r WHERE r.rolname !~ '^pg_' ORDER BY 1"
    )


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
    return cluster.psql(
        "SELECT schemaname, tablename, policyname, permissive, roles::text, cmd, qual, "
        "with_check FROM pg_policies ORDER BY 1, 2, 3",
        dbname=dbname,
    )


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
        "schema": schema_dump(cluster, dbname),
        "checksums": checksums(cluster, dbname),
        "sequences": sequences(cluster, dbname),
        "policies": policies(cluster, dbname),
        "database": database_level(cluster, dbname),
    }

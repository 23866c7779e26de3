"""tests/compare.py's sections, restricted to some schemas or to everything else.

A `--schema S` restore must leave S as the backup had it (`scoped_state(..., inside=True)`
equals the source's) and everything outside S as the target had it (`inside=False` equals the
target's before the restore): the objects of other schemas that depend on S's (an event
trigger's function, a trigger calling a function of S, foreign keys into S, policies calling
S's functions) come back exactly as they were.
"""

from __future__ import annotations

import subprocess
from typing import Any

from pgtools.cluster import Cluster
from pgtools.dumpscript import split
from tests.compare import ACL_TEXT, SYSTEM_SCHEMAS, database_level, memberships, roles


def _in(column: str, schemas: list[str], inside: bool) -> str:
    names = ", ".join("'" + s.replace("'", "''") + "'" for s in schemas)
    test = "= ANY" if inside else "<> ALL"
    return f"{column} {test}(ARRAY[{names}]::text[])"


def _privileges_sql(cond: str) -> str:
    """Owner and ACL of the schema itself and of every table, view, sequence, function and
    type in it, those an extension created included."""
    return f"""
SELECT 'schema', quote_ident(n.nspname), pg_get_userbyid(n.nspowner),
       {ACL_TEXT.format(acl="n.nspacl")}
FROM pg_namespace n
WHERE n.nspname NOT IN {SYSTEM_SCHEMAS} AND n.nspname !~ '^pg_(temp|toast_temp)' AND {cond}
UNION ALL
SELECT c.relkind::text, n.nspname || '.' || c.relname, pg_get_userbyid(c.relowner),
       {ACL_TEXT.format(acl="c.relacl")}
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND n.nspname NOT IN {SYSTEM_SCHEMAS}
  AND {cond}
UNION ALL
SELECT 'function', n.nspname || '.' || p.proname || '(' ||
       pg_get_function_identity_arguments(p.oid) || ')', pg_get_userbyid(p.proowner),
       {ACL_TEXT.format(acl="p.proacl")}
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname NOT IN {SYSTEM_SCHEMAS} AND {cond}
UNION ALL
SELECT 'type', n.nspname || '.' || t.typname, pg_get_userbyid(t.typowner),
       {ACL_TEXT.format(acl="t.typacl")}
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname NOT IN {SYSTEM_SCHEMAS} AND {cond}
ORDER BY 1, 2
"""


def _queries(cond: str) -> dict[str, str]:
    return {
        "extensions": "SELECT e.extname, pg_get_userbyid(e.extowner), e.extversion, n.nspname "
        "FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        f"WHERE {cond} ORDER BY 1",
        "privileges": _privileges_sql(cond),
        "default_privileges": "SELECT pg_get_userbyid(d.defaclrole), n.nspname, "
        f"d.defaclobjtype, {ACL_TEXT.format(acl='d.defaclacl')} FROM pg_default_acl d "
        f"JOIN pg_namespace n ON n.oid = d.defaclnamespace WHERE {cond} ORDER BY 1, 2, 3",
        "policies": "SELECT schemaname, tablename, policyname, permissive, roles::text, cmd, "
        f"qual, with_check FROM pg_policies WHERE {cond.replace('n.nspname', 'schemaname')} "
        "ORDER BY 1, 2, 3",
        "row_security": "SELECT n.nspname, c.relname, c.relrowsecurity, c.relforcerowsecurity "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        f"WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN {SYSTEM_SCHEMAS} AND {cond} "
        "ORDER BY 1, 2",
        "triggers": "SELECT n.nspname, c.relname, t.tgname, pg_get_triggerdef(t.oid), "
        "t.tgenabled FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        f"WHERE NOT t.tgisinternal AND {cond} ORDER BY 1, 2, 3",
        "constraints": "SELECT n.nspname, c.relname, k.conname, pg_get_constraintdef(k.oid), "
        "k.convalidated FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid "
        f"JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {cond} ORDER BY 1, 2, 3",
        "publication_tables": "SELECT pubname, schemaname, tablename FROM pg_publication_tables "
        f"WHERE {cond.replace('n.nspname', 'schemaname')} ORDER BY 1, 2, 3",
        "sequences": "SELECT schemaname, sequencename, last_value FROM pg_sequences "
        f"WHERE {cond.replace('n.nspname', 'schemaname')} ORDER BY 1, 2",
    }


OUTSIDE_ONLY = {
    "event_triggers": "SELECT e.evtname, pg_get_userbyid(e.evtowner), e.evtevent, "
    "e.evtenabled, e.evtfoid::regprocedure, coalesce(array_to_string(e.evttags, ','), ''), "
    "obj_description(e.oid, 'pg_event_trigger') FROM pg_event_trigger e ORDER BY 1",
    "publications": "SELECT pubname, pg_get_userbyid(pubowner), puballtables, pubinsert, "
    "pubupdate, pubdelete, pubtruncate, pubviaroot FROM pg_publication ORDER BY 1",
}


def scoped_state(
    cluster: Cluster, schemas: list[str], *, inside: bool, dbname: str = "postgres"
) -> dict[str, Any]:
    """Every section of tests/compare.state for the objects in `schemas` (inside) or for all
    the others (not inside): cluster-wide sections and event triggers count as outside."""
    cond = _in("n.nspname", schemas, inside)
    out: dict[str, Any] = {
        name: cluster.psql(query, dbname=dbname) for name, query in _queries(cond).items()
    }
    tables = cluster.psql(
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        f"WHERE c.relkind = 'r' AND n.nspname NOT IN {SYSTEM_SCHEMAS} AND {cond} ORDER BY 1",
        dbname=dbname,
    ).split()
    out["checksums"] = {
        t: cluster.psql(
            f"SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)),"
            f" '') FROM {t} t",
            dbname=dbname,
        ).strip()
        for t in tables
    }
    out["schema"] = _schema_dump(cluster, schemas, inside=inside, dbname=dbname)
    if not inside:
        out.update({k: cluster.psql(q, dbname=dbname) for k, q in OUTSIDE_ONLY.items()})
        out["roles"] = roles(cluster)
        out["memberships"] = memberships(cluster)
        out["database"] = database_level(cluster, dbname)
    return out


def _schema_dump(cluster: Cluster, schemas: list[str], *, inside: bool, dbname: str) -> str:
    """pg_dump --schema-only of the schemas (inside), or of everything else without the
    extensions and privileges (pg_dump -N still writes the ACLs of objects an extension made
    in the excluded schemas; the extensions and privileges sections cover those)."""
    flag = "--schema" if inside else "--exclude-schema"
    argv = [str(cluster.bindir / "pg_dump"), "--schema-only", "--restrict-key=roundtrip"]
    argv += [f"{flag}={s}" for s in schemas]
    if not inside:
        argv.append("--no-privileges")
    done = subprocess.run(
        argv, env=cluster.env(dbname=dbname), capture_output=True, check=True
    ).stdout
    if inside:
        return done.decode()
    kept = [
        data
        for entry, data in split([done])
        if entry is None or not (entry.type == "EXTENSION" or entry.name.startswith("EXTENSION "))
    ]
    return b"".join(kept).decode()

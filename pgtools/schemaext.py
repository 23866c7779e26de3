"""Extensions and privileges in a `--schema` restore.

pg_restore --schema leaves extensions out (their entries belong to no schema), and with them
the privileges on the objects they created. Here each extension the backup has in a restored
schema is
- kept when the target has it there with the same owner: the privileges on the objects it
  created are set back to the extension's own (pg_init_privs), then the backup's grants apply;
- created, by its recorded owner, when the target lacks it;
- dropped and created again by its owner when the target's has another owner, unless anything
  outside the restored schemas depends on it (or it has objects outside them): then the schema
  cannot be restored alone, and the restore is refused.
An extension the target has there and the backup does not is left, as every object the backup
does not hold is. The schema's own owner and privileges, and the default privileges in it,
are set as the backup has them too: reset here, then the backup's entries apply.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg

from pgtools.dumpscript import split
from pgtools.extensions import extension_facts
from pgtools.partial import ident, literal
from pgtools.schemadeps import INSIDE

CREATE_EXTENSION = re.compile(
    r'^CREATE EXTENSION IF NOT EXISTS (?:"(?:[^"]|"")+"|\S+) WITH SCHEMA ("(?:[^"]|"")+"|[^\s;]+);',
    re.M,
)

# What depends on extension %(ext)s, or on an object it created, from outside the schemas;
# and the objects it created outside them. Either is dropped with the extension.
EXTENSION_DEPENDENTS_SQL = f"""
WITH {INSIDE},
ext AS (SELECT oid FROM pg_extension WHERE extname = %(ext)s),
made(classid, objid) AS (
  SELECT 'pg_extension'::regclass::oid, oid FROM ext
  UNION ALL SELECT d.classid, d.objid FROM pg_depend d
  WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid IN (SELECT oid FROM ext)
    AND d.deptype = 'e')
SELECT DISTINCT pg_describe_object(d.classid, d.objid, d.objsubid) || ' depends on it'
FROM pg_depend d JOIN made r ON r.classid = d.refclassid AND r.objid = d.refobjid
WHERE d.deptype IN ('n', 'a')
  AND NOT EXISTS (SELECT 1 FROM made o WHERE o.classid = d.classid AND o.objid = d.objid)
  AND NOT EXISTS (SELECT 1 FROM inside o WHERE o.classid = d.classid AND o.objid = d.objid)
UNION
SELECT 'it made ' || pg_describe_object(m.classid, m.objid, 0)
FROM made m
WHERE m.classid <> 'pg_extension'::regclass
  AND (pg_identify_object(m.classid, m.objid, 0)).schema <> ALL(%(schemas)s)
ORDER BY 1
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class BackupExtension:
    name: str
    schema: str
    owner: str | None = None  # None: not recorded (a dump file): the restoring role creates it


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtensionStep:
    name: str
    action: str  # kept, created, recreated, left
    owner: str | None
    note: str  # for the plan


def recorded_extensions(facts: Iterable[Mapping[str, Any]]) -> list[BackupExtension]:
    """The extensions a backup's metadata records (name, owner, version, schema)."""
    return [
        BackupExtension(name=str(e["name"]), schema=str(e["schema"]), owner=str(e["owner"]))
        for e in facts
    ]


def dumped_extensions(script: bytes) -> list[BackupExtension]:
    """The extensions of a dump, from the script of its EXTENSION entries (owners unknown)."""
    out = []
    for entry, data in split([script]):
        if entry is not None and entry.type == "EXTENSION":
            m = CREATE_EXTENSION.search(data.decode("utf-8", "replace"))
            if m:
                schema = m.group(1)
                if schema.startswith('"'):
                    schema = schema[1:-1].replace('""', '"')
                out.append(BackupExtension(name=entry.name, schema=schema))
    return out


def extension_steps(
    conn: psycopg.Connection[Any], schemas: list[str], backup: list[BackupExtension]
) -> tuple[list[ExtensionStep], list[str]]:
    """What becomes of each extension of the restored schemas, and why the schemas cannot be
    restored alone (one line each), as the target has them now."""
    have = {e["name"]: e for e in extension_facts(conn)}
    steps, refusals = [], []
    wanted = [b for b in backup if b.schema in schemas]
    for b in wanted:
        t = have.get(b.name)
        who = b.owner or "the restoring role"
        if t is None:
            step = ExtensionStep(
                name=b.name, action="created", owner=b.owner, note=f"created by {who}"
            )
            steps.append(step)
        elif t["schema"] != b.schema:
            refusals.append(
                f"extension {b.name} is in schema {t['schema']} here and in {b.schema} in the "
                f"backup (move it first: ALTER EXTENSION {ident(b.name)} SET SCHEMA "
                f"{ident(b.schema)})"
            )
        elif b.owner is None or t["owner"] == b.owner:
            steps.append(
                ExtensionStep(
                    name=b.name,
                    action="kept",
                    owner=b.owner,
                    note="kept; the privileges on its objects set as in the backup",
                )
            )
        else:
            blocking = [
                str(r[0])
                for r in conn.execute(EXTENSION_DEPENDENTS_SQL, {"schemas": schemas, "ext": b.name})
            ]
            if blocking:
                more = f" (+{len(blocking) - 1} more)" if len(blocking) > 1 else ""
                refusals.append(
                    f"extension {b.name} is owned by {t['owner']} here and by {b.owner} in the "
                    f"backup, so it would be dropped and created again, and {blocking[0]}{more}"
                )
                continue
            steps.append(
                ExtensionStep(
                    name=b.name,
                    action="recreated",
                    owner=b.owner,
                    note=f"dropped and created again by {who} (owned by {t['owner']} here)",
                )
            )
    names = {b.name for b in wanted}
    for name, t in sorted(have.items()):
        if t["schema"] in schemas and name not in names:
            steps.append(
                ExtensionStep(
                    name=name, action="left", owner=None, note="not in the backup; left as it is"
                )
            )
    return sorted(steps, key=lambda s: s.name), refusals


def drop_sql(steps: Iterable[ExtensionStep]) -> str:
    """DROP EXTENSION for the extensions created again: without CASCADE, run once the
    schemas' own objects are dropped, so anything else still depending on one fails it."""
    return "".join(f"DROP EXTENSION {ident(s.name)};\n" for s in steps if s.action == "recreated")


def privileges_reset_sql(schemas: list[str]) -> str:
    """Set the privileges that the backup's grants are relative to: the schemas' own and those
    on the objects extensions made in them back to their defaults (pg_init_privs where the
    object has them), and no default privileges in the schemas."""
    array = "ARRAY[" + ", ".join(literal(s) for s in schemas) + "]::text[]"
    return RESET_PRIVILEGES.replace("%SCHEMAS%", array)


# Each row: how GRANT names the object, its owner, its ACL and the ACL to go back to. The
# public schema's initial privileges name pg_database_owner: the owner stands in for it.
RESET_PRIVILEGES = """
DO $dlreset$
DECLARE
  r record;
  g record;
  dbo oid := (SELECT oid FROM pg_roles WHERE rolname = 'pg_database_owner');
BEGIN
  FOR r IN
    SELECT 'SCHEMA ' || quote_ident(n.nspname) AS what, n.nspowner AS owner,
           coalesce(n.nspacl, acldefault('n', n.nspowner)) AS acl,
           coalesce(i.initprivs, acldefault('n', n.nspowner)) AS base
    FROM pg_namespace n LEFT JOIN pg_init_privs i
      ON i.classoid = 'pg_namespace'::regclass AND i.objoid = n.oid AND i.objsubid = 0
    WHERE n.nspname = ANY(%SCHEMAS%)
    UNION ALL
    SELECT 'ROUTINE ' || p.oid::regprocedure, p.proowner,
           coalesce(p.proacl, acldefault('f', p.proowner)),
           coalesce(i.initprivs, acldefault('f', p.proowner))
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace LEFT JOIN pg_init_privs i
      ON i.classoid = 'pg_proc'::regclass AND i.objoid = p.oid AND i.objsubid = 0
    WHERE n.nspname = ANY(%SCHEMAS%) AND EXISTS (SELECT 1 FROM pg_depend d
      WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
    UNION ALL
    SELECT CASE c.relkind WHEN 'S' THEN 'SEQUENCE ' ELSE 'TABLE ' END || c.oid::regclass,
           c.relowner,
           coalesce(c.relacl, acldefault(CASE c.relkind WHEN 'S' THEN 's' ELSE 'r' END::"char",
                                         c.relowner)),
           coalesce(i.initprivs, acldefault(CASE c.relkind WHEN 'S' THEN 's' ELSE 'r' END::"char",
                                            c.relowner))
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_init_privs i
      ON i.classoid = 'pg_class'::regclass AND i.objoid = c.oid AND i.objsubid = 0
    WHERE n.nspname = ANY(%SCHEMAS%) AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
      AND EXISTS (SELECT 1 FROM pg_depend d
        WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
    UNION ALL
    SELECT 'TYPE ' || t.oid::regtype, t.typowner,
           coalesce(t.typacl, acldefault('T', t.typowner)),
           coalesce(i.initprivs, acldefault('T', t.typowner))
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace LEFT JOIN pg_init_privs i
      ON i.classoid = 'pg_type'::regclass AND i.objoid = t.oid AND i.objsubid = 0
    WHERE n.nspname = ANY(%SCHEMAS%) AND EXISTS (SELECT 1 FROM pg_depend d
      WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')
  LOOP
    CONTINUE WHEN (SELECT array_agg(x ORDER BY x) FROM (
        SELECT concat_ws(' ', grantor, grantee, privilege_type, is_grantable) x
        FROM aclexplode(r.acl)) a)
      IS NOT DISTINCT FROM (SELECT array_agg(x ORDER BY x) FROM (
        SELECT concat_ws(' ', CASE WHEN grantor = dbo THEN r.owner ELSE grantor END,
                         CASE WHEN grantee = dbo THEN r.owner ELSE grantee END,
                         privilege_type, is_grantable) x
        FROM aclexplode(r.base)) b);
    FOR g IN SELECT DISTINCT grantor, grantee FROM aclexplode(r.acl) LOOP
      EXECUTE format('SET ROLE %I', pg_get_userbyid(g.grantor));
      EXECUTE format('REVOKE ALL ON %s FROM %s CASCADE', r.what, CASE WHEN g.grantee = 0
        THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(g.grantee)) END);
      RESET ROLE;
    END LOOP;
    FOR g IN
      SELECT CASE WHEN e.grantor = dbo THEN r.owner ELSE e.grantor END AS grantor,
             CASE WHEN e.grantee = dbo THEN r.owner ELSE e.grantee END AS grantee,
             e.is_grantable, string_agg(e.privilege_type, ', ' ORDER BY e.o) AS privs
      FROM aclexplode(r.base) WITH ORDINALITY e(grantor, grantee, privilege_type, is_grantable, o)
      GROUP BY 1, 2, 3 ORDER BY min(e.o)
    LOOP
      EXECUTE format('SET ROLE %I', pg_get_userbyid(g.grantor));
      EXECUTE format('GRANT %s ON %s TO %s%s', g.privs, r.what, CASE WHEN g.grantee = 0
        THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(g.grantee)) END,
        CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
      RESET ROLE;
    END LOOP;
  END LOOP;
  FOR r IN
    SELECT DISTINCT pg_get_userbyid(d.defaclrole) AS role, n.nspname, d.defaclobjtype AS kind,
           e.grantee
    FROM pg_default_acl d JOIN pg_namespace n ON n.oid = d.defaclnamespace,
         aclexplode(d.defaclacl) e
    WHERE n.nspname = ANY(%SCHEMAS%)
  LOOP
    EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I REVOKE ALL ON %s FROM %s',
      r.role, r.nspname, CASE r.kind WHEN 'r' THEN 'TABLES' WHEN 'S' THEN 'SEQUENCES'
        WHEN 'f' THEN 'FUNCTIONS' WHEN 'T' THEN 'TYPES' END,
      CASE WHEN r.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(r.grantee)) END);
  END LOOP;
END $dlreset$;
"""

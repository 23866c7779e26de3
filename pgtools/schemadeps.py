"""The objects of other schemas that depend on a schema's objects, which a `--schema` restore
must set aside (drop, then recreate exactly as the target has them) or refuse over.

pg_restore --clean drops the schema's objects and creates them again from the backup. An
object outside the schema that depends on one of them makes the drop fail: a foreign key into
the schema, a trigger or a policy calling one of its functions, a column default using one of
its sequences or functions, an event trigger on one of its functions. Those are captured as
the target has them (definition, enabled state, owner, comment), dropped before the schema's
objects, and recreated once the backup's are in place; a foreign key is checked first, so a
row that would point at nothing fails the restore with the key's name. A view, a partition,
a column of one of the schema's types or a function using them cannot be set aside that way:
they are reasons to refuse. Objects an extension created are not dropped by a schema restore
(pgtools.schemaext decides about extensions), so what depends on them is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg

from pgtools.partial import FKS_SELECT, ForeignKey, fk_check, ident, literal

NAMESPACED = {
    "pg_class": "relnamespace",
    "pg_proc": "pronamespace",
    "pg_type": "typnamespace",
    "pg_constraint": "connamespace",
    "pg_operator": "oprnamespace",
    "pg_opclass": "opcnamespace",
    "pg_opfamily": "opfnamespace",
    "pg_collation": "collnamespace",
    "pg_conversion": "connamespace",
    "pg_ts_config": "cfgnamespace",
    "pg_ts_dict": "dictnamespace",
    "pg_ts_parser": "prsnamespace",
    "pg_ts_template": "tmplnamespace",
    "pg_statistic_ext": "stxnamespace",
    "pg_extension": "extnamespace",
}
ON_TABLE = {"pg_trigger": "tgrelid", "pg_policy": "polrelid", "pg_rewrite": "ev_class"}
ON_TABLE["pg_attrdef"] = "adrelid"

# Every object that lives in the schemas (%(schemas)s), as (classid, objid).
INSIDE = (
    "s AS (SELECT oid FROM pg_namespace WHERE nspname = ANY(%(schemas)s)),\n"
    "inside(classid, objid) AS (\n"
    + "\n  UNION ALL ".join(
        [
            f"SELECT '{k}'::regclass::oid, x.oid FROM {k} x WHERE x.{col} IN (SELECT oid FROM s)"
            for k, col in NAMESPACED.items()
        ]
        + [
            f"SELECT '{k}'::regclass::oid, x.oid FROM {k} x JOIN pg_class c ON c.oid = x.{col} "
            "WHERE c.relnamespace IN (SELECT oid FROM s)"
            for k, col in ON_TABLE.items()
        ]
    )
    + ")"
)

# Objects outside the schemas that depend on an object inside them (not on an extension or
# an object an extension made): class, oid, how to name it, what it depends on.
DEPENDENTS_SQL = f"""
WITH {INSIDE}
SELECT DISTINCT ON (d.classid, d.objid, d.objsubid)
       d.classid::regclass::text, d.objid::bigint,
       CASE WHEN d.classid = 'pg_rewrite'::regclass
            THEN (SELECT CASE WHEN r.rulename = '_RETURN'
                              THEN pg_describe_object('pg_class'::regclass, r.ev_class, 0)
                              ELSE pg_describe_object(d.classid, d.objid, 0) END
                  FROM pg_rewrite r WHERE r.oid = d.objid)
            WHEN d.classid = 'pg_class'::regclass AND d.objsubid = 0
                 AND (SELECT c.relispartition FROM pg_class c WHERE c.oid = d.objid)
            THEN 'partition ' || (pg_identify_object(d.classid, d.objid, 0)).identity
            ELSE pg_describe_object(d.classid, d.objid, d.objsubid) END,
       (pg_identify_object(d.refclassid, d.refobjid, 0)).identity
FROM pg_depend d
JOIN inside r ON r.classid = d.refclassid AND r.objid = d.refobjid
WHERE d.deptype IN ('n', 'a') AND d.refclassid <> 'pg_extension'::regclass
  AND NOT EXISTS (SELECT 1 FROM inside o WHERE o.classid = d.classid AND o.objid = d.objid)
  AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.deptype = 'e'
                  AND e.classid = d.refclassid AND e.objid = d.refobjid)
ORDER BY d.classid, d.objid, d.objsubid, d.refobjsubid
"""

CONSTRAINTS_SQL = """
SELECT k.oid::bigint, k.contype, k.conparentid <> 0, k.coninhcount, k.conrelid <> 0,
       k.conname, k.conrelid::regclass::text, pg_get_constraintdef(k.oid),
       obj_description(k.oid, 'pg_constraint')
FROM pg_constraint k WHERE k.oid = ANY(%(oids)s::oid[])
"""
TRIGGERS_SQL = """
SELECT t.oid::bigint, t.tgisinternal OR t.tgparentid <> 0, t.tgname, t.tgrelid::regclass::text,
       pg_get_triggerdef(t.oid), t.tgenabled, obj_description(t.oid, 'pg_trigger')
FROM pg_trigger t WHERE t.oid = ANY(%(oids)s::oid[])
"""
POLICIES_SQL = """
SELECT p.oid::bigint, p.polname, p.polrelid::regclass::text, p.polpermissive, p.polcmd,
       (SELECT string_agg(CASE WHEN r = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(r)) END,
                          ', ' ORDER BY o) FROM unnest(p.polroles) WITH ORDINALITY u(r, o)),
       pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid),
       obj_description(p.oid, 'pg_policy')
FROM pg_policy p WHERE p.oid = ANY(%(oids)s::oid[])
"""
EVENT_TRIGGERS_SQL = """
SELECT e.oid::bigint, e.evtname, e.evtevent, e.evtfoid::regprocedure::text, e.evttags,
       e.evtenabled, pg_get_userbyid(e.evtowner), obj_description(e.oid, 'pg_event_trigger')
FROM pg_event_trigger e WHERE e.oid = ANY(%(oids)s::oid[])
"""
DEFAULTS_SQL = """
SELECT a.oid::bigint, a.adrelid::regclass::text, quote_ident(t.attname),
       pg_get_expr(a.adbin, a.adrelid), t.attgenerated <> ''
FROM pg_attrdef a JOIN pg_attribute t ON t.attrelid = a.adrelid AND t.attnum = a.adnum
WHERE a.oid = ANY(%(oids)s::oid[])
"""
# Restored with the schema's tables by the backup's own entries.
LEFT_TO_THE_BACKUP = ("pg_publication_rel", "pg_publication_namespace")
ENABLED = {"D": "DISABLE", "R": "ENABLE REPLICA", "A": "ENABLE ALWAYS"}
COMMANDS = {"r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE", "*": "ALL"}


@dataclass(slots=True, kw_only=True)
class Bridge:
    """The outside objects set aside around a schema restore, as SQL, and what prevents it."""

    labels: list[str] = field(default_factory=list)  # what is set aside, for the plan
    drops: list[str] = field(default_factory=list)  # before the schema's objects are dropped
    recreates: list[str] = field(default_factory=list)  # once the backup's are in place
    event_trigger_owners: set[str] = field(default_factory=set)  # must be superusers then
    refusals: list[str] = field(default_factory=list)  # "<object> depends on <object>"


def bridge_for(conn: psycopg.Connection[Any], schemas: list[str], restored: str) -> Bridge:
    """What depends on the schemas from outside, as the target has it now. `conn` must have
    search_path '' so that every definition comes schema-qualified."""
    found = Bridge()
    by_class: dict[str, dict[int, str]] = {}
    for cls, oid, what, on in conn.execute(DEPENDENTS_SQL, {"schemas": schemas}):
        if cls in LEFT_TO_THE_BACKUP:
            continue
        if cls in ("pg_constraint", "pg_trigger", "pg_policy", "pg_event_trigger", "pg_attrdef"):
            by_class.setdefault(cls, {})[int(oid)] = f"{what} depends on {on}"
        else:
            found.refusals.append(f"{what} depends on {on}")
    blocks = []  # dropped in this order, recreated in the reverse one: event triggers last
    for cls, add in (
        ("pg_event_trigger", _event_triggers),
        ("pg_trigger", _triggers),
        ("pg_policy", _policies),
        ("pg_constraint", _constraints),
        ("pg_attrdef", _defaults),
    ):
        if by_class.get(cls):
            found.recreates = []
            add(conn, by_class[cls], found, restored)
            blocks.append(found.recreates)
    found.recreates = [stmt for block in reversed(blocks) for stmt in block]
    found.refusals.sort()
    found.labels.sort()
    return found


def _rows(conn: psycopg.Connection[Any], sql: str, oids: dict[int, str]) -> list[Any]:
    return conn.execute(sql, {"oids": sorted(oids)}).fetchall()


def _comment(on: str, comment: str | None) -> list[str]:
    return [] if comment is None else [f"COMMENT ON {on} IS {literal(comment)};"]


def _event_triggers(
    conn: psycopg.Connection[Any], oids: dict[int, str], found: Bridge, restored: str
) -> None:
    for _, name, event, func, tags, enabled, owner, comment in _rows(
        conn, EVENT_TRIGGERS_SQL, oids
    ):
        et = ident(name)
        when = f" WHEN TAG IN ({', '.join(literal(t) for t in tags)})" if tags else ""
        found.labels.append(f"event trigger {name}")
        found.drops.append(f"DROP EVENT TRIGGER {et};")
        found.recreates += [
            f"CREATE EVENT TRIGGER {et} ON {event}{when} EXECUTE FUNCTION {func};",
            f"ALTER EVENT TRIGGER {et} OWNER TO {ident(owner)};",
        ]
        if enabled in ENABLED:
            found.recreates.append(f"ALTER EVENT TRIGGER {et} {ENABLED[enabled]};")
        found.recreates += _comment(f"EVENT TRIGGER {et}", comment)
        found.event_trigger_owners.add(str(owner))


def _triggers(
    conn: psycopg.Connection[Any], oids: dict[int, str], found: Bridge, restored: str
) -> None:
    for _, internal, name, table, definition, enabled, comment in _rows(conn, TRIGGERS_SQL, oids):
        if internal:  # a foreign key's, or a partition's copy: goes with its constraint/parent
            continue
        found.labels.append(f"trigger {name} on table {table}")
        found.drops.append(f"DROP TRIGGER {ident(name)} ON {table};")
        found.recreates.append(f"{definition};")
        if enabled in ENABLED:
            found.recreates.append(f"ALTER TABLE {table} {ENABLED[enabled]} TRIGGER {ident(name)};")
        found.recreates += _comment(f"TRIGGER {ident(name)} ON {table}", comment)


def _policies(
    conn: psycopg.Connection[Any], oids: dict[int, str], found: Bridge, restored: str
) -> None:
    for _, name, table, permissive, cmd, roles, qual, check, comment in _rows(
        conn, POLICIES_SQL, oids
    ):
        pol = f"{ident(name)} ON {table}"
        found.labels.append(f"policy {name} on table {table}")
        found.drops.append(f"DROP POLICY {pol};")
        found.recreates.append(
            f"CREATE POLICY {pol} AS {'PERMISSIVE' if permissive else 'RESTRICTIVE'} "
            f"FOR {COMMANDS[cmd]} TO {roles}"
            + (f" USING ({qual})" if qual is not None else "")
            + (f" WITH CHECK ({check})" if check is not None else "")
            + ";"
        )
        found.recreates += _comment(f"POLICY {pol}", comment)


def _constraints(
    conn: psycopg.Connection[Any], oids: dict[int, str], found: Bridge, restored: str
) -> None:
    keys = {
        int(r[9]): ForeignKey.of(r)
        for r in conn.execute(
            FKS_SELECT + "WHERE c.oid = ANY(%(oids)s::oid[])", {"oids": sorted(oids)}
        )
    }
    for oid, kind, cloned, inherited, on_table, name, table, definition, comment in _rows(
        conn, CONSTRAINTS_SQL, oids
    ):
        if cloned:  # a partition's copy of its parent's constraint: goes with the parent's
            continue
        if kind not in ("f", "c") or inherited or not on_table:
            found.refusals.append(oids[int(oid)])
            continue
        fk = keys.get(int(oid))
        found.labels.append(
            f"foreign key {fk.label()}" if fk else f"constraint {name} on table {table}"
        )
        found.drops.append(f"ALTER TABLE {table} DROP CONSTRAINT {ident(name)};")
        if fk is not None:
            found.recreates.append(fk_check(fk, restored))
        found.recreates.append(f"ALTER TABLE {table} ADD CONSTRAINT {ident(name)} {definition};")
        found.recreates += _comment(f"CONSTRAINT {ident(name)} ON {table}", comment)


def _defaults(
    conn: psycopg.Connection[Any], oids: dict[int, str], found: Bridge, restored: str
) -> None:
    for oid, table, column, expr, generated in _rows(conn, DEFAULTS_SQL, oids):
        if generated:  # a generated column's expression cannot be dropped and set again
            found.refusals.append(oids[int(oid)])
            continue
        alter = f"ALTER TABLE ONLY {table} ALTER COLUMN {column}"
        found.labels.append(f"default of {table}.{column}")
        found.drops.append(f"{alter} DROP DEFAULT;")
        found.recreates.append(f"{alter} SET DEFAULT {expr};")

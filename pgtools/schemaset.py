"""What a `--schema` restore touches in the live database, as the database has it now.

The schemas' objects are dropped and created again from the backup (pg_restore --clean).
Around that: partitions of the schemas' tables are detached first (pg_restore cannot drop an
attached partition's inherited constraints and indexes) after dropping the foreign keys on or
into partitioned tables that the backup recreates; the objects of other schemas that depend on
the schemas' objects are set aside and recreated as they are (pgtools.schemadeps); extensions
are kept, created or created again by their owners (pgtools.schemaext). What cannot be done is
a refusal, one line each.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pgtools.partial import FKS_SQL, ForeignKey, ident, qualified
from pgtools.schemadeps import Bridge, bridge_for
from pgtools.schemaext import BackupExtension, ExtensionStep, extension_steps
from pgtools.session import connect
from pgtools.target import DbTarget

PARTITIONS_SQL = """
SELECT cn.nspname, c.relname, pn.nspname, p.relname, c.oid::bigint, p.oid::bigint
FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid AND c.relispartition AND c.relkind IN ('r', 'p', 'f')
JOIN pg_namespace cn ON cn.oid = c.relnamespace
JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace pn ON pn.oid = p.relnamespace
WHERE cn.nspname = ANY(%(schemas)s)
ORDER BY 1, 2
"""


@dataclass(slots=True, kw_only=True)
class SchemaSet:
    """The named schemas as the live database has them."""

    schemas: list[str]
    tables: dict[str, int] = field(default_factory=dict)  # schema -> tables now
    partitions: list[tuple[str, str, str, str]] = field(default_factory=list)  # child, parent
    partition_fks: list[ForeignKey] = field(default_factory=list)
    bridge: Bridge = field(default_factory=Bridge)
    extensions: list[ExtensionStep] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)

    def owners_to_promote(self) -> set[str]:
        """The roles that must be superusers during the restore: the owners of the event
        triggers set aside and of the extensions created."""
        made = {s.owner for s in self.extensions if s.action in ("created", "recreated")}
        return self.bridge.event_trigger_owners | {o for o in made if o}


def schema_set(
    target: DbTarget, schemas: list[str], extensions: list[BackupExtension]
) -> SchemaSet:
    found = SchemaSet(schemas=schemas)
    with connect(target, autocommit=True) as conn:
        conn.execute("SET search_path = ''")  # definitions come schema-qualified
        for schema in schemas:  # a schema that does not exist is left out
            row = conn.execute(
                "SELECT count(c.oid) FROM pg_namespace n LEFT JOIN pg_class c "
                "ON c.relnamespace = n.oid AND c.relkind IN ('r', 'p') WHERE n.nspname = %s "
                "GROUP BY n.oid",
                (schema,),
            ).fetchone()
            if row is not None:
                found.tables[schema] = int(row[0])
        rels: set[int] = set()
        for cs, ct, ps, pt, coid, poid in conn.execute(PARTITIONS_SQL, {"schemas": schemas}):
            found.partitions.append((str(cs), str(ct), str(ps), str(pt)))
            rels.update((int(coid), int(poid)))
        if rels:  # those of other schemas' tables are set aside with the rest (the bridge)
            found.partition_fks = [
                fk
                for r in conn.execute(FKS_SQL, {"rels": sorted(rels)})
                if (fk := ForeignKey.of(r)).child[0] in schemas
            ]
        found.bridge = bridge_for(conn, schemas, ", ".join(schemas))
        found.extensions, refused = extension_steps(conn, schemas, extensions)
    found.refusals = found.bridge.refusals + refused
    return found


def detach_prelude(found: SchemaSet) -> str:
    """Drop the foreign keys on or into partitioned tables, then detach every partition: what
    pg_restore --clean then drops and the backup recreates, attached again."""
    stmts = [
        f"ALTER TABLE {qualified(*fk.child)} DROP CONSTRAINT {ident(fk.name)};"
        for fk in found.partition_fks
    ]
    stmts += [
        f"ALTER TABLE {qualified(ps, pt)} DETACH PARTITION {qualified(cs, ct)};"
        for cs, ct, ps, pt in found.partitions
    ]
    return "\n".join(stmts)

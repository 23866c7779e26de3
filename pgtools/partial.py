"""What a partial restore (--table, --schema) touches in the live database, and the SQL that
surrounds the rows or objects pg_restore brings back.

--table replaces the rows of the named tables: TRUNCATE them, or, when a table outside the
named ones references them by foreign key (TRUNCATE refuses that), DELETE with the tables'
triggers suspended (superuser only, as pg_restore --disable-triggers); a partitioned table's
rows come from its leaf partitions. Afterwards every foreign key into or out of the named
tables is checked, and the restore fails (nothing commits) if a row would point at nothing.

--schema drops and recreates the schema's objects (pg_restore --clean). pg_restore cannot drop
an attached partition's inherited constraints and indexes, so partitions are detached first
(after dropping the foreign keys on or into partitioned tables, which the backup recreates).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import psycopg

from pgtools.session import connect
from pgtools.target import DbTarget

FKS_SELECT = """
SELECT c.conname, cn.nspname, cc.relname, pn.nspname, pc.relname,
       ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i),
       ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i),
       c.conrelid::bigint, c.confrelid::bigint, c.oid::bigint
FROM pg_constraint c
JOIN pg_class cc ON cc.oid = c.conrelid JOIN pg_namespace cn ON cn.oid = cc.relnamespace
JOIN pg_class pc ON pc.oid = c.confrelid JOIN pg_namespace pn ON pn.oid = pc.relnamespace
"""
FKS_SQL = (
    FKS_SELECT
    + """WHERE c.contype = 'f' AND c.conparentid = 0
  AND (c.conrelid = ANY(%(rels)s::oid[]) OR c.confrelid = ANY(%(rels)s::oid[]))
ORDER BY 2, 3, 1
"""
)

TREE_SQL = """
SELECT t.relid::oid::bigint, n.nspname, c.relname, t.isleaf
FROM pg_partition_tree(%(oid)s::oid::regclass) t
JOIN pg_class c ON c.oid = t.relid JOIN pg_namespace n ON n.oid = c.relnamespace
"""

ANCESTORS_SQL = """
SELECT relid::oid::bigint FROM pg_partition_ancestors(%(oid)s::oid::regclass)
"""

SEQUENCES_SQL = """
SELECT DISTINCT n.nspname || '.' || s.relname
FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
JOIN pg_namespace n ON n.oid = s.relnamespace
WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
  AND d.deptype IN ('a', 'i') AND d.refobjid = ANY(%(rels)s::oid[])
ORDER BY 1
"""


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def qualified(schema: str, table: str) -> str:
    return f"{ident(schema)}.{ident(table)}"


@dataclass(frozen=True, slots=True)
class ForeignKey:
    name: str
    child: tuple[str, str]
    parent: tuple[str, str]
    columns: tuple[str, ...]
    ref_columns: tuple[str, ...]
    child_oid: int = 0
    parent_oid: int = 0

    @classmethod
    def of(cls, r: Any) -> ForeignKey:
        return cls(r[0], (r[1], r[2]), (r[3], r[4]), tuple(r[5]), tuple(r[6]), int(r[7]), int(r[8]))

    def label(self) -> str:
        return f"{'.'.join(self.child)} ({self.name}) -> {'.'.join(self.parent)}"


@dataclass(slots=True, kw_only=True)
class TableSet:
    """The named tables as the live database has them."""

    tables: list[tuple[str, str]]
    missing: list[str] = field(default_factory=list)
    leaves: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # partitioned only
    relations: set[int] = field(default_factory=set)  # tables, partitions and their ancestors
    members: set[int] = field(default_factory=set)  # the named tables and their partitions
    foreign_keys: list[ForeignKey] = field(default_factory=list)
    referenced_from_outside: list[ForeignKey] = field(default_factory=list)
    sequences: list[str] = field(default_factory=list)

    def data_tables(self) -> list[tuple[str, str]]:
        """Where the rows are: each named table, or a partitioned one's leaf partitions."""
        out: list[tuple[str, str]] = []
        for t in self.tables:
            out.extend(self.leaves.get(".".join(t), [t]))
        return out


def table_set(target: DbTarget, tables: list[tuple[str, str]]) -> TableSet:
    found = TableSet(tables=tables)
    with connect(target, autocommit=True) as conn:
        for schema, table in tables:
            row = conn.execute(
                "SELECT to_regclass(%s)::oid::bigint", (qualified(schema, table),)
            ).fetchone()
            if not row or row[0] is None:
                found.missing.append(f"{schema}.{table}")
                continue
            _add_tree(conn, found, f"{schema}.{table}", int(row[0]))
        rels = sorted(found.relations)
        found.foreign_keys = [ForeignKey.of(r) for r in conn.execute(FKS_SQL, {"rels": rels})]
        found.referenced_from_outside = [
            fk
            for fk in found.foreign_keys
            if fk.child_oid not in found.members and fk.parent_oid in found.relations
        ]
        members = sorted(found.members)
        found.sequences = [str(r[0]) for r in conn.execute(SEQUENCES_SQL, {"rels": members})]
    return found


def _add_tree(conn: psycopg.Connection[Any], found: TableSet, name: str, oid: int) -> None:
    """The table, its partitions (members: their rows are replaced) and its ancestors (whose
    foreign keys cover it)."""
    found.relations.add(oid)
    found.members.add(oid)
    leaves = []
    for rel, schema, table, isleaf in conn.execute(TREE_SQL, {"oid": oid}):
        found.relations.add(int(rel))
        found.members.add(int(rel))
        if isleaf and int(rel) != oid:
            leaves.append((str(schema), str(table)))
    for (rel,) in conn.execute(ANCESTORS_SQL, {"oid": oid}):
        found.relations.add(int(rel))
    if leaves:
        found.leaves[name] = leaves


def replace_rows_prelude(found: TableSet) -> str:
    """Empty the named tables, inside the restore's transaction."""
    names = [qualified(s, t) for s, t in found.tables]
    if not found.referenced_from_outside:
        return "TRUNCATE " + ", ".join(names) + ";"
    # TRUNCATE refuses a table another one references: delete the rows with the tables'
    # triggers (the foreign keys' too) suspended; the keys are checked after the load.
    stmts = [f"ALTER TABLE {n} DISABLE TRIGGER ALL;" for n in names]
    stmts += [f"DELETE FROM {n};" for n in names]
    stmts += [f"ALTER TABLE {n} ENABLE TRIGGER ALL;" for n in names]
    return "\n".join(stmts)


def foreign_key_checks(found: TableSet, restored: str) -> str:
    """A statement per foreign key into or out of the restored tables that fails, naming the
    key, when a row would point at no row."""
    return "\n".join(fk_check(fk, restored) for fk in found.foreign_keys)


def fk_check(fk: ForeignKey, restored: str) -> str:
    child, parent = qualified(*fk.child), qualified(*fk.parent)
    not_null = " AND ".join(f"c.{ident(col)} IS NOT NULL" for col in fk.columns)
    match = " AND ".join(
        f"p.{ident(r)} = c.{ident(col)}" for col, r in zip(fk.columns, fk.ref_columns, strict=True)
    )
    text = (
        f" row(s) of {'.'.join(fk.child)} would point at no row of {'.'.join(fk.parent)} "
        f"({fk.name}) after restoring {restored}; nothing was changed"
    )
    tag = f"$dl{secrets.token_hex(4)}$"
    return (
        f"DO {tag} DECLARE n bigint; BEGIN\n"
        f"SELECT count(*) INTO n FROM {child} c WHERE {not_null} "
        f"AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE {match});\n"
        f"IF n > 0 THEN RAISE EXCEPTION USING MESSAGE = n || {literal(text)}; END IF;\n"
        f"END {tag};"
    )


def row_count_checks(expected: dict[str, int]) -> str:
    """Fail unless each table holds exactly the rows the backup recorded."""
    out = []
    for name, count in sorted(expected.items()):
        schema, _, table = name.partition(".")
        tag = f"$dl{secrets.token_hex(4)}$"
        text = f" rows of {name} restored, but the backup recorded {count}; nothing was changed"
        out.append(
            f"DO {tag} DECLARE n bigint; BEGIN\n"
            f"SELECT count(*) INTO n FROM {qualified(schema, table)};\n"
            f"IF n <> {int(count)} THEN RAISE EXCEPTION USING MESSAGE = n || {literal(text)};"
            f" END IF;\nEND {tag};"
        )
    return "\n".join(out)

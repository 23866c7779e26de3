"""Restoring into a Supabase instance whose platform stays as it is.

On Supabase (a new hosted project, or `supabase start`) the platform owns the definitions of
its schemas (auth, storage, realtime, extensions, ...), its roles and its event triggers, and
the role people connect as, `postgres`, is no superuser. Such a restore:
- leaves the platform's definitions as the target has them (and compares them with the
  backup's, for the plan);
- replaces the user's own schemas whole: the target's are dropped (public's contents, since
  `public` itself comes with the database) and the backup's created;
- replaces the rows of every table the backup holds, platform tables included, with triggers
  kept from firing (session_replication_role = replica);
- restores the backup's policies, triggers and publication memberships on platform tables
  that the target lacks (a sign-up trigger on auth.users, storage policies);
- runs as one transaction: all of it, or none.

`decide` says what happens to each archive entry of the backup's script; `restore_script`
wraps the filtered script in that transaction.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pgtools.dumpscript import Entry, ScriptSplitter
from pgtools.globalsql import unquote_ident
from pgtools.restore import script_of

# Schemas Supabase manages (the Supabase CLI leaves the same ones out of `db dump`).
PLATFORM_SCHEMAS = frozenset(
    {
        "_analytics",
        "_realtime",
        "_supavisor",
        "auth",
        "cron",
        "dbdev",
        "extensions",
        "graphql",
        "graphql_public",
        "net",
        "pgbouncer",
        "pgmq",
        "pgsodium",
        "pgsodium_masks",
        "pgtle",
        "realtime",
        "repack",
        "storage",
        "supabase_functions",
        "tiger",
        "tiger_data",
        "topology",
        "vault",
    }
)
# Entries on platform tables that belong to the project: created when the target lacks them
# (a trigger needs the TRIGGER privilege; a policy or a publication's table, ownership).
ADDITIONS = frozenset({"POLICY", "TRIGGER", "PUBLICATION TABLE"})
OWNERS_ONLY = frozenset({"POLICY", "PUBLICATION TABLE"})
ROWS = frozenset({"TABLE DATA", "SEQUENCE SET"})
PASS, SKIP, ADD = "pass", "skip", "add"


def is_platform_schema(name: str | None) -> bool:
    return name is not None and name in PLATFORM_SCHEMAS


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """What the target already has, as far as the decisions need it."""

    extensions: frozenset[str] = frozenset()
    publications: frozenset[str] = frozenset()
    acting_as: frozenset[str] = frozenset()  # roles whose privileges the restoring role has


def schema_named(entry: Entry) -> str | None:
    """The schema an entry is about: its own schema, or the one a `SCHEMA x` entry, or a
    comment/ACL on `SCHEMA x`, names."""
    if entry.type == "SCHEMA":
        return entry.name
    if entry.schema is None and entry.name.startswith("SCHEMA "):
        return unquote_ident(entry.name[len("SCHEMA ") :])
    return entry.schema


def decide(entry: Entry, target: Target) -> str:
    """PASS (run it), SKIP (left as the target has it) or ADD (run it unless the target has
    it already)."""
    schema = schema_named(entry)
    if entry.type == "DEFAULT ACL":  # ALTER DEFAULT PRIVILEGES FOR ROLE <owner>
        return PASS if entry.owner in target.acting_as and not is_platform_schema(schema) else SKIP
    if schema is not None:
        if not is_platform_schema(schema):
            return PASS
        if entry.schema is not None and entry.type in ROWS:
            return PASS
        if entry.type in OWNERS_ONLY and entry.owner not in target.acting_as:
            return SKIP
        return ADD if entry.type in ADDITIONS else SKIP
    name = entry.name
    if entry.type == "EXTENSION":
        return PASS  # IF NOT EXISTS: created when the target lacks it
    if entry.type == "COMMENT" and name.startswith("EXTENSION "):
        return SKIP if unquote_ident(name[len("EXTENSION ") :]) in target.extensions else PASS
    if entry.type == "PUBLICATION" or name.startswith("PUBLICATION "):
        publication = name.removeprefix("PUBLICATION ")
        return SKIP if unquote_ident(publication) in target.publications else PASS
    return SKIP  # event triggers, casts, languages, servers: the platform's (a superuser's)


@dataclass(slots=True)
class Indexed:
    """One entry of a script: its header and, except for rows, its SQL."""

    entry: Entry
    sql: str = ""


@dataclass(slots=True)
class ScriptIndex:
    entries: list[Indexed] = field(default_factory=list)

    def by_key(self) -> dict[tuple[str, str | None, str], str]:
        return {i.entry.key: i.sql for i in self.entries}


def body(data: bytes) -> str:
    """An entry's SQL without its header comment and blank lines."""
    lines = data.decode("utf-8", "replace").splitlines()
    keep = [ln for ln in lines if ln.strip() and not ln.startswith("-- ") and ln != "--"]
    return "\n".join(keep)


def index_script(chunks: Iterable[bytes]) -> ScriptIndex:
    """Every entry of a script, with its SQL (the rows of TABLE DATA entries are not kept)."""
    parts: dict[int, tuple[Entry, list[bytes]]] = {}  # by id: an entry's pieces may be apart
    splitter = ScriptSplitter()
    for chunk in itertools.chain(chunks, [None]):
        pieces = splitter.finish() if chunk is None else splitter.feed(chunk)
        for entry, data in pieces:
            if entry is not None:
                held = parts.setdefault(id(entry), (entry, []))[1]
                if entry.type != "TABLE DATA":
                    held.append(data)
    return ScriptIndex(
        [
            Indexed(entry, "" if entry.type in ROWS else body(b"".join(held)))
            for entry, held in parts.values()
        ]
    )


def custom_script(bindir: Path, dump: Path) -> Iterator[bytes]:
    """A custom-format dump as the plain script pg_dump would have written (pg_restore -f -)."""
    return script_of([str(bindir / "pg_restore"), "--file=-", str(dump)])


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# The contents of `public` (kept itself: it comes with the database and its initial
# privileges), dropped object by object: not the parts of another object (a table's row
# type, an identity sequence) nor of an extension, nor the extensions themselves.
DROP_PUBLIC_CONTENTS = """
DO $dumpledger$
DECLARE
  items text[];
  item text;
BEGIN
  SELECT coalesce(array_agg(format('DROP %s IF EXISTS %s CASCADE',
                                   replace(upper(o.type), 'STATISTICS OBJECT', 'STATISTICS'),
                                   o.identity) ORDER BY d.objid), '{}')
    INTO items
    FROM pg_depend d, LATERAL pg_identify_object(d.classid, d.objid, 0) o
   WHERE d.refclassid = 'pg_namespace'::regclass AND d.refobjid = 'public'::regnamespace
     AND d.deptype = 'n' AND o.type <> 'extension'
     AND NOT EXISTS (SELECT 1 FROM pg_depend x
                      WHERE x.classid = d.classid AND x.objid = d.objid
                        AND x.deptype IN ('i', 'e'));
  FOREACH item IN ARRAY items LOOP
    EXECUTE item;
  END LOOP;
END $dumpledger$;
"""


def prologue(user_schemas: Iterable[str], row_tables: Iterable[str]) -> str:
    """Inside the restore's transaction (pgtools.psqlscript frames it): keep triggers (and
    foreign-key checks) from firing; drop the target's own schemas; empty the platform tables
    whose rows the backup holds."""
    out = ["SET LOCAL session_replication_role = replica;"]
    for schema in sorted(user_schemas):
        if schema == "public":
            out.append(DROP_PUBLIC_CONTENTS.strip())
        else:
            out.append(f"DROP SCHEMA IF EXISTS {_ident(schema)} CASCADE;")
    tables = sorted(row_tables)
    if tables:
        out.append("TRUNCATE TABLE " + ", ".join(tables) + ";")
    return "\n".join(out) + "\n"


def addition(data: bytes) -> bytes:
    """An entry's statement(s), run unless the object already exists."""
    statements = body(data)
    if not statements:
        return b""
    return (
        f"DO $dumpledger$ BEGIN EXECUTE {_literal(statements)}; "
        "EXCEPTION WHEN duplicate_object THEN NULL; END $dumpledger$;\n"
    ).encode()


def restore_script(chunks: Iterable[bytes], head: str, target: Target) -> Iterator[bytes]:
    """The backup's script as this restore runs it: `head` (see `prologue`), the entries
    `decide` keeps; run_psql frames it as one transaction that only its end commits."""
    yield head.encode()
    splitter = ScriptSplitter()
    held: list[bytes] = []
    held_entry: Entry | None = None
    for chunk in itertools.chain(chunks, [None]):
        pieces = splitter.finish() if chunk is None else splitter.feed(chunk)
        for entry, data in pieces:
            if entry is None:  # the preamble, session state between entries
                yield data
                continue
            if held_entry is not None and entry is not held_entry:
                yield addition(b"".join(held))
                held, held_entry = [], None
            verdict = decide(entry, target)
            if verdict == PASS:
                yield data
            elif verdict == ADD:
                held.append(data)
                held_entry = entry
    if held_entry is not None:
        yield addition(b"".join(held))

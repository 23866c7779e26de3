"""The script of a `--schema` restore, from a custom-format dump, run as one transaction.

    BEGIN
    promote the owners of event triggers set aside and of extensions created (pgtools.restore)
    set aside what other schemas have on the schemas' objects (pgtools.schemadeps)
    detach partitions; the schemas' owners from the backup; their privileges reset
    pg_restore --clean of the schemas' entries:   drops of the backup's objects
                                                  DROP / CREATE EXTENSION (as owners)
                                                  the objects, rows, privileges
    recreate what was set aside; demote; check the row counts
    COMMIT

The entries are pg_restore's own choice for --schema, plus what it leaves out: the privileges
on the objects extensions made in the schemas (pg_restore skips them with the extension) and
each schema's own privileges and comment.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from pgtools.dumpscript import ScriptSplitter
from pgtools.extensions import _listing_file, as_owners, listing_script
from pgtools.partial import ident
from pgtools.psqlscript import without_own_restrict
from pgtools.restore import custom_dump_listing, script_of
from pgtools.schemaext import (
    BackupExtension,
    ExtensionStep,
    drop_sql,
    dumped_extensions,
    privileges_reset_sql,
)

# pg_restore --list: "3550; 0 0 ACL extensions FUNCTION armor(bytea) postgres"
DEPENDENT = re.compile(r"^(\d+); 0 0 (?:ACL|COMMENT|SECURITY LABEL) (.*)$")
SCHEMA_ENTRY = re.compile(r"^\d+; \d+ \d+ SCHEMA - (.*)$")
EXTENSION_ENTRY = re.compile(r"^\d+; \d+ \d+ EXTENSION - (.*) $")
EXTENSION_COMMENT = re.compile(r'^\d+; 0 0 COMMENT - EXTENSION ("(?:[^"]|"")+"|\S+) ')
KIND = re.compile(r"[A-Z]")


def _entry_id(line: str) -> str:
    return line.split(";", 1)[0]


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def schema_listing(
    bindir: Path, dump: Path, schemas: list[str]
) -> tuple[list[str], dict[str, str]]:
    """The dump's table of contents with what restoring the schemas runs left in and every
    other entry commented out; and each schema's owner in the backup."""
    full = custom_dump_listing(bindir, dump)
    chosen = {
        _entry_id(line)
        for line in custom_dump_listing(bindir, dump, schemas)
        if line.strip() and not line.startswith(";")
    }
    owners: dict[str, str] = {}
    out = []
    for line in full:
        if not line.strip() or line.startswith(";"):
            out.append(line)
            continue
        keep = _entry_id(line) in chosen
        if (m := DEPENDENT.match(line)) and not keep:
            keep = any(_of_schema(m.group(2), s) for s in schemas)
        if (m := SCHEMA_ENTRY.match(line)) and " " in m.group(1):
            name, owner = m.group(1).rsplit(" ", 1)
            if name in schemas:
                owners[name] = owner
        out.append(line if keep else ";" + line)
    return out, owners


def _of_schema(rest: str, schema: str) -> bool:
    """Whether the rest of an ACL/COMMENT/SECURITY LABEL line is about the schema itself or an
    object in it ("extensions FUNCTION armor(bytea) postgres", "- SCHEMA auth owner")."""
    for name in {schema, _quoted(schema)}:
        if rest.startswith(f"- SCHEMA {name} "):
            return True
    head = schema + " "
    return rest.startswith(head) and KIND.match(rest, len(head)) is not None


def backup_extensions(bindir: Path, dump: Path) -> list[BackupExtension]:
    """The extensions the dump holds and their schemas, from their entries."""
    listing = [
        line if EXTENSION_ENTRY.match(line) else ";" + line
        for line in custom_dump_listing(bindir, dump)
        if line.strip() and not line.startswith(";")
    ]
    if not any(not line.startswith(";") for line in listing):
        return []
    return dumped_extensions(listing_script(bindir, dump, listing))


def extensions_sql(bindir: Path, dump: Path, steps: list[ExtensionStep]) -> bytes:
    """DROP EXTENSION for those created again, then the backup's CREATE EXTENSION (and its
    comment) for them and those created, each run as its recorded owner."""
    made = {s.name: s for s in steps if s.action in ("created", "recreated")}
    if not made:
        return b""
    names = set(made) | {_quoted(n) for n in made}
    listing = []
    for line in custom_dump_listing(bindir, dump):
        m = EXTENSION_ENTRY.match(line) or EXTENSION_COMMENT.match(line)
        listing.append(line if m and m.group(1) in names else ";" + line)
    script = listing_script(bindir, dump, listing)
    owners = {n: s.owner for n, s in made.items() if s.owner}
    created = b"".join(as_owners(without_own_restrict([script]), owners))
    return drop_sql(steps).encode() + created


def schema_prelude(schemas: list[str], owners: dict[str, str]) -> str:
    """Each schema's owner as in the backup, then the privileges its grants are relative to."""
    stmts = [
        f"ALTER SCHEMA {ident(s)} OWNER TO {ident(owners[s])};" for s in schemas if s in owners
    ]
    return "\n".join([*stmts, privileges_reset_sql(schemas)])


def schema_body(bindir: Path, dump: Path, listing: list[str], extensions: bytes) -> Iterator[bytes]:
    """pg_restore --clean of the listed entries, as SQL, with `extensions` run after the drops
    and before the first object is created."""
    with _listing_file(listing) as path:
        argv = [str(bindir / "pg_restore"), "--clean", "--if-exists", f"--use-list={path}"]
        argv += ["--file=-", str(dump)]
        yield from before_first_entry(without_own_restrict(script_of(argv)), extensions)


def before_first_entry(chunks: Iterable[bytes], sql: bytes) -> Iterator[bytes]:
    """The script with `sql` inserted before its first entry's header (at its end if it has
    none): after pg_restore --clean's drops, before anything is created."""
    if not sql:
        yield from chunks
        return
    splitter = ScriptSplitter()
    it = iter(chunks)
    for chunk in it:
        for entry, data in splitter.feed(chunk):
            if entry is not None and sql:
                yield sql
                sql = b""
            yield data
        if not sql:
            break
    yield splitter.rest()
    yield from it
    yield sql

"""Extensions created by the role that owned them.

An extension belongs to the role that ran CREATE EXTENSION, and so does every function, type
and view its script creates; the grants on those objects are recorded relative to that owner
(pg_init_privs). pg_dump writes `CREATE EXTENSION` with no owner, so a restore creates every
extension as the restoring role, and the extension's objects and their grants change hands.
The backup records each extension's owner, version and schema (`extension_facts`); a restore
runs each `CREATE EXTENSION` as its recorded owner (`as_owners`), a non-superuser owner being
promoted for the restore's transaction as an event trigger's owner is.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import psycopg

from pgtools.dumpscript import ScriptSplitter
from pgtools.errors import RestoreError
from pgtools.restore import first_error
from pgtools.target import DbTarget

EXTENSIONS_SQL = """
SELECT e.extname, pg_get_userbyid(e.extowner), e.extversion, n.nspname
FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
ORDER BY 1
"""
CREATE_PREFIX = b"CREATE EXTENSION "
DATA_TYPES = frozenset({"TABLE DATA", "SEQUENCE SET", "BLOBS", "LARGE OBJECT"})
# pg_restore --list: "2; 3079 16394 EXTENSION - pgcrypto " and "9; 2615 16476 SCHEMA - auth owner"
FIRST_PHASE = re.compile(r"^\d+; \d+ \d+ (SCHEMA|EXTENSION) - ")


def extension_facts(conn: psycopg.Connection[Any]) -> list[dict[str, str]]:
    """Every extension of the database: name, owner, version, schema."""
    return [
        {"name": str(n), "owner": str(o), "version": str(v), "schema": str(s)}
        for n, o, v, s in conn.execute(EXTENSIONS_SQL).fetchall()
    ]


def owners_of(extensions: Iterable[Mapping[str, Any]] | None) -> dict[str, str]:
    return {str(e["name"]): str(e["owner"]) for e in extensions or ()}


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def as_owners(chunks: Iterable[bytes], owners: Mapping[str, str]) -> Iterator[bytes]:
    """The plain script with each `CREATE EXTENSION` of `owners` run as that role.

    The extension entries come before any table, function or row, so the script is split
    only until every named extension has been seen (some, like plpgsql, are never dumped) or
    the rows begin; the rest passes as it is."""
    pending = set(owners)
    splitter = ScriptSplitter()
    it = iter(chunks)
    for chunk in it:
        for entry, data in splitter.feed(chunk):
            if entry is not None and entry.type in DATA_TYPES:
                pending.clear()
            if entry is not None and entry.type == "EXTENSION" and entry.name in owners:
                pending.discard(entry.name)
                if data.startswith(CREATE_PREFIX):
                    role = _ident(owners[entry.name])
                    data = f"SET ROLE {role};\n".encode() + data + b"RESET ROLE;\n"
            yield data
        if not pending:
            break
    yield splitter.rest()
    yield from it


def listing_phases(listing: list[str]) -> tuple[list[str], list[str]]:
    """A custom dump's table of contents in two: the schemas and extensions (to run as SQL,
    extensions as their owners) and everything else (for pg_restore), each a full listing
    with the other phase's entries commented out."""
    first, second = [], []
    for line in listing:
        if line.startswith(";") or not line.strip():
            first.append(line)
            second.append(line)
            continue
        early = FIRST_PHASE.match(line) is not None
        first.append(line if early else ";" + line)
        second.append(";" + line if early else line)
    return first, second


def listing_script(bindir: Path, dump: Path, listing: list[str]) -> bytes:
    """The SQL pg_restore would run for the entries of `listing` (pg_restore -L -f -)."""
    with _listing_file(listing) as path:
        done = subprocess.run(
            [str(bindir / "pg_restore"), f"--use-list={path}", "--file=-", str(dump)],
            capture_output=True,
            check=False,
        )
    if done.returncode != 0:
        raise RestoreError(f"pg_restore stopped: {first_error(done.stderr.splitlines())}")
    return done.stdout


def pg_restore_listed(
    bindir: Path, target: DbTarget, dump: Path, listing: list[str], *, jobs: int
) -> None:
    """pg_restore of the entries of `listing` into target.dbname; with one job, in a single
    transaction."""
    with _listing_file(listing) as path:
        argv = [
            str(bindir / "pg_restore"),
            "--exit-on-error",
            "--no-password",
            f"--dbname={target.dbname}",
            f"--use-list={path}",
            f"--jobs={jobs}" if jobs > 1 else "--single-transaction",
            str(dump),
        ]
        done = subprocess.run(
            argv, env=target.env(dict(os.environ)), capture_output=True, check=False
        )
    if done.returncode != 0:
        raise RestoreError(f"pg_restore stopped: {first_error(done.stderr.splitlines())}")


class _listing_file:
    def __init__(self, listing: list[str]) -> None:
        self.listing = listing
        self.path: Path | None = None

    def __enter__(self) -> Path:
        fd, name = tempfile.mkstemp(prefix="dumpledger-list-", suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write("\n".join(self.listing) + "\n")
        self.path = Path(name)
        return self.path

    def __exit__(self, *exc: object) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def restore_custom_as_owners(
    bindir: Path, db: DbTarget, dump: Path, owners: Mapping[str, str], *, jobs: int
) -> None:
    """A custom dump into the fresh database `db`: first its schemas and extensions as SQL,
    each extension created by its owner, then everything else with pg_restore."""
    from pgtools.restore import custom_dump_listing, run_psql

    first, rest = listing_phases(custom_dump_listing(bindir, dump))
    run_psql(bindir, db, as_owners([listing_script(bindir, dump, first)], owners))
    pg_restore_listed(bindir, db, dump, rest, jobs=jobs)

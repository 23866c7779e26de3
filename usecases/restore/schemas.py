"""--schema: whole schemas of a custom-format backup into the live database, in one psql
transaction that only its last statement commits (pgtools.schemarestore).

Afterwards each schema is as the backup had it: its objects, rows, owners and privileges, the
objects its extensions made (by the extension's owner) and the privileges on them; what other
schemas have on it (foreign keys, triggers, policies, defaults, event triggers) is set aside
and recreated as the target had it. What the target has in the schema and the backup does
not is left. The plan says all of it; what cannot be done is refused up front, one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pgtools.errors import RestoreError
from pgtools.globalsql import promotion_sql
from pgtools.partial import row_count_checks
from pgtools.restore import run_psql
from pgtools.schemaext import BackupExtension, recorded_extensions
from pgtools.schemarestore import (
    backup_extensions,
    extensions_sql,
    schema_body,
    schema_listing,
    schema_prelude,
)
from pgtools.schemaset import SchemaSet, detach_prelude, schema_set
from pgtools.target import DbTarget
from usecases.context import App
from usecases.errors import BadInput

INSTEAD = (
    "the schema cannot be restored alone while they exist: restore the whole database instead, "
    "or restore the backup into another database (--target-db) and copy what you need from there"
)


def extensions_of(app: App, source: Any, bindir: Path) -> list[BackupExtension] | None:
    """The backup's extensions with their schemas and owners, as its metadata records them; a
    dump's from its entries (owners unknown: an older backup, a file). None: an older backup
    whose dump is encrypted, read when restoring."""
    meta = (source.backup or {}).get("metadata") or {}
    if "extensions" in meta:
        return recorded_extensions(meta["extensions"])
    if source.file is not None:
        return backup_extensions(bindir, source.file)
    if not source.codec.sealed:
        from usecases.restore.source import materialized  # source imports this module

        with materialized(app, source) as dump:  # a whole blob as it is, a chunked one rebuilt
            return backup_extensions(bindir, dump)
    return None


def plan_schemas(
    target: DbTarget,
    schemas: list[str],
    extensions: list[BackupExtension] | None,
    *,
    superuser: bool,
) -> SchemaSet:
    found = schema_set(target, schemas, extensions or [])
    missing = [s for s in schemas if s not in found.tables]
    if missing:
        raise BadInput(
            f"--schema {missing[0]}: no such schema in {target.dbname}; create it first "
            f'(CREATE SCHEMA "{missing[0]}"), or restore the whole backup'
        )
    if found.refusals:
        raise BadInput(refusal(found))
    needs = sorted(found.owners_to_promote())
    if needs and not superuser:
        raise BadInput(
            f"--schema {', '.join(schemas)}: it recreates event triggers or creates extensions "
            f"owned by {', '.join(needs)}, which needs a superuser connection; {target.user} is "
            "not one: connect as a superuser (on Supabase: supabase_admin)"
        )
    return found


def refusal(found: SchemaSet) -> str:
    shown = "; ".join(found.refusals[:3])
    more = len(found.refusals) - 3
    return (
        f"--schema {', '.join(found.schemas)}: {shown}{f' (+{more} more)' if more > 0 else ''}"
        f"; {INSTEAD}; nothing was changed"
    )


def schemas_json(
    found: SchemaSet, backup_tables: dict[str, int | None], *, extensions_known: bool = True
) -> dict[str, Any]:
    exts = {s.name: s.note for s in found.extensions}
    if not extensions_known:
        exts = {"?": "the backup recorded none and its dump is encrypted: read when restoring"}
    return {
        "schemas_replaced": {
            name: {
                "tables_now": found.tables.get(name, 0),
                "tables_in_backup": sum(1 for n in backup_tables if n.split(".", 1)[0] == name),
            }
            for name in found.schemas
        },
        "partitions_detached_and_reattached": [f"{c}.{t}" for c, t, _, _ in found.partitions],
        "foreign_keys_dropped_and_recreated": [fk.label() for fk in found.partition_fks],
        "set_aside_and_recreated": found.bridge.labels,
        "extensions": exts,
    }


def restore_schemas(
    bindir: Path,
    target: DbTarget,
    dump: Path,
    schemas: list[str],
    extensions: list[BackupExtension] | None,
    *,
    superusers: frozenset[str],
    expected_rows: dict[str, int],
    lock_wait_timeout: float = 0,
) -> None:
    """Look at the target again (it may have changed since the plan), then run it all in one
    transaction."""
    if extensions is None:
        extensions = backup_extensions(bindir, dump)
    found = schema_set(target, schemas, extensions)
    if found.refusals:
        raise RestoreError(refusal(found))
    up, down = promotion_sql(found.owners_to_promote(), superusers)
    listing, owners = schema_listing(bindir, dump, schemas)
    prelude = [up, *found.bridge.drops, detach_prelude(found), schema_prelude(schemas, owners)]
    postlude = [
        "SELECT pg_catalog.set_config('search_path', '', true);",
        *found.bridge.recreates,
        down,
        "SET LOCAL row_security = off;",
        row_count_checks(expected_rows),
    ]
    run_psql(
        bindir,
        target,
        schema_body(bindir, dump, listing, extensions_sql(bindir, dump, found.extensions)),
        prelude="\n".join(p for p in prelude if p),
        postlude="\n".join(p for p in postlude if p),
        lock_wait_timeout=lock_wait_timeout,
    )

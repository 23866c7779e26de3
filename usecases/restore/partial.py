"""--table and --schema: part of a custom-format backup into the live database, in one psql
transaction that only its last statement commits (pgtools.psqlscript).

The plan is exact: the tables whose rows are replaced (a partitioned table's leaf partitions),
the foreign keys checked afterwards, the sequences left as they are; for a schema
(usecases.restore.schemas), the tables it has now and in the backup, the partitions detached
and attached again, what other schemas' objects are set aside and recreated, and what becomes
of its extensions. What cannot be done is refused before anything is touched, with the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pgtools.partial import (
    TableSet,
    foreign_key_checks,
    replace_rows_prelude,
    row_count_checks,
    table_set,
)
from pgtools.restore import custom_dump_listing, run_psql, table_data_script
from pgtools.schemaext import BackupExtension
from pgtools.schemaset import SchemaSet
from pgtools.target import DbTarget
from usecases.errors import BadInput
from usecases.restore.schemas import plan_schemas, restore_schemas, schemas_json

LISTED_TABLE = re.compile(r"^\d+; \d+ \d+ TABLE (?:DATA )?(?!ATTACH )(\S+) (\S+) ")


@dataclass(slots=True, kw_only=True)
class PartialPlan:
    tables: TableSet | None = None
    schemas: SchemaSet | None = None
    backup_tables: dict[str, int | None]  # schema.table -> rows recorded (None: not recorded)
    extensions: list[BackupExtension] | None = None  # the backup's (None: read from its dump)

    def expected_rows(self) -> dict[str, int]:
        """Row counts the restored tables must have: what the backup recorded."""
        if self.tables is not None:
            names = [".".join(t) for t in self.tables.tables]
        else:
            assert self.schemas is not None
            names = [n for n in self.backup_tables if n.split(".", 1)[0] in self.schemas.schemas]
        return {n: c for n in names if (c := self.backup_tables.get(n)) is not None}

    def to_json(self) -> dict[str, Any]:
        if self.tables is not None:
            t = self.tables
            return {
                "rows_replaced": [".".join(x) for x in t.tables],
                "partitions": {k: [".".join(x) for x in v] for k, v in t.leaves.items()},
                "emptied_with": "DELETE, triggers suspended"
                if t.referenced_from_outside
                else "TRUNCATE",
                "foreign_keys_checked": [fk.label() for fk in t.foreign_keys],
                "sequences_left_as_they_are": t.sequences,
                "row_counts_checked": self.expected_rows(),
            }
        assert self.schemas is not None
        known = self.extensions is not None
        return schemas_json(self.schemas, self.backup_tables, extensions_known=known) | {
            "row_counts_checked": self.expected_rows()
        }


def backup_tables(source: Any, bindir: Path) -> dict[str, int | None]:
    """The tables the backup (or dump file) holds, with the rows it recorded when it did."""
    if source.backup is not None:
        counts = (source.backup.get("metadata") or {}).get("row_counts")
        if counts is not None:
            return {str(k): int(v) for k, v in counts.items()}
    if source.file is None:
        return {}
    out: dict[str, int | None] = {}
    for line in custom_dump_listing(bindir, source.file):
        if m := LISTED_TABLE.match(line):
            out[f"{m.group(1)}.{m.group(2)}"] = None
    return out


def plan_partial(
    target: DbTarget,
    tables: list[tuple[str, str]],
    schemas: list[str],
    in_backup: dict[str, int | None],
    *,
    superuser: bool,
    extensions: list[BackupExtension] | None = None,
) -> PartialPlan:
    if tables:
        found = table_set(target, tables)
        _refuse_tables(target, found, in_backup, superuser=superuser)
        return PartialPlan(tables=found, backup_tables=in_backup)
    found_s = plan_schemas(target, schemas, extensions, superuser=superuser)
    return PartialPlan(schemas=found_s, backup_tables=in_backup, extensions=extensions)


def _refuse_tables(
    target: DbTarget, found: TableSet, in_backup: dict[str, int | None], *, superuser: bool
) -> None:
    db = target.dbname
    if found.missing:
        raise BadInput(
            f"--table {found.missing[0]}: no such table in {db}; --table replaces the rows of a "
            "table that exists (use --schema for its schema, or restore the whole backup into "
            "another database with --target-db)"
        )
    absent = [".".join(t) for t in found.tables if ".".join(t) not in in_backup]
    if in_backup and absent:
        raise BadInput(f"--table {absent[0]}: the backup holds no such table; nothing was changed")
    if found.referenced_from_outside and not superuser:
        fk = found.referenced_from_outside[0]
        raise BadInput(
            f"--table {'.'.join(fk.parent)}: {fk.label()} references it, so its rows can only "
            "be replaced with the foreign keys' triggers suspended (and checked afterwards), "
            f"which needs a superuser connection; {target.user} is not one: connect as a "
            "superuser, or name the referencing tables too"
        )


def restore_partial(
    bindir: Path,
    target: DbTarget,
    dump: Path,
    plan: PartialPlan,
    superusers: frozenset[str],
    *,
    lock_wait_timeout: float = 0,
) -> None:
    """Run the plan in one transaction: all of it applies, or none; a lock request that waits
    longer than `lock_wait_timeout` seconds cancels it (pgtools.lockwatch)."""
    if plan.schemas is not None:
        restore_schemas(
            bindir,
            target,
            dump,
            plan.schemas.schemas,
            plan.extensions,
            superusers=superusers,
            expected_rows=plan.expected_rows(),
            lock_wait_timeout=lock_wait_timeout,
        )
        return
    checks = "SET LOCAL row_security = off;\n" + row_count_checks(plan.expected_rows())
    found = plan.tables
    assert found is not None
    restored = ", ".join(".".join(t) for t in found.tables)
    data = list(dict.fromkeys(found.data_tables()))
    run_psql(
        bindir,
        target,
        table_data_script(bindir, dump, data),
        prelude=replace_rows_prelude(found),
        postlude=foreign_key_checks(found, restored) + "\n" + checks,
        lock_wait_timeout=lock_wait_timeout,
    )


def artifact_for(requested: str | None, *, partial: bool, backup: str, kinds: set[str]) -> str:
    """The artifact to restore: --table/--schema need the custom-format dump and take it
    without being told; otherwise the full dump unless --artifact says custom."""
    if requested not in (None, "full", "custom"):
        raise BadInput(f"--artifact must be full or custom, not {requested!r}")
    if partial:
        if requested == "full":
            raise BadInput(
                "--schema/--table restore part of the custom-format dump; leave out --artifact full"
            )
        if "custom" not in kinds:
            raise BadInput(
                f"--schema/--table need a custom-format dump, and backup {backup} has none (it "
                f"has: {', '.join(sorted(kinds))}; automatic backups have one only with "
                "--all-formats): restore the whole backup into another database (--target-db) "
                "and copy the rows from there"
            )
        return "custom"
    chosen = requested or "full"
    if chosen not in kinds:
        raise BadInput(
            f"backup {backup} has no {chosen} artifact (it has: {', '.join(sorted(kinds))}); "
            "use --artifact full, or take a backup with --all-formats"
        )
    return chosen

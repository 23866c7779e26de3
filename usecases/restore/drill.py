"""Restore drills: restore a backup into a scratch database, compare it with what the backup
recorded (tables present, exact row counts, every row readable), time it, drop it, and append
RestoreTested. The time is the recovery time this backup really has."""

from __future__ import annotations

import dataclasses
import secrets
import time
from dataclasses import dataclass
from typing import Any

from psycopg import sql

from catalog.events import RestoreTested
from catalog.queries import get_backup, list_backups
from catalog.read import BackupFilter
from pgtools.databases import create_database, drop_database, maintenance_target
from pgtools.errors import PgError
from pgtools.globalsql import globals_roles, tolerant_globals
from pgtools.restore import run_psql, server_facts
from pgtools.session import TABLES_SQL, connect
from pgtools.target import DbTarget
from store import DecryptionKeyError
from usecases.context import App
from usecases.errors import BadInput
from usecases.restore.fill import restore_into
from usecases.restore.source import RestoreRequest, bindir_for, load_source


@dataclass(frozen=True, slots=True, kw_only=True)
class DrillOutcome:
    backup: str
    ok: bool
    restore_seconds: float
    check_seconds: float
    total_seconds: float
    tables_checked: int
    mismatches: list[str]
    reason: str | None
    scratch_db: str
    roles_created: list[str]


def pick_backup(app: App, name: str | None) -> str:
    if name:
        return name
    done = list_backups(app.catalog.engine, BackupFilter(status="completed"))
    if not done:
        raise BadInput("no completed backup to drill; take one with `dumpledger backup`")
    return str(done[0]["name"])


def run_drill(app: App, name: str | None, *, server: DbTarget | None = None) -> DrillOutcome:
    """Restore into a scratch database and compare; the blobs are held against collection."""
    with app.store.protect():
        return _drill(app, name, server)


def _drill(app: App, name: str | None, server: DbTarget | None) -> DrillOutcome:
    backup_name = pick_backup(app, name)
    backup = get_backup(app.catalog.engine, backup_name)
    # None: no counts were recorded (imported from the old scripts): tables are only read
    expected: dict[str, int] | None = (backup["metadata"] or {}).get("row_counts")
    base = server or app.settings.database
    scratch = f"dumpledger_drill_{secrets.token_hex(4)}"
    db = dataclasses.replace(base, dbname=scratch)
    t0 = time.monotonic()
    restore_s = check_s = 0.0
    mismatches: list[str] = []
    checked = 0
    reason: str | None = None
    roles_created: list[str] = []
    created = False
    try:
        src = load_source(app, RestoreRequest(backup=backup_name), verify=True)
        facts = server_facts(dataclasses.replace(base, dbname=base.dbname))
        bindir = bindir_for(app, facts.server_major)
        if src.globals_sql:
            roles_created = [r for r in globals_roles(src.globals_sql) if r not in facts.roles]
            if roles_created:
                run_psql(
                    bindir,
                    maintenance_target(db),
                    [
                        tolerant_globals(
                            src.globals_sql, facts.roles, keep_grantors=facts.is_superuser
                        ).encode()
                    ],
                )
        create_database(base, scratch, src.properties)
        created = True
        now = server_facts(base)
        restore_into(app, src, bindir, db, now.superusers, jobs=1, roles=now.roles)
        restore_s = round(time.monotonic() - t0, 3)
        t1 = time.monotonic()
        checked, mismatches = compare(db, expected)
        check_s = round(time.monotonic() - t1, 3)
    except DecryptionKeyError:
        raise  # the configured key is wrong, not the backup: no drill result to record
    except Exception as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
    finally:
        if created:
            try:
                drop_database(base, scratch)
            except PgError as exc:
                reason = (reason + "; " if reason else "") + f"could not drop {scratch}: {exc}"
    total = round(time.monotonic() - t0, 3)
    ok = reason is None and not mismatches
    if reason is None and mismatches:
        reason = f"{len(mismatches)} difference(s) from what the backup recorded"
    app.catalog.append(
        RestoreTested(
            backup=backup_name,
            ok=ok,
            target=db.describe(),
            restore_seconds=restore_s,
            check_seconds=check_s,
            total_seconds=total,
            tables_checked=checked,
            mismatches=mismatches,
            reason=reason,
        ),
        actor=app.actor,
    )
    return DrillOutcome(
        backup=backup_name,
        ok=ok,
        restore_seconds=restore_s,
        check_seconds=check_s,
        total_seconds=total,
        tables_checked=checked,
        mismatches=mismatches,
        reason=reason,
        scratch_db=scratch,
        roles_created=roles_created,
    )


def compare(db: DbTarget, expected: dict[str, int] | None) -> tuple[int, list[str]]:
    """Tables present and exact row counts; every row is read (as text) so all of it decodes.

    With `expected` None (the backup recorded no counts), every row is still read."""
    problems: list[str] = []
    found: dict[str, int] = {}
    with connect(db, autocommit=True) as conn:
        conn.execute("SET row_security = off")
        for schema, table in conn.execute(TABLES_SQL).fetchall():
            query = sql.SQL("SELECT count(*) FROM (SELECT t::text FROM {}.{} t) rows").format(
                sql.Identifier(schema), sql.Identifier(table)
            )
            row: Any = conn.execute(query).fetchone()
            found[f"{schema}.{table}"] = int(row[0])
    if expected is None:
        return len(found), problems
    for table in sorted(set(expected) - set(found)):
        problems.append(f"{table}: missing after restore")
    for table in sorted(set(found) - set(expected)):
        problems.append(f"{table}: present after restore but not recorded in the backup")
    for table in sorted(set(found) & set(expected)):
        if found[table] != expected[table]:
            problems.append(f"{table}: {found[table]} rows restored, {expected[table]} recorded")
    return len(found), problems

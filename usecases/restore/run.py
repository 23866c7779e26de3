"""Restore a backup (or a dump file) safely: verify, plan, safety backup, restore into a scratch
database, swap it in atomically; record RestoreStarted / RestoreCompleted / RestoreFailed.

Whole-database restores never write into the target. They fill a fresh scratch database in
one transaction and then swap it in by renaming (old name -> `<db>_replaced_<time>`, scratch ->
`<db>`) in a single transaction, so the target is either exactly as it was or exactly the
backup. The replaced database is kept until a person drops it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import secrets
import socket
import time
from dataclasses import dataclass
from typing import Any

from catalog.events import RestoreCompleted, RestoreFailed, RestoreStarted
from pgtools.databases import (
    TEMPLATE_DBS,
    apply_properties,
    create_database,
    drop_database,
    maintenance_target,
    swap_in,
)
from pgtools.errors import PgError
from pgtools.globalsql import globals_roles, tolerant_globals
from pgtools.restore import ServerFacts, run_psql, server_facts
from pgtools.roles import passwordless_logins, without_passwords
from pgtools.target import DbTarget
from usecases.backup.run import BackupRequest, run_backup, unused_name
from usecases.context import App
from usecases.errors import BadInput, Interrupted, UseCaseError, interruption
from usecases.health.check import leftovers_note
from usecases.restore.fill import restore_into
from usecases.restore.lock import restore_lock
from usecases.restore.partial import (
    PartialPlan,
    backup_tables,
    plan_partial,
    restore_partial,
)
from usecases.restore.platform import (
    PlatformPlan,
    plan_platform,
    refuse_if_blocked,
    restore_platform,
    wants_platform,
)
from usecases.restore.schemas import extensions_of
from usecases.restore.source import RestoreRequest as RestoreRequest  # the API takes it
from usecases.restore.source import (
    Source,
    load_source,
    materialized,
)
from usecases.restore.source import bindir_for as bindir_for
from usecases.restore.source import script_of as script_of


class RestoreFailedError(UseCaseError):
    """The restore did not complete; the target is as it was and RestoreFailed is recorded."""


@dataclass(slots=True, kw_only=True)
class RestorePlan:
    source: Source
    target: DbTarget
    facts: ServerFacts
    method: str  # swap, partial, or platform (into a Supabase instance, its platform kept)
    safety_backup: str | None
    roles_to_create: list[str]
    roles_without_password: list[str]  # of roles_to_create: logins the backup has no hash for
    scratch_db: str
    keep_as: str
    source_server_version: str | None
    warnings: list[str]
    last_drill: dict[str, Any] | None
    partial: PartialPlan | None = None  # --table/--schema: exactly what is touched
    platform: PlatformPlan | None = None  # restoring into a Supabase instance, platform kept

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source.label,
            "format": self.source.format,
            "verified": self.source.verified,
            "target": self.target.describe(),
            "target_exists": self.facts.target_exists,
            "method": self.method,
            "safety_backup": self.safety_backup,
            "roles_to_create": self.roles_to_create,
            "roles_created_without_password": self.roles_without_password,
            "objects_replaced": self.partial.to_json() if self.partial else self._replaced(),
            "other_sessions_to_terminate": self.facts.other_sessions,
            "replaced_database_kept_as": self.keep_as if self.method == "swap" else None,
            "server_version": self.facts.server_version,
            "backup_server_version": self.source_server_version,
            "connecting_as_superuser": self.facts.is_superuser,
            "warnings": self.warnings,
            "last_drill": self.last_drill,
            "platform": self.platform.to_json() if self.platform else None,
        }

    def _replaced(self) -> dict[str, int]:
        tables = self.facts.tables_by_schema if self.facts.target_exists else {}
        if self.platform is not None:  # the platform's schemas stay
            return {k: v for k, v in tables.items() if k in self.platform.replaced}
        return tables


@dataclass(frozen=True, slots=True, kw_only=True)
class RestoreOutcome:
    restore_id: str
    source: str
    target: str
    safety_backup: str | None
    replaced_database: str | None
    duration_seconds: float
    roles_created: list[str]


def _stamp(app: App) -> str:
    return app.clock().astimezone().strftime("%Y%m%d_%H%M%S")


def _safe_part(dbname: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "-", dbname)[:60] or "db"


# -- the plan --------------------------------------------------------------------------------


def plan_restore(app: App, req: RestoreRequest, *, verify: bool = True) -> RestorePlan:
    target = dataclasses.replace(
        app.settings.database, dbname=req.target_db or app.settings.database.dbname
    )
    if target.dbname in TEMPLATE_DBS:
        raise BadInput(f"refusing to restore into {target.dbname}: it is a template database")
    source = load_source(app, req, verify=verify)
    facts = server_facts(target)
    partial = bool(req.schemas or req.tables)
    if req.schemas and req.tables:
        raise BadInput("use --schema (whole schemas) or --table (rows of tables), not both")
    for t in req.tables:
        split_table(t)
    if req.file is not None and partial and source.format != "custom":
        raise BadInput("--schema/--table need a custom-format dump file")
    stamp = _stamp(app)
    part = _safe_part(target.dbname)
    warnings = []
    if partial and not facts.target_exists:
        raise BadInput(f"database {target.dbname} does not exist: a partial restore needs it")
    partial_plan = None
    if partial:
        bindir = bindir_for(app, facts.server_major)
        partial_plan = plan_partial(
            target,
            [split_table(t) for t in req.tables],
            list(req.schemas),
            backup_tables(source, bindir),
            superuser=facts.is_superuser,
            extensions=extensions_of(app, source, bindir) if req.schemas else None,
        )
    roles = globals_roles(source.globals_sql) if source.globals_sql else []
    meta = (source.backup or {}).get("metadata") or {}
    platform = _platform_plan(app, req, source, target, facts, roles, meta)
    to_create = [r for r in roles if r not in facts.roles] if platform is None else []
    no_password = passwordless_logins(source.globals_sql or "")
    owners = source.event_trigger_owners - facts.superusers
    if owners and not facts.is_superuser and platform is None:
        warnings.append(
            f"event triggers owned by {', '.join(sorted(owners))} can only be restored by a "
            f"superuser, and {target.user} is not one: connect as a superuser "
            "(on Supabase: supabase_admin) with SUPABASE_DB_USER"
        )
    if not facts.is_superuser and to_create:
        warnings.append(f"{target.user} may lack the right to create roles {', '.join(to_create)}")
    src_version = (meta.get("versions") or {}).get("server")
    if src_version:
        src_major = int(str(src_version).split(".")[0])
        if src_major > facts.server_major:
            warnings.append(
                f"the backup is from PostgreSQL {src_version}, the target runs "
                f"{facts.server_version}: restoring into an older major version may fail"
            )
    if source.file is not None:
        warnings.append("a file from outside the catalog carries no roles: they must already exist")
    if facts.leftovers:
        warnings.append(leftovers_note(facts.leftovers))
    backup = source.backup
    last_drill = None
    if backup and backup.get("last_drill_at"):
        last_drill = {
            "at": backup["last_drill_at"],
            "ok": backup["last_drill_ok"],
            "seconds": backup["last_drill_seconds"],
        }
    return RestorePlan(
        source=source,
        target=target,
        facts=facts,
        method="platform" if platform else "partial" if partial else "swap",
        safety_backup=unused_name(app, f"pre-restore_{part}_{stamp}")
        if facts.target_exists
        else None,
        roles_to_create=to_create,
        roles_without_password=[r for r in to_create if r in no_password],
        scratch_db=f"{part[:40]}_dlrestore_{secrets.token_hex(3)}",
        keep_as=f"{part[:36]}_replaced_{stamp}",
        source_server_version=src_version,
        warnings=warnings,
        last_drill=last_drill,
        partial=partial_plan,
        platform=platform,
    )


def _platform_plan(
    app: App,
    req: RestoreRequest,
    source: Source,
    target: DbTarget,
    facts: ServerFacts,
    roles: list[str],
    meta: dict[str, Any],
) -> PlatformPlan | None:
    partial = bool(req.schemas or req.tables)
    if not wants_platform(keep_platform=req.keep_platform, partial=partial, facts=facts):
        return None
    bindir = bindir_for(app, facts.server_major)
    return plan_platform(
        target=target,
        bindir=bindir,
        open_script=lambda: script_of(app, source, bindir),
        metadata=meta,
        backup_roles=roles,
    )


# -- doing it --------------------------------------------------------------------------------


def execute_restore(
    app: App, plan: RestorePlan, req: RestoreRequest, *, terminate: bool
) -> RestoreOutcome:
    """Run the plan; the backup's blobs are held against collection while it reads them, and
    no other restore into the target runs meanwhile."""
    if plan.platform is not None:
        refuse_if_blocked(plan.platform, plan.target.user)
    with app.store.protect(), restore_lock(app, plan.target):
        return _execute(app, plan, req, terminate=terminate)


def _execute(
    app: App, plan: RestorePlan, req: RestoreRequest, *, terminate: bool
) -> RestoreOutcome:
    src, target = plan.source, plan.target
    restore_id = secrets.token_hex(8)
    common: dict[str, Any] = {
        "restore_id": restore_id,
        "backup": src.backup["name"] if src.backup else None,
        "source_file": str(src.file) if src.file else None,
        "target": target.describe(),
    }
    app.catalog.append(
        RestoreStarted(
            **common,
            artifacts=src.artifacts,
            method=plan.method,
            safety_backup=plan.safety_backup,
            terminate_connections=terminate,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            scratch_db=plan.scratch_db if plan.method == "swap" else None,
            keep_as=plan.keep_as if plan.method == "swap" else None,
        ),
        actor=app.actor,
    )
    t0 = time.monotonic()
    stage = "safety-backup"
    created_scratch = False
    roles_created: list[str] = []
    try:
        if plan.safety_backup:
            safety_app = dataclasses.replace(
                app, settings=dataclasses.replace(app.settings, database=target)
            )
            run_backup(safety_app, BackupRequest(name=plan.safety_backup, backup_type="pre"))
        bindir = bindir_for(app, plan.facts.server_major)
        if src.globals_sql and plan.platform is None:  # a platform keeps its roles
            stage = "roles"
            roles_created = plan.roles_to_create
            run_psql(
                bindir,
                maintenance_target(target),
                [
                    tolerant_globals(
                        src.globals_sql,
                        server_facts(target).roles,
                        keep_grantors=plan.facts.is_superuser,
                    ).encode()
                ],
            )
        stage = "restore"
        now = server_facts(target)
        if plan.platform is not None:
            restore_platform(
                plan.platform,
                target=target,
                bindir=bindir,
                open_script=lambda: script_of(app, src, bindir),
                lock_wait_timeout=app.settings.lock_wait_timeout,
            )
            replaced = None
        elif plan.partial is not None:
            with materialized(app, src) as dump:
                restore_partial(
                    bindir,
                    target,
                    dump,
                    plan.partial,
                    now.superusers,
                    lock_wait_timeout=app.settings.lock_wait_timeout,
                )
            replaced = None
        else:
            create_database(target, plan.scratch_db, src.properties)
            created_scratch = True
            scratch = dataclasses.replace(target, dbname=plan.scratch_db)
            restore_into(app, src, bindir, scratch, now.superusers, jobs=req.jobs, roles=now.roles)
            if src.properties:
                apply_properties(target, plan.scratch_db, src.properties)
            stage = "swap"
            replaced = swap_in(target, plan.scratch_db, plan.keep_as, terminate=terminate)
            created_scratch = False
    except BaseException as exc:
        how = interruption(exc)
        reason = how or without_passwords(" ".join(str(exc).split())) or type(exc).__name__
        if created_scratch:
            _drop_quietly(target, plan.scratch_db)
        duration = round(time.monotonic() - t0, 3)
        app.catalog.append(
            RestoreFailed(
                **common,
                safety_backup=plan.safety_backup,
                duration_seconds=duration,
                stage=stage,
                reason=reason,
            ),
            actor=app.actor,
        )
        if how:
            raise Interrupted(_failure_message(app, plan, stage, reason), how=how) from exc
        if isinstance(exc, Exception):
            raise RestoreFailedError(_failure_message(app, plan, stage, reason)) from exc
        raise
    duration = round(time.monotonic() - t0, 3)
    app.catalog.append(
        RestoreCompleted(
            **common,
            safety_backup=plan.safety_backup,
            duration_seconds=duration,
            replaced_database=replaced,
        ),
        actor=app.actor,
    )
    return RestoreOutcome(
        restore_id=restore_id,
        source=src.label,
        target=target.label(),
        safety_backup=plan.safety_backup,
        replaced_database=replaced,
        duration_seconds=duration,
        roles_created=roles_created,
    )


def split_table(name: str) -> tuple[str, str]:
    schema, dot, table = name.partition(".")
    if not dot or not schema or not table:
        raise BadInput(f"--table {name!r}: name it with its schema, as schema.table (public.todos)")
    return schema, table


def _drop_quietly(target: DbTarget, name: str) -> None:
    with contextlib.suppress(PgError):  # the server may be gone; the scratch name says what it is
        drop_database(target, name)


def _failure_message(app: App, plan: RestorePlan, stage: str, reason: str) -> str:
    head = f"restore of {plan.source.label} into {plan.target.dbname} failed ({stage}): {reason}."
    if stage == "safety-backup":
        return f"{head} Nothing was changed."
    tail = f" {plan.target.dbname} was left as it was."
    if plan.safety_backup:
        tail += (
            f" To go back to the safety backup: dumpledger --backup-dir {app.settings.backup_dir} "
            f"restore {plan.safety_backup} --target-db {plan.target.dbname} --yes"
        )
    return head + tail

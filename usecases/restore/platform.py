"""Restore into a Supabase instance as `postgres`: the platform kept, the project restored.

Chosen when the target already has Supabase's platform (the `auth` schema, the
`supabase_admin` role) and the connecting role is no superuser, or with --keep-platform. The
plan says which schemas are restored whole, which tables only by their rows, what is left to
the platform, where the platform differs from the backup's, and what refuses the restore
(roles the target lacks: a non-superuser restore creates and changes no role)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgtools.dumpscript import Entry
from pgtools.errors import RestoreError
from pgtools.platform import (
    ADD,
    PASS,
    ROWS,
    ScriptIndex,
    Target,
    decide,
    index_script,
    is_platform_schema,
    prologue,
    restore_script,
    schema_named,
)
from pgtools.platform_facts import TargetFacts, definitions, privilege_problems, target_facts
from pgtools.psqlscript import without_own_restrict
from pgtools.restore import ServerFacts, run_psql
from pgtools.target import DbTarget
from usecases.errors import BadInput

ScriptOpener = Callable[[], AbstractContextManager[Iterator[bytes]]]
LARGE_OBJECTS = frozenset({"LARGE OBJECT", "BLOB", "BLOBS", "BLOB METADATA"})
PROPERTIES = ("owner", "comment", "acl", "settings")


def wants_platform(*, keep_platform: bool, partial: bool, facts: ServerFacts) -> bool:
    """Whole restores into an existing Supabase instance by a role that is no superuser."""
    if partial or not facts.target_exists:
        return False
    supabase = "auth" in facts.tables_by_schema and "supabase_admin" in facts.roles
    return keep_platform or (supabase and not facts.is_superuser)


@dataclass(slots=True, kw_only=True)
class PlatformPlan:
    restored_whole: dict[str, int]  # the backup's own schemas -> their tables
    replaced: list[str]  # the target's own schemas, dropped first (public: its contents)
    rows_only: dict[str, int | None]  # platform tables -> the backup's rows
    left_to_platform: list[str]  # the target's platform schemas
    additions: list[str]  # policies, triggers on platform tables the target lacks
    differences: list[str] = field(default_factory=list)
    blockers: list[str] = field(default_factory=list)
    target: Target = field(default_factory=Target)

    def to_json(self) -> dict[str, Any]:
        return {
            "restored_whole": self.restored_whole,
            "target_schemas_replaced": self.replaced,
            "rows_only": self.rows_only,
            "left_to_the_platform": self.left_to_platform,
            "created_on_platform_tables": self.additions,
            "platform_differences": self.differences,
            "refused_because": self.blockers,
        }


def plan_platform(
    *,
    target: DbTarget,
    bindir: Path,
    open_script: ScriptOpener,
    metadata: dict[str, Any],
    backup_roles: list[str],
) -> PlatformPlan:
    facts = target_facts(target)
    with open_script() as chunks:
        index = index_script(chunks)
    mine = Target(
        extensions=frozenset(facts.extensions),
        publications=facts.publications,
        acting_as=facts.acting_as,
    )
    entries = [i.entry for i in index.entries]
    plan = PlatformPlan(
        restored_whole=_tables_by_schema(entries, platform=False),
        replaced=sorted(s for s in facts.schemas if not is_platform_schema(s)),
        rows_only=_rows_only(entries, metadata.get("row_counts")),
        left_to_platform=sorted(s for s in facts.schemas if is_platform_schema(s)),
        additions=[],
        target=mine,
    )
    plan.blockers = _blockers(facts, index, mine, backup_roles, target, plan)
    try:
        theirs = definitions(bindir, target)
    except RestoreError as exc:  # a table the role may not lock, say: compare nothing
        plan.differences.append(f"not compared with the target's definitions: {exc}")
        theirs = None
    if theirs is not None:
        _compare(plan, index, theirs, mine)
    else:  # what the restore would create on platform tables, not knowing what is there
        plan.additions = [
            f"{_describe(i.entry)} (if missing)"
            for i in index.entries
            if decide(i.entry, mine) == ADD
        ]
    _versions(plan, facts, metadata)
    return plan


def refuse_if_blocked(plan: PlatformPlan, user: str) -> None:
    if plan.blockers:
        raise BadInput(
            f"restore into this Supabase instance as {user} refused, nothing was changed: "
            + "; ".join(plan.blockers)
        )


def restore_platform(
    plan: PlatformPlan,
    *,
    target: DbTarget,
    bindir: Path,
    open_script: ScriptOpener,
    lock_wait_timeout: float = 0,
) -> None:
    """One transaction: drop the target's own schemas, empty the platform tables, run the
    backup's script as `decide` filters it, commit."""
    with open_script() as chunks:
        # pg_dump's own `\restrict` pair goes first: run_psql restricts psql under a key of
        # the restore's own, and `\restrict` must be the script's first line to be found
        script = restore_script(without_own_restrict(chunks), script_head(plan), plan.target)
        run_psql(bindir, target, script, lock_wait_timeout=lock_wait_timeout)


def script_head(plan: PlatformPlan) -> str:
    """What runs before the backup's script: see pgtools.platform.prologue."""
    return prologue(plan.replaced, [_qualified(t) for t in plan.rows_only])


def _qualified(dotted: str) -> str:
    schema, _, table = dotted.partition(".")
    return f"{_ident(schema)}.{_ident(table)}"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _tables_by_schema(entries: list[Entry], *, platform: bool) -> dict[str, int]:
    out: dict[str, int] = {}
    for e in entries:
        schema = schema_named(e)
        if schema is None or is_platform_schema(schema) != platform:
            continue
        out.setdefault(schema, 0)
        if e.type == "TABLE":
            out[schema] += 1
    return dict(sorted(out.items()))


def _rows_only(entries: list[Entry], counts: dict[str, int] | None) -> dict[str, int | None]:
    tables = sorted(
        f"{e.schema}.{e.name}"
        for e in entries
        if e.type == "TABLE DATA" and is_platform_schema(e.schema)
    )
    return {t: (counts or {}).get(t) for t in tables}


def _blockers(
    facts: TargetFacts,
    index: ScriptIndex,
    mine: Target,
    backup_roles: list[str],
    target: DbTarget,
    plan: PlatformPlan,
) -> list[str]:
    out = []
    owners = {i.entry.owner for i in index.entries if i.entry.owner}
    missing = sorted((set(backup_roles) | owners) - facts.roles)
    if missing:
        out.append(
            f"roles the backup has are missing on the target: {', '.join(missing)} (a restore "
            "as a non-superuser creates no role: create them first, or restore as a superuser)"
        )
    foreign = sorted(
        {
            i.entry.owner
            for i in index.entries
            if i.entry.owner
            and i.entry.owner in facts.roles
            and i.entry.owner not in facts.acting_as
            and i.entry.type not in ROWS  # rows need privileges (checked below), not ownership
            and decide(i.entry, mine) == PASS
        }
    )
    if foreign:
        out.append(
            f"{facts.user} cannot act as {', '.join(foreign)}, who own(s) objects to restore"
        )
    cannot_drop = [
        s for s in plan.replaced if s != "public" and facts.schemas[s] not in facts.acting_as
    ]
    if cannot_drop:
        out.append(f"{facts.user} cannot drop schema(s) {', '.join(cannot_drop)} (not its own)")
    if facts.foreign_in_public:
        out.append(f"{facts.user} cannot drop {', '.join(facts.foreign_in_public)} in public")
    if not facts.can_set_replication_role:
        out.append(
            f"{facts.user} may not set session_replication_role, which keeps triggers from "
            "firing while rows load (GRANT SET ON PARAMETER session_replication_role TO "
            f"{facts.user}, as Supabase does)"
        )
    large = sorted({i.entry.type for i in index.entries if i.entry.type in LARGE_OBJECTS})
    if large:
        out.append("the backup has large objects, which only a superuser's restore restores")
    sequences = [
        _qualified(f"{i.entry.schema}.{i.entry.name}")
        for i in index.entries
        if i.entry.type == "SEQUENCE SET" and is_platform_schema(i.entry.schema)
    ]
    tables = [_qualified(t) for t in plan.rows_only]
    out.extend(privilege_problems(target, tables, sequences))
    return out


def _describe(entry: Entry) -> str:
    where = f"{entry.schema}." if entry.schema else ""
    return f"{entry.type} {where}{entry.name}"


def _compare(plan: PlatformPlan, index: ScriptIndex, theirs: ScriptIndex, mine: Target) -> None:
    """The entries the restore leaves to the target, compared with the target's own."""
    have = theirs.by_key()
    backup_platform_keys = set()
    for item in index.entries:
        verdict = decide(item.entry, mine)
        if verdict == PASS:
            continue
        backup_platform_keys.add(item.entry.key)
        sql = have.get(item.entry.key)
        if sql is None and verdict == ADD:
            plan.additions.append(_describe(item.entry))
        elif sql is None:
            plan.differences.append(f"not on the target, not restored: {_describe(item.entry)}")
        elif sql != item.sql:
            plan.differences.append(f"differs on the target, kept: {_describe(item.entry)}")
    for item in theirs.entries:
        if (
            is_platform_schema(schema_named(item.entry))
            and item.entry.key not in (backup_platform_keys)
            and item.entry.type not in ("TABLE DATA", "SEQUENCE SET")
        ):
            plan.differences.append(f"only on the target: {_describe(item.entry)}")


def _versions(plan: PlatformPlan, facts: TargetFacts, metadata: dict[str, Any]) -> None:
    for ext in metadata.get("extensions") or []:
        have = facts.extensions.get(ext["name"])
        if have is None:
            plan.differences.append(f"extension {ext['name']} {ext['version']}: created")
        elif have["version"] != ext["version"]:
            plan.differences.append(
                f"extension {ext['name']}: {have['version']} on the target, "
                f"{ext['version']} in the backup"
            )
    props = metadata.get("database_properties") or {}
    changed = [k for k in PROPERTIES if k in props and props[k] != facts.database_properties[k]]
    if changed:
        plan.differences.append(
            f"database {', '.join(changed)} left as the target has them (the platform's)"
        )

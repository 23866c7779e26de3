"""What the backups still held are worth: retention's plan for them, their last verification
and drill, and the audit lines of the period (who restored, deleted, pinned; what failed)."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from catalog.read import Query
from catalog.recorded import Recorded
from catalog.reporting import artifact_refs, blob_sizes, failed_verifications
from catalog.retention import BackupView, Policy, evaluate
from usecases.audit import AuditLine, describe
from usecases.report.model import Mark
from usecases.report.sizes import bytes_freed

RULE = re.compile(r'"rule":"([^"\\]*)"')
AUDIT_LIMIT = 200  # lines on the page; `dumpledger audit` lists them all


@dataclass(frozen=True, slots=True, kw_only=True)
class Kept:
    marks: dict[str, Mark]  # the held backups, with the removals marked
    retained: list[Mark]  # newest first
    removals: list[tuple[str, str, str]]  # name, rule, detail
    freed_bytes: int


def retained(
    marks: Sequence[Mark],
    policy: Policy,
    now: datetime,
    query: Query,
    freed_of: Callable[[Collection[str]], int] | None = None,
) -> Kept:
    """Retention's plan over the backups that hold data, as `cleanup --dry-run` makes it;
    `freed_of(names)` sizes what removing them frees (the store's own plan), else the
    catalog's sizes of the blobs only they reference."""
    held = [m for m in marks if m.status in ("running", "completed")]
    views = [
        BackupView(
            name=m.name,
            backup_class=m.backup_class,
            status=m.status,
            started_at=m.started_at,
            verified=m.verified and m.last_verify_ok is not False,
            pinned=m.pinned,
            pin_reason=m.pin_reason,
        )
        for m in held
    ]
    removals = [(d.name, d.rule, d.detail) for d in evaluate(policy, views, now) if not d.keep]
    going = {name: rule for name, rule, _ in removals}
    changed = {
        m.name: dataclasses.replace(m, planned=going[m.name]) if m.name in going else m
        for m in held
    }
    if not going:
        freed = 0
    elif freed_of is not None:
        freed = freed_of(set(going))
    else:
        freed = bytes_freed(going, artifact_refs(query), blob_sizes(query))
    newest_first = sorted(changed.values(), key=lambda m: (m.started_at, m.name), reverse=True)
    return Kept(marks=changed, retained=newest_first, removals=removals, freed_bytes=freed)


def audit_lines(rows: list[Mapping[str, Any]], query: Query, since: str) -> dict[str, Any]:
    """The period's restores, deletions, pins and failures (failed verifications and drills
    included), newest first, as `dumpledger audit` describes them; at most AUDIT_LIMIT lines,
    the deletions of one cleanup run as one. Only the lines shown are described."""
    every = list(rows)
    for row in failed_verifications(query, since):
        if json.loads(row["payload"]).get("ok") is False:
            every.append(row)
    every.sort(key=lambda r: int(r["seq"]), reverse=True)
    runs = grouped(every)
    lines = [_collapsed(run) for run in runs[:AUDIT_LIMIT]]
    return {"audit": lines, "audit_more": max(0, len(runs) - AUDIT_LIMIT)}


def grouped(rows: Sequence[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
    """Newest first, each run of deletions one cleanup made (same rule, same actor, nothing
    else between them) as one group: a retention pass that removes 90 backups must not bury
    a restore."""
    runs: list[list[Mapping[str, Any]]] = []
    last: tuple[str, str] | None = None  # (actor, rule) of the run being grouped
    for row in rows:
        rule = _rule(row)
        key = (row["actor"], rule) if rule is not None else None
        if key is not None and key == last:
            runs[-1].append(row)
        else:
            runs.append([row])
        last = key
    return runs


def _rule(row: Mapping[str, Any]) -> str | None:
    """The retention rule that deleted the backup; None for anything else (a person too, and a
    v1 deletion, which has no rule). Read from the stored canonical JSON (sorted keys, no
    whitespace, quotes inside strings escaped), not parsed: a cleanup deletes thousands."""
    if row["type"] != "BackupDeleted":
        return None
    found = RULE.search(row["payload"])
    return None if found is None or found.group(1) == "person" else found.group(1)


def _collapsed(run: list[Mapping[str, Any]]) -> AuditLine:
    head = recorded_row(run[0])
    line = _line(head)
    if len(run) == 1:
        return line
    return dataclasses.replace(
        line,
        backup=f"{len(run)} backups: {run[-1]['subject']} ... {head.subject}",
        detail=f"{head.payload.get('rule')}: {line.detail}",
    )


def _line(rec: Recorded) -> AuditLine:
    line = describe(rec)
    if rec.type in ("BackupPinned", "BackupUnpinned"):
        pinned = rec.type == "BackupPinned"
        return dataclasses.replace(
            line,
            action="pin" if pinned else "unpin",
            outcome="pinned" if pinned else "unpinned",
            detail=str(rec.payload.get("reason") or ""),
        )
    return line


def recorded_row(row: Mapping[str, Any]) -> Recorded:
    return Recorded(
        seq=int(row["seq"]),
        id="",
        type=row["type"],
        occurred_at=row["occurred_at"],
        actor=row["actor"],
        subject=row["subject"],
        payload=json.loads(row["payload"]),
        prev_hash="",
        hash="",
    )

"""What the report shows, as data: the page renders it, `report --json` prints it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from catalog.canonical import utc_iso
from usecases.audit import AuditLine
from usecases.report.sizes import StorePoint
from usecases.report.timeline import Breach, ScheduleSpan, SlotOutcome

# How a backup is coloured, in legend order.
OUTCOMES = (
    "verified",
    "not verified",
    "verify failed",
    "pinned",
    "failed",
    "deleted",
    "running",
)


@dataclass(slots=True, kw_only=True)
class Mark:
    """One backup: a mark on the timeline, a row of the tables. Not frozen only because a
    frozen dataclass of this size takes twice as long to make (10,000 of them); nothing
    changes one once it is made."""

    name: str
    backup_type: str
    backup_class: str  # auto, manual, emergency, pre
    status: str  # running, completed, failed, deleted
    outcome: str  # one of OUTCOMES
    started_at: datetime
    completed_at: datetime | None
    raw_size: int
    stored_size: int
    new_bytes: int  # stored bytes this backup wrote that the store did not hold yet
    last_verified_at: datetime | None
    last_verify_ok: bool | None
    last_drill_at: datetime | None
    last_drill_ok: bool | None
    last_drill_seconds: float | None
    verified: bool  # read back when it completed (imports: as the old metadata said)
    pinned: bool
    pin_reason: str | None
    reason: str | None  # why it failed, or why it was deleted (and the rule)
    planned: str | None = None  # the next cleanup removes it: the rule that lets it go

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "backup_type": self.backup_type,
            "class": self.backup_class,
            "status": self.status,
            "outcome": self.outcome,
            "started_at": utc_iso(self.started_at),
            "completed_at": _iso(self.completed_at),
            "raw_size": self.raw_size,
            "stored_size": self.stored_size,
            "new_bytes": self.new_bytes,
            "last_verified_at": _iso(self.last_verified_at),
            "last_verify_ok": self.last_verify_ok,
            "last_drill_at": _iso(self.last_drill_at),
            "last_drill_ok": self.last_drill_ok,
            "last_drill_seconds": self.last_drill_seconds,
            "verified": self.verified,
            "pinned": self.pinned,
            "pin_reason": self.pin_reason,
            "reason": self.reason,
            "planned_removal": self.planned,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Drill:
    at: datetime
    backup: str
    ok: bool
    restore_seconds: float
    total_seconds: float
    reason: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "at": utc_iso(self.at),
            "backup": self.backup,
            "ok": self.ok,
            "restore_seconds": self.restore_seconds,
            "total_seconds": self.total_seconds,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """`dumpledger check`'s result, as it would print it."""

    status: str  # OK, WARNING, CRITICAL
    summary: str
    checks: tuple[tuple[str, str, str], ...]  # name, status, message

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "summary": self.summary,
            "checks": [{"name": n, "status": s, "message": m} for n, s, m in self.checks],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Newest:
    """The newest completed backup: what it is of, where it ran, which code it goes with."""

    name: str
    finished_at: datetime | None
    database: str  # name@host:port
    hostname: str | None
    git_commit: str | None
    git_branch: str | None
    server_version: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "finished_at": _iso(self.finished_at),
            "database": self.database,
            "hostname": self.hostname,
            "git_commit": self.git_commit,
            "git_branch": self.git_branch,
            "server_version": self.server_version,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    since: datetime
    now: datetime
    catalog: str  # where it was read from (no password)
    catalog_note: str | None  # "read as an immutable copy", "no catalog": how it was read
    verdict: Verdict | None  # None: not checked (--no-check)
    newest: Newest | None
    marks: list[Mark]  # the backups of the period, oldest first
    spans: list[ScheduleSpan]
    slots: list[SlotOutcome]
    breaches: list[Breach]
    rpo_hours: float
    store: list[StorePoint]
    planned_bytes: int  # what the next cleanup would free
    planned: list[tuple[str, str, str]]  # name, rule, detail: what the next cleanup removes
    drills: list[Drill]
    rto_seconds: float
    retained: list[Mark]  # every backup that still holds data, newest first
    audit: list[AuditLine]
    audit_more: int  # lines of the period left out of `audit`
    events: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.events == 0

    def slot_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(("ok", "late", "failed", "running", "missed"), 0)
        for s in self.slots:
            counts[s.outcome] = counts.get(s.outcome, 0) + 1
        return counts

    def to_json(self) -> dict[str, Any]:
        return {
            "since": utc_iso(self.since),
            "now": utc_iso(self.now),
            "catalog": self.catalog,
            "catalog_note": self.catalog_note,
            "events": self.events,
            "check": self.verdict.to_json() if self.verdict else None,
            "newest": self.newest.to_json() if self.newest else None,
            "backups": [m.to_json() for m in self.marks],
            "schedule": [_span_json(s) for s in self.spans],
            "slots": [_slot_json(s) for s in self.slots],
            "slot_counts": self.slot_counts(),
            "rpo_hours": self.rpo_hours,
            "rpo_breaches": [_breach_json(b) for b in self.breaches],
            "store": [
                {"at": utc_iso(p.at), "total": p.total, "change": p.change, "why": p.why}
                for p in self.store
            ],
            "planned_removals": [{"name": n, "rule": r, "detail": d} for n, r, d in self.planned],
            "planned_bytes": self.planned_bytes,
            "drills": [d.to_json() for d in self.drills],
            "rto_seconds": self.rto_seconds,
            "retained": [m.to_json() for m in self.retained],
            "audit": [{k: v for k, v in a.to_json().items() if k != "payload"} for a in self.audit],
            "audit_more": self.audit_more,
            "notes": self.notes,
        }


def _iso(moment: datetime | None) -> str | None:
    return utc_iso(moment) if moment else None


def _span_json(s: ScheduleSpan) -> dict[str, Any]:
    return {
        "slots": [{"backup_type": x.backup_type, "time": x.time} for x in s.slots],
        "start": utc_iso(s.start),
        "end": _iso(s.end),
        "source": s.source,
    }


def _slot_json(s: SlotOutcome) -> dict[str, Any]:
    return {
        "backup_type": s.backup_type,
        "due": utc_iso(s.due),
        "outcome": s.outcome,
        "backup": s.backup,
    }


def _breach_json(b: Breach) -> dict[str, Any]:
    return {
        "start": utc_iso(b.start),
        "end": utc_iso(b.end),
        "hours": round(b.hours, 2),
        "ongoing": b.ongoing,
        "last_good": b.last_good,
    }

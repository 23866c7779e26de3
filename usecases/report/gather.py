"""Build the report: read the catalog (read-only), fold what it says, ask `check`.

Nothing here writes: no event, no migration, no file. The events are read in three passes,
each in log order: the completions (their artifacts: the store's history), the collections,
drills and schedule changes, and the period's events of the audit's kinds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from functools import partial
from typing import Any

from catalog.canonical import utc_iso
from catalog.read import Query
from catalog.reporting import (
    backups,
    completions,
    event_count,
    events,
    first_automatic,
    newest_backup,
)
from usecases.backup.names import classify
from usecases.config.sections import Slot
from usecases.config.settings import Settings
from usecases.report import recoverability
from usecases.report.model import Drill, Mark, Newest, Report, Verdict
from usecases.report.sizes import StoreLedger, freed_by_cleanup, newly_stored
from usecases.report.source import Source, open_source
from usecases.report.timeline import Breach, Run, ScheduleSpan, rpo_breaches, slot_outcomes
from usecases.schedule.jobs import project_id

Clock = Callable[[], datetime]
AUDIT_TYPES = (
    "BackupFailed",
    "BackupDeleted",
    "BackupPinned",
    "BackupUnpinned",
    "RestoreStarted",
    "RestoreCompleted",
    "RestoreFailed",
)
FOLDED_TYPES = ("BlobCollected", "RestoreTested", "ScheduleInstalled", "ScheduleRemoved")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportRequest:
    since: datetime  # aware
    check: bool = True  # run `check` for the header's verdict
    tz: tzinfo | None = None  # the schedule's wall clock (None: this machine's zone)


@dataclass(kw_only=True)
class Folded:
    """What one pass over the events gives."""

    completed: dict[str, datetime] = field(default_factory=dict)
    new_bytes: dict[str, int] = field(default_factory=dict)
    ledger: StoreLedger = field(default_factory=StoreLedger)
    drills: list[Drill] = field(default_factory=list)
    schedule: list[tuple[datetime, dict[str, Any] | None]] = field(default_factory=list)
    audit: list[Mapping[str, Any]] = field(default_factory=list)  # the period's event rows
    failed_drills: list[Mapping[str, Any]] = field(default_factory=list)

    # The store's changes, (seq, time, backup or None for a collection, what), folded into
    # the ledger in log order once both streams are read.
    changes: list[tuple[int, datetime, str | None, Any]] = field(default_factory=list)

    def completion(self, row: Mapping[str, Any]) -> None:
        name, arts = row["subject"], json.loads(row["artifacts"] or "[]")
        when = _utc(row["occurred_at"])
        if row["type"] == "BackupImported":  # its original time, not the import's
            when = _utc(row["finished_at"] or row["started_at"])
        self.completed[name] = when
        self.new_bytes[name] = newly_stored(arts)
        self.changes.append((int(row["seq"]), when, name, arts))

    def audit_rows(self, since: str) -> list[Mapping[str, Any]]:
        """The period's audit rows (read since then) and its failed drills."""
        return [*self.audit, *(r for r in self.failed_drills if r["occurred_at"] >= since)]

    def settle(self) -> None:
        for _, when, name, what in sorted(self.changes, key=lambda c: c[0]):
            if name is None:
                self.ledger.collected(when, *what)
            else:
                self.ledger.added(when, name, what)
        self.changes = []


def build_report(settings: Settings, req: ReportRequest, *, clock: Clock) -> Report:
    now = clock()
    source = open_source(settings)
    try:
        verdict = run_check(settings, source, now) if req.check else None
        if source is None:
            return empty_report(settings, req, now, verdict)
        return _from_catalog(settings, req, now, source, verdict)
    finally:
        if source is not None:
            source.close()


def _from_catalog(
    settings: Settings, req: ReportRequest, now: datetime, source: Source, verdict: Verdict | None
) -> Report:
    query = source.query
    since_iso = utc_iso(req.since)
    folded = fold(
        completions(query, source.dialect),
        events(query, FOLDED_TYPES),
        events(query, AUDIT_TYPES, since_iso),
        project_id(settings.backup_dir),
    )
    # Backups of the period, of the day before (their runs may serve its first slots), and
    # every one that still holds data (retention judges them all): not the deleted past.
    marks = [_mark(r, folded) for r in backups(query, utc_iso(req.since - timedelta(days=1)))]
    autos = [m for m in marks if m.backup_class == "auto"]
    spans = schedule_spans(folded.schedule, settings.schedule, _time(first_automatic(query)))
    freed_of = partial(freed_by_cleanup, settings, query) if settings.store_dir.is_dir() else None
    kept = recoverability.retained(marks, settings.retention, now, query, freed_of)
    return Report(
        since=req.since,
        now=now,
        catalog=source.where,
        catalog_note=source.note,
        verdict=verdict,
        newest=newest(query),
        marks=[kept.marks.get(m.name, m) for m in marks if m.started_at >= req.since],
        spans=spans,
        slots=slot_outcomes(spans, [_run(m) for m in autos], since=req.since, now=now, tz=req.tz),
        breaches=_breaches(folded, settings.health.rpo_hours, req.since, now),
        rpo_hours=settings.health.rpo_hours,
        store=folded.ledger.series(req.since),
        planned_bytes=kept.freed_bytes,
        planned=kept.removals,
        drills=[d for d in folded.drills if d.at >= req.since],
        rto_seconds=settings.health.rto_minutes * 60,
        retained=kept.retained,
        **recoverability.audit_lines(folded.audit_rows(since_iso), query, since_iso),
        events=event_count(query),
    )


def _breaches(folded: Folded, rpo_hours: float, since: datetime, now: datetime) -> list[Breach]:
    autos = [(at, name) for name, at in folded.completed.items() if classify(name) == "auto"]
    return rpo_breaches(autos, timedelta(hours=rpo_hours), since=since, now=now)


def fold(
    done: Iterable[Mapping[str, Any]],
    others: Iterable[Mapping[str, Any]],
    audit: Iterable[Mapping[str, Any]],
    project: str,
) -> Folded:
    """The completions, the other events, and the period's audit rows, each in log order."""
    out = Folded()
    for row in done:
        out.completion(row)
    for row in others:
        _other(out, row, json.loads(row["payload"]), project)
    out.audit = list(audit)
    out.settle()
    return out


def _other(out: Folded, row: Mapping[str, Any], p: dict[str, Any], project: str) -> None:
    kind, when = row["type"], _utc(row["occurred_at"])
    if kind == "BlobCollected":
        out.changes.append(
            (int(row["seq"]), when, None, (str(p.get("digest")), str(p.get("codec"))))
        )
    elif kind == "RestoreTested":
        out.drills.append(_drill(when, p))
        if not p.get("ok"):  # a failed drill is a failure to audit (in the period: the caller)
            out.failed_drills.append(row)
    elif p.get("project") in (None, project):  # this backup directory's schedule
        out.schedule.append((when, p if kind == "ScheduleInstalled" else None))


def _utc(text: str) -> datetime:
    """The catalog's UTC ISO times (a trailing Z), parsed the fast way."""
    return datetime.fromisoformat(text)


def _drill(at: datetime, p: dict[str, Any]) -> Drill:
    return Drill(
        at=at,
        backup=str(p.get("backup")),
        ok=bool(p.get("ok")),
        restore_seconds=float(p.get("restore_seconds") or 0.0),
        total_seconds=float(p.get("total_seconds") or 0.0),
        reason=p.get("reason"),
    )


def _time(text: str | None) -> datetime | None:
    return _utc(text) if text else None


def _mark(r: Mapping[str, Any], folded: Folded) -> Mark:
    completed = folded.completed.get(r["name"])
    verify_ok = None if r["last_verify_ok"] is None else bool(r["last_verify_ok"])
    return Mark(
        name=r["name"],
        backup_type=r["backup_type"],
        backup_class=classify(r["name"]),
        status=r["status"],
        outcome=outcome(r["status"], bool(r["pinned"]), bool(r["verified"]), verify_ok),
        started_at=_utc(r["started_at"]),
        completed_at=completed,
        raw_size=int(r["raw_size"] or 0),
        stored_size=int(r["stored_size"] or 0),
        new_bytes=folded.new_bytes.get(r["name"], 0),
        last_verified_at=_time(r["last_verified_at"]),
        last_verify_ok=verify_ok,
        last_drill_at=_time(r["last_drill_at"]),
        last_drill_ok=None if r["last_drill_ok"] is None else bool(r["last_drill_ok"]),
        last_drill_seconds=r["last_drill_seconds"],
        verified=bool(r["verified"]),
        pinned=bool(r["pinned"]),
        pin_reason=r["pin_reason"],
        reason=_reason(r),
    )


def outcome(status: str, pinned: bool, verified: bool, verify_ok: bool | None) -> str:
    if status in ("failed", "running", "deleted"):
        return status
    if pinned:
        return "pinned"
    if verify_ok is False:
        return "verify failed"
    return "verified" if verified or verify_ok else "not verified"


def _reason(r: Mapping[str, Any]) -> str | None:
    if r["status"] == "deleted":
        return f"{r['deleted_rule'] or 'person'}: {r['failure_reason'] or ''}".rstrip(": ")
    return r["failure_reason"] if r["status"] == "failed" else None


def _run(m: Mark) -> Run:
    if m.completed_at is not None:
        done = "completed"
    else:
        done = "running" if m.status == "running" else "failed"
    return Run(name=m.name, backup_type=m.backup_type, started_at=m.started_at, outcome=done)


def schedule_spans(
    changes: list[tuple[datetime, dict[str, Any] | None]],
    configured: tuple[Slot, ...],
    first_auto: datetime | None,
) -> list[ScheduleSpan]:
    """When which slots were due: the installs the catalog records for this backup directory
    (each until the next install or removal); with none recorded, the configured schedule
    from the first automatic backup on."""
    spans: list[ScheduleSpan] = []
    for i, (at, installed) in enumerate(changes):
        if installed is None:
            continue
        end = changes[i + 1][0] if i + 1 < len(changes) else None
        slots = tuple(
            Slot(backup_type=str(s["backup_type"]), time=str(s["time"]))
            for s in installed.get("slots") or []
        )
        source = f"installed {utc_iso(at)[:10]} ({installed.get('backend')})"
        spans.append(ScheduleSpan(slots=slots, start=at, end=end, source=source))
    if not changes and first_auto is not None and configured:
        spans.append(
            ScheduleSpan(
                slots=configured,
                start=first_auto,
                end=None,
                source="backup-config.json (no `schedule install` recorded), "
                "from the first automatic backup",
            )
        )
    return spans


def newest(query: Query) -> Newest | None:
    row = newest_backup(query)
    if row is None:
        return None
    meta = json.loads(row["metadata"] or "{}")
    db = meta.get("database") or {}
    git = meta.get("git") or {}
    return Newest(
        name=row["name"],
        finished_at=_time(row["finished_at"]),
        database=_where(
            db.get("name") or row["database_name"],
            db.get("host") or row["database_host"],
            db.get("port"),
        ),
        hostname=row["hostname"],
        git_commit=git.get("commit") or row["git_commit"],
        git_branch=git.get("branch") or row["git_branch"],
        server_version=(meta.get("versions") or {}).get("server"),
    )


def _where(name: str | None, host: str | None, port: object) -> str:
    return f"{name or '?'}@{host or '?'}" + (f":{port}" if port else "")


def run_check(settings: Settings, source: Source | None, now: datetime) -> Verdict:
    """`dumpledger check`'s verdict without its notification: the same facts, the same
    evaluation, over the read-only catalog."""
    from usecases.health.check import evaluate, overall, summary_line
    from usecases.health.facts import gather

    if source is None:
        app, error = None, f"no catalog at {settings.effective_catalog_url()}: no backup yet"
    else:
        app, error = source.app(settings, lambda: now), None
    checks = evaluate(gather(settings, app, error), settings.health, now)
    return Verdict(
        status=overall(checks).name,
        summary=summary_line(checks),
        checks=tuple((c.name, c.status.name, c.message) for c in checks),
    )


def empty_report(
    settings: Settings, req: ReportRequest, now: datetime, verdict: Verdict | None
) -> Report:
    return Report(
        since=req.since,
        now=now,
        catalog=settings.effective_catalog_url().removeprefix("sqlite:///"),
        catalog_note="no catalog yet: no backup was ever taken with this backup directory",
        verdict=verdict,
        newest=None,
        marks=[],
        spans=[],
        slots=[],
        breaches=[],
        rpo_hours=settings.health.rpo_hours,
        store=[],
        planned_bytes=0,
        planned=[],
        drills=[],
        rto_seconds=settings.health.rto_minutes * 60,
        retained=[],
        audit=[],
        audit_more=0,
    )


def default_since(now: datetime, days: float = 60) -> datetime:
    return (now - timedelta(days=days)).astimezone(UTC)

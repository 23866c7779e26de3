"""The four sections of the page: schedule, size and dedup, recoverability, audit.

Each states its numbers in words (`data-n` marks them), shows its chart when the charts extra
is installed, and holds the same facts in tables, which stand alone without it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime

from catalog.canonical import parse_utc
from usecases.report.html import Cell, Times, code, e, n, ok_text, outcome, size, table
from usecases.report.model import Mark, Report

Divs = Mapping[str, str]
ROWS = 500  # of a per-backup table: the day table and `dumpledger list` hold the rest


def _chart(divs: Divs, key: str) -> str:
    return f'<div class="chart" data-chart="{e(key)}">{divs[key]}</div>' if key in divs else ""


def _section(key: str, title: str, body: str) -> str:
    return f'<section id="{e(key)}"><h2>{e(title)}</h2>{body}</section>'


def schedule(report: Report, t: Times, divs: Divs) -> str:
    marks = report.marks
    by_class = Counter(m.backup_class for m in marks)
    counts = report.slot_counts()
    classes = ", ".join(f"{v} {k}" for k, v in sorted(by_class.items())) or "none"
    summary = (
        f'<p class="summary">{n("backups", len(marks))} backups from {e(t(report.since))} to '
        f"{e(t(report.now))} ({e(classes)}). Scheduled slots due: "
        f"{n('slots-due', len(report.slots))}: {n('slots-ok', counts['ok'])} ran, "
        f"{n('slots-late', counts['late'])} late, {n('slots-failed', counts['failed'])} failed, "
        f"{n('slots-missed', counts['missed'])} missed. RPO of {e(f'{report.rpo_hours:g}')} h "
        f"exceeded {n('rpo-breaches', len(report.breaches))} times, "
        f"{n('rpo-breach-hours', f'{sum(b.hours for b in report.breaches):.1f}')} h in all.</p>"
    )
    problems = [s for s in report.slots if s.outcome != "ok"]
    slot_rows = [
        [e(t(s.due)), e(s.backup_type), outcome(s.outcome), e(s.backup or "-")] for s in problems
    ]
    body = [
        summary,
        _spans(report),
        _chart(divs, "schedule"),
        "<h3>Missed, failed and late slots</h3>",
        table(
            ["due", "slot", "outcome", "backup"],
            slot_rows,
            table_id="slot-problems",
            row_attrs=(f'data-outcome="{e(s.outcome)}"' for s in problems),
        )
        if problems
        else "<p>Every slot due in the period ran on time.</p>",
        "<h3>RPO breaches</h3>",
        _breaches(report, t),
        _every_backup(report, t, open_=not divs),
    ]
    return _section("schedule", "Schedule", "".join(body))


def _spans(report: Report) -> str:
    if not report.spans:
        return (
            "<p>No schedule was installed and no automatic backup was taken: nothing was due.</p>"
        )
    items = "".join(
        f"<li>{e(', '.join(f'{s.backup_type} {s.time}' for s in span.slots))}: "
        f"{e(span.source)}</li>"
        for span in report.spans
    )
    return f"<p>Slots (local time of the scheduler):</p><ul>{items}</ul>"


def _breaches(report: Report, t: Times) -> str:
    if not report.breaches:
        return "<p>The newest automatic backup was never older than the RPO.</p>"
    rows = [
        [
            e(t(b.start)),
            e("now (ongoing)" if b.ongoing else t(b.end)),
            f"{b.hours:.1f}",
            e(b.last_good or "-"),
        ]
        for b in report.breaches
    ]
    return table(
        ["from", "until", "hours", "newest good automatic backup then"],
        rows,
        table_id="rpo-breaches",
        numeric=(2,),
    )


def _every_backup(report: Report, t: Times, *, open_: bool) -> str:
    marks = report.marks[::-1][:ROWS]
    rows: list[list[Cell]] = [
        [
            e(m.name),
            e(m.backup_type),
            e(t(m.started_at)),
            outcome(m.outcome),
            size(m.raw_size),
            size(m.new_bytes),
            ok_text(m.last_verify_ok, e(t(m.last_verified_at))),
            _drill_cell(m, t),
            (e(_note(m)), "wrap"),
        ]
        for m in marks
    ]
    headers = ["name", "type", "started", "outcome", "logical", "newly stored", "verified",
               "drill", "note"]  # fmt: skip
    attrs = (f'data-outcome="{e(m.outcome)}" data-name="{e(m.name)}"' for m in marks)
    inner = table(headers, rows, table_id="backups", numeric=(4, 5), row_attrs=attrs)
    opened = " open" if open_ else ""
    what = _newest(len(report.marks), report.since)
    return f"<details{opened}><summary>{what}</summary>{inner}</details>"


def _newest(total: int, since: datetime) -> str:
    if total <= ROWS:
        return f"Every backup of the period ({total}), newest first"
    return (
        f"The newest {ROWS} of the period's {total} backups (all of them: "
        f"dumpledger list --since {since.date().isoformat()})"
    )


def _note(m: Mark) -> str:
    parts = [f"pinned: {m.pin_reason or ''}".rstrip(": ")] if m.pinned else []
    if m.reason:
        parts.append(m.reason)
    if m.planned:
        parts.append(f"the next cleanup removes it ({m.planned})")
    return "; ".join(parts)


def _drill_cell(m: Mark, t: Times) -> str:
    if m.last_drill_ok is None:
        return "never"
    secs = f", {m.last_drill_seconds:.0f} s" if m.last_drill_seconds is not None else ""
    return ok_text(m.last_drill_ok, e(t(m.last_drill_at))) + e(secs)


def sizes(report: Report, t: Times, divs: Divs) -> str:
    store_now = report.store[-1].total if report.store else 0
    held = sum(m.raw_size for m in report.retained)
    ratio = f"{held / store_now:.1f}x" if store_now else "-"
    summary = (
        f'<p class="summary">The store holds {n("store-bytes", size(store_now))}; the '
        f"{len(report.retained)} backups it keeps are {n('held-bytes', size(held))} of dumps "
        f"(stored once each: {n('dedup-ratio', ratio)}). In the period, backups of "
        f"{n('logical-bytes', size(sum(m.raw_size for m in report.marks)))} stored "
        f"{n('new-bytes', size(sum(m.new_bytes for m in report.marks)))} of new bytes. The next "
        f"cleanup removes {n('planned-removals', len(report.planned))} backups and frees "
        f"{n('planned-bytes', size(report.planned_bytes))} ({code('dumpledger cleanup --dry-run')} "
        "tells why each goes).</p>"
    )
    body = [
        summary,
        _chart(divs, "size"),
        _chart(divs, "store"),
        "<h3>By day</h3>",
        _days(report, t),
    ]
    body.append("<h3>Planned removals</h3>")
    body.append(
        table(
            ["backup", "rule", "why"],
            [[e(name), e(rule), (e(detail), "wrap")] for name, rule, detail in report.planned],
            table_id="planned-removals",
        )
        if report.planned
        else "<p>The next cleanup removes nothing.</p>"
    )
    return _section("size", "Size and dedup", "".join(body))


def _days(report: Report, t: Times) -> str:
    per: dict[str, list[int]] = {}  # day -> backups, logical bytes, new bytes
    for m in report.marks:
        day = t(m.started_at)[:10]
        acc = per.get(day)
        if acc is None:
            acc = per[day] = [0, 0, 0]
        acc[0] += 1
        acc[1] += m.raw_size
        acc[2] += m.new_bytes
    store_at = {t(p.at)[:10]: p.total for p in report.store if p.change}
    rows: list[list[Cell]] = []
    last = report.store[0].total if report.store else 0
    for day in sorted(per.keys() | store_at.keys()):
        last = store_at.get(day, last)
        n_, logical, new = per.get(day, (0, 0, 0))
        rows.append([day, str(n_), size(logical), size(new), size(last)])
    if not rows:
        return "<p>No backup in the period.</p>"
    rows.reverse()
    headers = ["day", "backups", "logical", "newly stored", "store at the end of the day"]
    return table(headers, rows, table_id="days", numeric=(1, 2, 3, 4))


def recoverability(report: Report, t: Times, divs: Divs) -> str:
    objective = report.rto_seconds
    drills = report.drills
    over = [d for d in drills if d.restore_seconds > objective]
    slowest = max(drills, key=lambda d: d.restore_seconds, default=None)
    summary = (
        f'<p class="summary">RTO objective {n("rto-minutes", f"{objective / 60:g}")} min '
        f"({code('health.rto_minutes')} in backup-config.json). Restore drills in the period: "
        f"{n('drills', len(drills))}, {n('drills-failed', sum(1 for d in drills if not d.ok))} "
        f"failed, {n('drills-over-rto', len(over))} slower than the objective"
        + (f"; the slowest restore took {e(f'{slowest.restore_seconds:.0f}')} s" if slowest else "")
        + ".</p>"
    )
    rows: list[list[Cell]] = [
        [
            e(t(d.at)),
            e(d.backup),
            outcome("passed" if d.ok else "failed"),
            f"{d.restore_seconds:.1f}",
            f"{d.total_seconds:.1f}",
            ('<span class="bad">over</span>' if d.restore_seconds > objective else "within"),
            (e(d.reason or ""), "wrap"),
        ]
        for d in reversed(drills)
    ]
    body = [
        summary,
        _chart(divs, "recoverability"),
        "<h3>Drills</h3>",
        table(
            ["when", "backup", "outcome", "restore s", "total s", "objective", "reason"],
            rows,
            table_id="drills",
            numeric=(3, 4),
        )
        if drills
        else f"<p>No restore drill in the period: run {code('dumpledger drill --latest')}.</p>",
        "<h3>Retained backups: last verification and drill</h3>",
        _retained(report, t),
    ]
    return _section("recoverability", "Recoverability", "".join(body))


def _retained(report: Report, t: Times) -> str:
    if not report.retained:
        return "<p>No backup holds data.</p>"
    shown = report.retained[:ROWS]
    rows: list[list[Cell]] = [
        [
            e(m.name),
            e(m.backup_type),
            e(t(m.started_at)),
            size(m.raw_size),
            ok_text(m.last_verify_ok, e(t(m.last_verified_at))),
            _drill_cell(m, t),
            (e(_note(m)), "wrap"),
        ]
        for m in shown
    ]
    headers = ["backup", "type", "started", "logical", "last verified", "last drill", "note"]
    attrs = (f'data-name="{e(m.name)}"' for m in shown)
    more = (
        f"<p>The newest {ROWS} of {len(report.retained)}: {code('dumpledger list')} shows "
        "them all.</p>"
        if len(report.retained) > ROWS
        else ""
    )
    return table(headers, rows, table_id="retained", numeric=(3,), row_attrs=attrs) + more


def audit(report: Report, t: Times) -> str:
    lines = report.audit
    more = (
        f" ({n('audit-more', report.audit_more)} older ones: "
        f"{code('dumpledger audit --since ' + report.since.date().isoformat())})"
        if report.audit_more
        else ""
    )
    summary = (
        f'<p class="summary">The latest restores, deletions, pins and failures of the period, '
        f"newest first: {n('audit-lines', len(lines))}{more}.</p>"
    )
    rows: list[list[Cell]] = [
        [
            e(t(parse_utc(a.when), seconds=True)),
            e(a.actor),
            e(a.action),
            (e(a.backup), "wrap"),
            e(a.target),
            _audit_outcome(a.outcome),
            (e(a.detail), "wrap"),
        ]
        for a in lines
    ]
    body = (
        table(
            ["when", "who", "action", "backup", "target", "outcome", "detail"],
            rows,
            table_id="audit-lines",
            row_attrs=(f'data-action="{e(a.action)}"' for a in lines),
        )
        if lines
        else "<p>No restore, deletion, pin or failure in the period.</p>"
    )
    return _section("audit", "Audit", summary + body)


def _audit_outcome(text: str) -> str:
    return f'<span class="bad">{e(text)}</span>' if text == "failed" else e(text)

"""`dumpledger catalog verify`: is the catalog what its history says, and is that history the
one recorded outside the catalog?

Four checks, each naming exactly what disagrees:

1. the hash chain (an edited, deleted, inserted or reordered event);
2. every projection row against the fold of the log (a `backups` row edited by hand);
3. the anchors in `backups/database/<name>_metadata.json`: each records the seq and hash of the
   event that completed its backup, so removing the newest events or recomputing every hash
   is seen as soon as it reaches back to an anchored event;
4. with `--target NAME`: the copy of the log each push wrote to that offsite target (every
   event up to the push), and the push's seq the catalog recorded.

What this cannot see: an edit made after the newest anchor (since the last backup completed,
or the last push when a target is checked), and an attacker who rewrites the catalog, every
metadata file and every offsite copy alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import select

from catalog.export import ExportBroken, read_export
from catalog.recorded import Recorded
from catalog.schema import events
from usecases.backup.views import METADATA_SUFFIX
from usecases.context import App


@dataclass(slots=True, kw_only=True)
class TargetCheck:
    target: str
    location: str
    seq: int = 0  # the last event of the copy on the target
    problems: list[str] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class CatalogVerifyReport:
    events: int
    chain: list[str] = field(default_factory=list)
    projections: list[str] = field(default_factory=list)
    anchors_checked: int = 0
    anchors_absent: int = 0  # metadata files written before anchors existed
    anchors: list[str] = field(default_factory=list)
    targets: list[TargetCheck] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        remote = [p for t in self.targets for p in t.problems]
        return [*self.chain, *self.projections, *self.anchors, *remote]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "problems": self.problems,
            "chain": self.chain,
            "projections": self.projections,
            "anchors": {
                "checked": self.anchors_checked,
                "without_anchor": self.anchors_absent,
                "problems": self.anchors,
            },
            "targets": [
                {"target": t.target, "location": t.location, "seq": t.seq, "problems": t.problems}
                for t in self.targets
            ],
        }


class Head(NamedTuple):
    """What an anchor is compared with: an event's seq, type, subject and hash."""

    seq: int
    type: str
    subject: str
    hash: str


def verify_catalog(app: App, targets: list[str] | None = None) -> CatalogVerifyReport:
    chain = app.catalog.verify_chain()
    records = _heads(app)
    report = CatalogVerifyReport(events=chain.events, chain=list(chain.problems))
    report.projections = app.catalog.projection_differences()
    check_anchors(app.settings.database_dir, records, report)
    for spec in targets or []:
        report.targets.append(check_target(app, spec, records))
    return report


def _heads(app: App) -> dict[int, Head]:
    query = select(events.c.seq, events.c.type, events.c.subject, events.c.hash)
    with app.catalog.engine.connect() as conn:
        rows = conn.execute(query).all()
    return {int(r.seq): Head(int(r.seq), r.type, r.subject, r.hash) for r in rows}


# -- anchors in the metadata files ------------------------------------------------------------


def check_anchors(
    database_dir: Path, records: dict[int, Head], report: CatalogVerifyReport
) -> None:
    """Each metadata file's anchor must be an event of the log, with the same hash, completing
    the same backup."""
    last = max(records, default=0)
    files = sorted(database_dir.glob(f"*{METADATA_SUFFIX}")) if database_dir.is_dir() else []
    for path in files:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            anchor = doc.get("catalog_anchor") if isinstance(doc, dict) else None
        except (OSError, ValueError) as exc:
            report.anchors.append(f"{path}: cannot be read ({exc}); it anchors nothing")
            continue
        if not isinstance(anchor, dict):
            report.anchors_absent += 1
            continue
        report.anchors_checked += 1
        problem = anchor_problem(path.name, doc.get("backup_name"), anchor, records, last)
        if problem:
            report.anchors.append(problem)


def anchor_problem(
    where: str, backup: object, anchor: dict[str, Any], records: dict[int, Head], last: int
) -> str | None:
    seq, want = anchor.get("seq"), str(anchor.get("hash"))
    if not isinstance(seq, int):
        return f"{where}: its catalog_anchor has no seq"
    rec = records.get(seq)
    if rec is None:
        return (
            f"{where} anchors event seq {seq} ({anchor.get('event')} {backup}), but the log "
            f"{'ends at seq ' + str(last) if seq > last else 'has no such event'}: events "
            "were removed from the catalog"
        )
    if rec.hash != want:
        return (
            f"{where} anchors event seq {seq} with hash {want[:16]}, but the log's seq {seq} "
            f"({rec.type} {rec.subject}) has hash {rec.hash[:16]}: the log was rewritten at or "
            f"before seq {seq}"
        )
    if (rec.type, rec.subject) != (anchor.get("event"), backup):
        return (
            f"{where} anchors event seq {seq} as {anchor.get('event')} {backup}, but the log's "
            f"seq {seq} is {rec.type} {rec.subject}"
        )
    return None


# -- the copies of the log on offsite targets ------------------------------------------------


def check_target(app: App, spec: str, records: dict[int, Head]) -> TargetCheck:
    """The target's copy of the log must be a prefix of ours, event for event, reaching at
    least as far as the catalog says the last push did."""
    from store.offsite import EXPORT_KEY
    from usecases.offsite.push import resolve_target

    resolved = resolve_target(app.settings, spec)
    check = TargetCheck(target=resolved.name, location=resolved.target.location)
    data = resolved.target.read(EXPORT_KEY)
    if data is None:
        check.problems.append(
            f"{resolved.name}: holds no copy of the log ({EXPORT_KEY}); `dumpledger push` "
            "writes one"
        )
        return check
    source = f"{resolved.target.location}/{EXPORT_KEY}"
    try:
        theirs = list(read_export(data.decode("utf-8", "replace").splitlines(), source=source))
    except ExportBroken as exc:
        check.problems.append(f"{resolved.name}: its copy of the log is broken: {exc}")
        return check
    check.seq = theirs[-1].seq if theirs else 0
    check.problems.extend(_compare_copy(resolved.name, theirs, records))
    pushed = _last_pushed_seq(app, resolved.name)
    if pushed > check.seq:
        check.problems.append(
            f"{resolved.name}: its copy of the log ends at seq {check.seq}, but the catalog "
            f"recorded a push up to seq {pushed}: the copy on the target was cut short"
        )
    return check


def _compare_copy(name: str, theirs: list[Recorded], ours: dict[int, Head]) -> list[str]:
    last = max(ours, default=0)
    for rec in theirs:
        mine = ours.get(rec.seq)
        if mine is None:
            return [
                f"{name}: its copy of the log holds events up to seq {theirs[-1].seq}, the "
                f"catalog only up to seq {last}: events {last + 1}..{theirs[-1].seq} were "
                "removed from the catalog"
            ]
        if mine.hash != rec.hash:
            return [
                f"{name}: event seq {rec.seq} differs from the copy pushed there ({rec.type} "
                f"{rec.subject}, hash {rec.hash[:16]}; here {mine.type} {mine.subject}, hash "
                f"{mine.hash[:16]}): the catalog was rewritten at or before seq {rec.seq}"
            ]
    return []


def _last_pushed_seq(app: App, target: str) -> int:
    pushes = app.catalog.events(subject=f"offsite:{target}", types=["OffsitePushed"])
    return max((int(p.payload.get("log_seq") or 0) for p in pushes), default=0)

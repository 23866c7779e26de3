"""The schedule over a period: which slots ran, ran late, failed or were missed, and when the
newest good automatic backup was older than the RPO. Pure: times in, outcomes out; `now` and
the time zone are passed in.

A slot is due every day at its wall-clock time (local time of the machine that runs the
scheduler). The first backup of the slot's type that starts from `EARLY` before the due time
until `EARLY` before the next day's is that day's run; none in that window is a miss, once
`GRACE` has passed without one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import NamedTuple

from usecases.config.sections import Slot

EARLY = timedelta(minutes=5)  # a timer may fire a little early (clock skew, RandomizedDelay)
LATE = timedelta(hours=1)  # a run that starts later than this after its due time is late
GRACE = timedelta(hours=1)  # until then a slot without a run is pending, not missed
DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleSpan:
    """The slots that were to run from `start` until `end` (None: still)."""

    slots: tuple[Slot, ...]
    start: datetime
    end: datetime | None
    source: str


class Run(NamedTuple):
    """An automatic backup as the schedule sees it (tuples: 10,000 are made per report)."""

    name: str
    backup_type: str
    started_at: datetime
    outcome: str  # completed, failed, running


class SlotOutcome(NamedTuple):
    backup_type: str
    due: datetime  # UTC
    outcome: str  # ok, late, failed, running, missed
    backup: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Breach:
    """From `start` to `end` the newest completed automatic backup was older than the RPO."""

    start: datetime
    end: datetime
    ongoing: bool  # still so at the time of the report
    last_good: str | None  # the backup whose age ran past the RPO

    @property
    def hours(self) -> float:
        return (self.end - self.start).total_seconds() / 3600


def due_times(slot: Slot, start: datetime, end: datetime, tz: tzinfo | None) -> Iterator[datetime]:
    """The slot's due times in [start, end), UTC; the wall clock of `tz` (None: this
    machine's zone with its daylight-saving rules)."""
    day: date = start.astimezone(tz).date() - DAY
    last = end.astimezone(tz).date()
    while day <= last:
        wall = datetime.combine(day, time(slot.hour, slot.minute))
        due = (wall.replace(tzinfo=tz) if tz else wall).astimezone(UTC)
        if start <= due < end:
            yield due
        day += DAY


def slot_outcomes(
    spans: Sequence[ScheduleSpan],
    runs: Sequence[Run],
    *,
    since: datetime,
    now: datetime,
    tz: tzinfo | None = None,
) -> list[SlotOutcome]:
    """Every due slot of the period with what became of it, in time order."""
    by_type: dict[str, list[Run]] = {}
    for run in sorted(runs, key=lambda r: r.started_at):
        by_type.setdefault(run.backup_type, []).append(run)
    out: list[SlotOutcome] = []
    for span in spans:
        start, end = max(since, span.start), min(now, span.end or now)
        for slot in span.slots:
            dues = list(due_times(slot, start, end, tz))
            out += _match(slot.backup_type, dues, by_type.get(slot.backup_type, []), now)
    return sorted(out, key=lambda o: (o.due, o.backup_type))


def _match(kind: str, dues: list[datetime], runs: list[Run], now: datetime) -> list[SlotOutcome]:
    """Walk the due times and the runs of one type together (both in time order)."""
    out, i = [], 0
    for due in dues:
        opens, closes = due - EARLY, due + DAY - EARLY
        while i < len(runs) and runs[i].started_at < opens:
            i += 1
        if i < len(runs) and runs[i].started_at < closes:
            run = runs[i]
            i += 1
            out.append(
                SlotOutcome(backup_type=kind, due=due, outcome=_outcome(run, due), backup=run.name)
            )
        elif now - due >= GRACE:
            out.append(SlotOutcome(backup_type=kind, due=due, outcome="missed"))
    return out


def _outcome(run: Run, due: datetime) -> str:
    if run.outcome != "completed":
        return run.outcome
    return "late" if run.started_at - due > LATE else "ok"


def rpo_breaches(
    completions: Sequence[tuple[datetime, str]],
    rpo: timedelta,
    *,
    since: datetime,
    now: datetime,
) -> list[Breach]:
    """The stretches of [since, now] in which the newest completed automatic backup (the
    (finish time, name) pairs) was older than `rpo`. Before the first one nothing was
    promised: no breach."""
    done = sorted(completions)
    out = []
    for i, (finished, name) in enumerate(done):
        following = done[i + 1][0] if i + 1 < len(done) else None
        start, end = finished + rpo, following or now
        if end <= start or end <= since or start >= now:
            continue
        out.append(
            Breach(
                start=max(start, since),
                end=min(end, now),
                ongoing=following is None,
                last_good=name,
            )
        )
    return out

"""A catalog with two months of history, made through the real parts: blobs through the store,
events through the catalog, deletions through `delete` and `cleanup`; and what it should show.

Four slots a day (06:00, 12:00, 18:00, 23:59 local time) for 60 days, with outages, failures,
late runs, manual and emergency backups, verifications (one failing), drills (one failing,
some slower than the RTO objective), a restore and a failed restore, pins and an unpin, a
deletion by a person and a retention cleanup five days before the end.
"""

from __future__ import annotations

import itertools
import json
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from catalog.events import (
    BackupCompleted,
    BackupFailed,
    BackupPinned,
    BackupStarted,
    BackupUnpinned,
    BackupVerified,
    Event,
    RestoreCompleted,
    RestoreFailed,
    RestoreStarted,
    RestoreTested,
    ScheduleInstalled,
)
from store import Codec
from usecases.config.settings import load_settings
from usecases.context import App
from usecases.report.timeline import GRACE
from usecases.retention.cleanup import cleanup, delete_backup
from usecases.schedule.jobs import project_id

SLOTS = (("morning", 6, 0), ("noon", 12, 0), ("evening", 18, 0), ("nightly", 23, 59))
DAYS = 60
RPO_HOURS = 7.0
RTO_MINUTES = 1.0
CONFIG = {
    "health": {"rpo_hours": RPO_HOURS, "rto_minutes": RTO_MINUTES, "min_free_bytes": 0},
    "retention": {"auto": {"keep_within_days": 30}, "min_verified": 1},
    "notifications": {"desktop": False},
}
COMMIT = "5f1c0ffee0ddba11deadbeef00112233445566aa"
OUTAGE = (20, 21)  # days without any backup


class StepClock:
    """The catalog's clock: `now`, one second later at every reading."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@dataclass
class Expected:
    """What the generator did, counted as it did it: the report must find the same."""

    now: datetime
    slots: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("ok", "late", "failed", "missed"), 0)
    )
    backups: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    auto_completions: list[tuple[datetime, str]] = field(default_factory=list)
    drills: list[tuple[str, bool, float]] = field(default_factory=list)
    pinned: list[str] = field(default_factory=list)
    unpinned: list[str] = field(default_factory=list)
    deleted_by_person: list[str] = field(default_factory=list)
    deleted_by_retention: list[str] = field(default_factory=list)
    verify_failed: list[str] = field(default_factory=list)
    restores: int = 0
    restores_failed: int = 0
    newest: str = ""

    def breaches(self, since: datetime) -> int:
        """Gaps between completed automatic backups longer than the RPO, in the period."""
        done = sorted(self.auto_completions)
        rpo = timedelta(hours=RPO_HOURS)
        gaps = [(a, b) for (a, _), (b, _) in itertools.pairwise(done) if b - a > rpo]
        if done and self.now - done[-1][0] > rpo:
            gaps.append((done[-1][0], self.now))
        return sum(1 for a, b in gaps if b > since and a + rpo < self.now)


# What the report finds about a slot changes as the wall clock passes these moments after it
# (due: pending; its grace: missed; a run's completion + the RPO: an ongoing breach).
_TURNS = (
    timedelta(0),
    GRACE,
    timedelta(seconds=30) + timedelta(hours=RPO_HOURS),
    timedelta(hours=2) + timedelta(hours=RPO_HOURS),
)
_STEADY = timedelta(minutes=30)  # how long the history's counts stay true after `now`


def slots_clear_of(now: datetime) -> list[tuple[str, int, int]]:
    """SLOTS moved earlier by the fewest minutes that put every moment at which the report's
    view of a slot changes outside [now - 1 min, now + 30 min]: the tests then run the real
    command minutes after generating and find exactly what was counted (slot outcomes,
    RPO breaches), whatever the time of day."""
    for shift in range(0, 240):
        moved = [(s, *divmod(h * 60 + m - shift, 60)) for s, h, m in SLOTS]
        days = {(now + timedelta(days=d)).astimezone().date() for d in (-1, 0, 1)}
        turns = [due(day, h, m) + turn for day in days for _, h, m in moved for turn in _TURNS]
        if all(not (now - timedelta(minutes=1) <= t <= now + _STEADY) for t in turns):
            return moved
    raise AssertionError(f"no shift of {SLOTS} is clear of {now}")


def due(day: date, hour: int, minute: int) -> datetime:
    """A wall-clock time of this machine's zone, in UTC (as schedulers fire)."""
    return datetime.combine(day, time(hour, minute)).astimezone(UTC)


class Generator:
    def __init__(
        self, backup_dir: Path, now: datetime, *, days: int, catalog_url: str | None
    ) -> None:
        backup_dir.mkdir(parents=True, exist_ok=True)
        config = {**CONFIG, "catalog_url": catalog_url} if catalog_url else CONFIG
        (backup_dir / "backup-config.json").write_text(json.dumps(config))
        self.days = days
        self.settings = load_settings(backup_dir=backup_dir)
        self.clock = StepClock(now - timedelta(days=days + 1))
        self.app = App.open(self.settings, clock=self.clock)
        self.expected = Expected(now=now)
        self.slots = slots_clear_of(now)
        self.rand = random.Random(18)
        self.completed: list[str] = []

    def at(self, moment: datetime) -> None:
        self.clock.now = moment

    def append(self, *events: Event) -> None:
        self.app.catalog.append_all(list(events), actor="alice@ops-laptop via cli")

    def artifact(self, kind: str, data: bytes) -> dict[str, Any]:
        info = self.app.store.put([data], Codec.GZIP)
        return {
            "kind": kind,
            "digest": info.digest,
            "codec": "gzip",
            "raw_size": info.raw_size,
            "stored_size": info.stored_size,
            "stored_sha256": info.stored_sha256,
            "created": info.created,
        }

    def backup(self, name: str, backup_type: str, day: int, *, fail: bool = False) -> None:
        started = BackupStarted(
            backup=name,
            backup_type=backup_type,
            hostname="db-backup-01",
            pid=4242,
            database=self.settings.database.describe(),
            artifacts=["full", "globals"],
            codec="gzip",
        )
        self.expected.backups.append(name)
        if fail:
            self.append(started)
            self.append(BackupFailed(backup=name, reason="pg_dump: connection lost", stage="dump"))
            self.expected.failed.append(name)
            return
        content = random.Random(day // 2 if backup_type != "manual" else name).randbytes(
            20_000 + day * 400
        )
        arts = [self.artifact("full", content), self.artifact("globals", b"CREATE ROLE app;\n")]
        meta = {
            "git": {"commit": COMMIT, "branch": "main"},
            "database": self.settings.database.describe(),
            "versions": {"server": "16.4", "pg_dump": "16.4"},
            "row_counts": {"public.orders": 100 + day},
        }
        self.append(started)
        self.clock.now += timedelta(seconds=40)
        self.append(
            BackupCompleted(
                backup=name,
                backup_type=backup_type,
                artifacts=arts,
                verified=True,
                duration_seconds=40.0,
                metadata=meta,
            )
        )
        self.completed.append(name)
        self.expected.newest = name
        if name.startswith("auto_"):
            self.expected.auto_completions.append((self.clock.now, name))

    def slot(self, i: int, day: date, slot: str, hour: int, minute: int) -> None:
        moment = due(day, hour, minute)
        if i in OUTAGE or (i % 9 == 4 and slot == "noon"):
            self.expected.slots["missed"] += 1
            return
        failing = i % 11 == 5 and slot == "evening"
        late = i % 13 == 7 and slot == "morning"
        start = moment + (timedelta(hours=2) if late else timedelta(seconds=30))
        self.at(start)
        name = f"auto_{slot}_{start.astimezone().strftime('%Y%m%d_%H%M%S')}"
        self.backup(name, slot, i, fail=failing)
        self.expected.slots["failed" if failing else "late" if late else "ok"] += 1

    def extras(self, i: int, day: date) -> None:
        """The day's other events, at their hours (before the day's slots are replayed)."""
        if i % 10 == 0:
            self.at(due(day, 14, 30))
            self.backup(f"backup_{day:%Y%m%d}_143000", "manual", i)
            if i == 10:
                self.pin(self.completed[-1], "before release 2.0")
        if i == 33:
            self.at(due(day, 15, 0))
            self.backup(f"emergency-before-fix-{day:%Y%m%d}", "emergency", i)
        if self.completed and i % 5 == 2:
            self.drill(i, day)
        if self.completed and i == 40:
            self.at(due(day, 3, 0))
            bad = self.completed[-3]
            self.append(
                BackupVerified(
                    backup=bad,
                    ok=False,
                    artifacts=[{"kind": "full", "ok": False, "error": "stored bytes differ"}],
                )
            )
            self.expected.verify_failed.append(bad)
        elif self.completed:
            self.at(due(day, 3, 0))
            self.append(BackupVerified(backup=self.completed[-1], ok=True, artifacts=[]))
        if i == 25:
            self.pin(self.completed[-1], "kept for the audit")
        if i == 27:
            self.at(due(day, 9, 0))
            name = self.expected.pinned[-1]
            self.append(BackupUnpinned(backup=name, reason="audit done"))
            self.expected.pinned.remove(name)
            self.expected.unpinned.append(name)
        if i == 41:
            self.pin(
                next(n for n in self.completed if n.startswith("auto_")), "first of the series"
            )
        if i == 30:
            self.at(due(day, 16, 0))
            victim = next(n for n in reversed(self.completed) if n.startswith("backup_"))
            delete_backup(self.app, victim)
            self.completed.remove(victim)
            self.expected.deleted_by_person.append(victim)
        if i in (45, 50):
            self.restore(i, day, ok=i == 45)
        if i == self.days - 5:
            self.at(due(day, 5, 0))
            report = cleanup(self.app)
            self.expected.deleted_by_retention += report.deleted
            self.completed = [n for n in self.completed if n not in report.deleted]

    def pin(self, name: str, reason: str) -> None:
        self.clock.now += timedelta(minutes=5)
        self.append(BackupPinned(backup=name, reason=reason))
        self.expected.pinned.append(name)

    def drill(self, i: int, day: date) -> None:
        self.at(due(day, 4, 0))
        name = self.completed[-1]
        ok = i != 37
        seconds = 20.0 + (i * 7) % 60
        self.append(
            RestoreTested(
                backup=name,
                ok=ok,
                target={"host": "127.0.0.1", "port": 5432, "name": "dumpledger_drill_x"},
                restore_seconds=seconds,
                check_seconds=3.0,
                total_seconds=seconds + 3.0,
                tables_checked=12,
                mismatches=[] if ok else ["public.orders: 99 rows, expected 100"],
                reason=None if ok else "row counts differ",
            )
        )
        self.expected.drills.append((name, ok, seconds))

    def restore(self, i: int, day: date, *, ok: bool) -> None:
        self.at(due(day, 10, 0))
        target = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "name": "postgres"}
        common: dict[str, Any] = {
            "restore_id": f"r{i}",
            "backup": self.completed[-1],
            "source_file": None,
            "target": target,
        }
        self.append(
            RestoreStarted(
                **common,
                artifacts=[],
                method="swap",
                safety_backup=None,
                terminate_connections=False,
            )
        )
        self.clock.now += timedelta(seconds=90)
        if ok:
            self.append(
                RestoreCompleted(
                    **common,
                    safety_backup=None,
                    duration_seconds=90.0,
                    replaced_database="postgres_replaced_x",
                )
            )
            self.expected.restores += 1
        else:
            self.append(
                RestoreFailed(
                    **common,
                    safety_backup=None,
                    duration_seconds=90.0,
                    stage="restore",
                    reason="psql: ERROR: relation already exists",
                )
            )
            self.expected.restores_failed += 1

    def run(self) -> Expected:
        now = self.expected.now
        first = (now - timedelta(days=self.days - 1)).astimezone().date()
        self.at(due(first, 0, 1))
        self.append(
            ScheduleInstalled(
                backend="cron",
                slots=[{"backup_type": s, "time": f"{h:02d}:{m:02d}"} for s, h, m in self.slots],
                units=[],
                project=project_id(self.settings.backup_dir),
            )
        )
        for i in range(self.days):
            day = first + timedelta(days=i)
            self.extras(i, day)
            for slot, hour, minute in self.slots:
                if due(day, hour, minute) + timedelta(hours=2) < now:
                    self.slot(i, day, slot, hour, minute)
                elif due(day, hour, minute) + GRACE <= now:  # not run yet, and past its grace
                    self.expected.slots["missed"] += 1
        self.app.close()
        return self.expected


def generate(
    backup_dir: Path, now: datetime, *, days: int = DAYS, catalog_url: str | None = None
) -> Expected:
    """`days` of history ending before `now`; what the report should find."""
    return Generator(backup_dir, now, days=days, catalog_url=catalog_url).run()

"""The report's schedule: due slots, what became of them, and RPO breaches (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from usecases.config.sections import Slot
from usecases.report.timeline import (
    Breach,
    Run,
    ScheduleSpan,
    due_times,
    rpo_breaches,
    slot_outcomes,
)

BERLIN = ZoneInfo("Europe/Berlin")
MORNING = Slot(backup_type="morning", time="06:00")
NIGHTLY = Slot(backup_type="nightly", time="23:59")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def run(name: str, kind: str, started: str, outcome: str = "completed") -> Run:
    return Run(name=name, backup_type=kind, started_at=at(started), outcome=outcome)


def test_due_times_follow_the_wall_clock_across_daylight_saving() -> None:
    # Berlin leaves summer time on 2026-10-25: 06:00 is 04:00 UTC before, 05:00 UTC after.
    dues = list(due_times(MORNING, at("2026-10-24 00:00"), at("2026-10-27 00:00"), BERLIN))
    assert dues == [at("2026-10-24 04:00"), at("2026-10-25 05:00"), at("2026-10-26 05:00")]


def test_due_times_are_within_the_period_only() -> None:
    dues = list(due_times(NIGHTLY, at("2026-11-01 23:59"), at("2026-11-03 23:59"), UTC))
    assert dues == [at("2026-11-01 23:59"), at("2026-11-02 23:59")]  # start in, end out


def test_each_due_slot_gets_its_first_run_and_what_became_of_it() -> None:
    span = ScheduleSpan(slots=(MORNING,), start=at("2026-11-01 00:00"), end=None, source="test")
    runs = [
        run("a", "morning", "2026-11-01 05:57"),  # a timer that fired 3 minutes early: ok
        run("b", "morning", "2026-11-02 06:01", "failed"),
        run("c", "morning", "2026-11-04 09:00"),  # 3 hours late; nothing on the 3rd: missed
        run("d", "nightly", "2026-11-05 06:00"),  # another type does not count
        run("e", "morning", "2026-11-06 06:00", "running"),
    ]
    out = slot_outcomes(
        [span], runs, since=at("2026-11-01 00:00"), now=at("2026-11-07 06:30"), tz=UTC
    )
    assert [(o.due.day, o.outcome, o.backup) for o in out] == [
        (1, "ok", "a"),
        (2, "failed", "b"),
        (3, "missed", None),
        (4, "late", "c"),
        (5, "missed", None),
        (6, "running", "e"),
        # the 7th is due 30 minutes ago: pending, not yet missed
    ]


def test_a_run_serves_one_slot_only() -> None:
    span = ScheduleSpan(slots=(MORNING,), start=at("2026-11-01 00:00"), end=None, source="test")
    runs = [run("late", "morning", "2026-11-02 05:58")]  # counts for the 2nd, not the 1st too
    out = slot_outcomes(
        [span], runs, since=at("2026-11-01 00:00"), now=at("2026-11-03 00:00"), tz=UTC
    )
    assert [(o.due.day, o.outcome) for o in out] == [(1, "missed"), (2, "ok")]


def test_slots_are_due_only_while_a_schedule_was_installed() -> None:
    spans = [
        ScheduleSpan(
            slots=(MORNING,), start=at("2026-11-01 00:00"), end=at("2026-11-03 00:00"), source="a"
        ),
        ScheduleSpan(slots=(NIGHTLY,), start=at("2026-11-05 00:00"), end=None, source="b"),
    ]
    out = slot_outcomes(spans, [], since=at("2026-11-02 00:00"), now=at("2026-11-06 12:00"), tz=UTC)
    assert [(o.backup_type, o.due) for o in out] == [
        ("morning", at("2026-11-02 06:00")),  # before the period's start: not listed
        ("nightly", at("2026-11-05 23:59")),
    ]


def test_rpo_breaches_are_the_gaps_longer_than_the_rpo() -> None:
    done = [
        (at("2026-11-01 06:00"), "a"),
        (at("2026-11-01 12:00"), "b"),  # 6 h: no breach at 6 h
        (at("2026-11-02 00:00"), "c"),  # 12 h: breach from 18:00 to 00:00
    ]
    out = rpo_breaches(
        done, timedelta(hours=6), since=at("2026-11-01 00:00"), now=at("2026-11-02 10:00")
    )
    assert out == [
        Breach(
            start=at("2026-11-01 18:00"), end=at("2026-11-02 00:00"), ongoing=False, last_good="b"
        ),
        Breach(
            start=at("2026-11-02 06:00"), end=at("2026-11-02 10:00"), ongoing=True, last_good="c"
        ),
    ]
    assert out[0].hours == 6.0


def test_rpo_breaches_are_clipped_to_the_period_and_none_before_the_first_backup() -> None:
    done = [(at("2026-11-01 00:00"), "a"), (at("2026-11-03 00:00"), "b")]
    out = rpo_breaches(
        done, timedelta(hours=6), since=at("2026-11-02 00:00"), now=at("2026-11-03 01:00")
    )
    assert out == [
        Breach(
            start=at("2026-11-02 00:00"), end=at("2026-11-03 00:00"), ongoing=False, last_good="a"
        )
    ]
    assert (
        rpo_breaches(
            [], timedelta(hours=6), since=at("2026-11-01 00:00"), now=at("2026-11-09 00:00")
        )
        == []
    )

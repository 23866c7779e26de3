"""The report's audit: one line per cleanup run, every other event a line of its own."""

from __future__ import annotations

from typing import Any

from catalog.canonical import canonical_json
from catalog.events import BackupDeleted, BackupFailed, BackupPinned, Event
from usecases.report.recoverability import _collapsed, grouped


def row(seq: int, event: Event, actor: str = "cron@db via scheduler") -> dict[str, Any]:
    return {
        "seq": seq,
        "type": type(event).__name__,
        "occurred_at": f"2026-11-01T00:00:{seq:02d}.000000Z",
        "actor": actor,
        "subject": event.subject,
        "payload": canonical_json(event.payload()),
    }


def expired(name: str, reason: str = "no rule keeps it") -> BackupDeleted:
    return BackupDeleted(backup=name, reason=reason, rule="expired")


def test_a_cleanup_run_is_one_line_and_nothing_else_is_merged() -> None:
    v1 = row(9, expired("v1"))
    v1["payload"] = canonical_json({"backup": "v1", "reason": "old", "schema_version": 1})
    rows = [  # newest first, as the page lists them
        row(10, expired("a")),
        row(9, expired("b", reason='tricky "rule":"person" text')),
        row(8, expired("c")),
        row(7, BackupFailed(backup="d", reason="lost", stage="dump")),
        row(6, expired("e")),
        row(5, expired("f"), actor="alice@laptop via cli"),  # another run: another actor
        row(4, BackupDeleted(backup="g", reason="by hand", rule="person")),
        row(3, BackupDeleted(backup="h", reason="by hand", rule="person")),
        v1,  # written before rules were recorded: a person's
        row(2, BackupPinned(backup="i", reason="keep")),
    ]
    runs = grouped(rows)
    assert [[r["subject"] for r in run] for run in runs] == [
        ["a", "b", "c"],
        ["d"],
        ["e"],
        ["f"],
        ["g"],
        ["h"],
        ["v1"],
        ["i"],
    ]
    line = _collapsed(runs[0])
    assert line.backup == "3 backups: c ... a"
    assert line.detail == "expired: no rule keeps it"
    assert line.action == "delete" and line.actor == "cron@db via scheduler"
    pin = _collapsed(runs[-1])
    assert (pin.action, pin.outcome, pin.detail) == ("pin", "pinned", "keep")

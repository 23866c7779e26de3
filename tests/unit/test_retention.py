"""The retention evaluator: properties over random histories and policies, and the old system."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from catalog.retention import (
    CLASSES,
    BackupView,
    ClassPolicy,
    Decision,
    Policy,
    evaluate,
    policy_from_config,
)

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@st.composite
def histories(draw: st.DrawFn) -> list[BackupView]:
    n = draw(st.integers(0, 40))
    out = []
    for i in range(n):
        out.append(
            BackupView(
                name=f"b{i:03d}",
                backup_class=draw(st.sampled_from(CLASSES)),
                status=draw(st.sampled_from(["completed"] * 8 + ["running"])),
                started_at=NOW - timedelta(minutes=draw(st.integers(0, 60 * 24 * 800))),
                verified=draw(st.booleans()),
                pinned=draw(st.integers(0, 9)) == 0,
                pin_reason="release",
            )
        )
    return out


@st.composite
def class_policies(draw: st.DrawFn) -> ClassPolicy:
    if draw(st.integers(0, 4)) == 0:
        return ClassPolicy(forever=True)
    return ClassPolicy(
        keep_within_days=draw(st.one_of(st.none(), st.floats(0, 120, allow_nan=False))),
        keep_last=draw(st.integers(0, 5)),
        keep_daily=draw(st.integers(0, 7)),
        keep_weekly=draw(st.integers(0, 5)),
        keep_monthly=draw(st.integers(0, 6)),
        keep_yearly=draw(st.integers(0, 3)),
    )


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    return Policy(
        classes={c: draw(class_policies()) for c in CLASSES},
        min_verified=draw(st.integers(1, 4)),
    )


def removed(decisions: list[Decision]) -> set[str]:
    return {d.name for d in decisions if not d.keep}


@given(histories(), policies())
def test_never_removes_pinned_in_flight_or_the_newest_verified(
    backups: list[BackupView], policy: Policy
) -> None:
    decisions = evaluate(policy, backups, NOW)
    gone = removed(decisions)
    assert len(decisions) == len(backups)
    for b in backups:
        if b.pinned or b.status == "running":
            assert b.name not in gone
    verified = [b for b in backups if b.verified and b.status == "completed"]
    if verified:
        newest = max(verified, key=lambda b: (b.started_at, b.name))
        assert newest.name not in gone
    kept_verified = [b for b in verified if b.name not in gone]
    assert len(kept_verified) >= min(policy.min_verified, len(verified))


@given(histories())
def test_default_policy_never_removes_manual_emergency_or_pre(backups: list[BackupView]) -> None:
    gone = removed(evaluate(Policy(), backups, NOW))
    for b in backups:
        if b.backup_class != "auto" or NOW - b.started_at <= timedelta(days=60):
            assert b.name not in gone


@given(histories(), policies(), st.randoms(use_true_random=False))
def test_the_result_does_not_depend_on_the_input_order(
    backups: list[BackupView], policy: Policy, rnd: random.Random
) -> None:
    shuffled = list(backups)
    rnd.shuffle(shuffled)
    assert evaluate(policy, shuffled, NOW) == evaluate(policy, backups, NOW)


@given(histories(), policies())
def test_evaluating_again_after_applying_removes_nothing_more(
    backups: list[BackupView], policy: Policy
) -> None:
    gone = removed(evaluate(policy, backups, NOW))
    left = [b for b in backups if b.name not in gone]
    assert removed(evaluate(policy, left, NOW)) == set()


@given(histories(), policies(), st.integers(0, 400 * 24))
def test_moving_now_forward_never_keeps_what_was_removed(
    backups: list[BackupView], policy: Policy, hours: int
) -> None:
    before = removed(evaluate(policy, backups, NOW))
    after = removed(evaluate(policy, backups, NOW + timedelta(hours=hours)))
    assert before <= after


def test_every_decision_names_its_rule() -> None:
    backups = [
        BackupView(name="auto_old", backup_class="auto", status="completed",
                   started_at=NOW - timedelta(days=90), verified=True),
        BackupView(name="auto_new", backup_class="auto", status="completed",
                   started_at=NOW - timedelta(days=1), verified=True),
        BackupView(name="auto_pinned", backup_class="auto", status="completed",
                   started_at=NOW - timedelta(days=100), pinned=True, pin_reason="audit"),
        BackupView(name="manual_x", backup_class="manual", status="completed",
                   started_at=NOW - timedelta(days=400)),
        BackupView(name="auto_running", backup_class="auto", status="running",
                   started_at=NOW - timedelta(days=70)),
    ]  # fmt: skip
    got = {d.name: (d.action, d.rule) for d in evaluate(Policy(), backups, NOW)}
    assert got == {
        "auto_old": ("remove", "expired"),
        "auto_new": ("keep", "newest-verified"),
        "auto_pinned": ("keep", "pinned"),
        "manual_x": ("keep", "forever"),
        "auto_running": ("keep", "in-flight"),
    }


def test_keep_daily_keeps_the_newest_of_each_recent_day_as_restic_does() -> None:
    day = timedelta(days=1)
    backups = [
        BackupView(name=f"auto_{d}_{h}", backup_class="auto", status="completed",
                   started_at=NOW - d * day - timedelta(hours=h))
        for d in range(5) for h in (1, 3, 5)
    ]  # fmt: skip
    policy = Policy(classes={"auto": ClassPolicy(keep_daily=3)})
    kept = {d.name for d in evaluate(policy, backups, NOW) if d.keep}
    assert kept == {"auto_0_1", "auto_1_1", "auto_2_1"}


def golden_history() -> list[BackupView]:
    m, h, d = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)

    def b(
        name: str,
        cls: str,
        age: timedelta,
        *,
        status: str = "completed",
        verified: bool = False,
        pinned: bool = False,
        pin_reason: str | None = None,
    ) -> BackupView:
        return BackupView(
            name=name,
            backup_class=cls,
            status=status,
            started_at=NOW - age,
            verified=verified,
            pinned=pinned,
            pin_reason=pin_reason,
        )

    return [
        b("auto_0", "auto", 5 * m, verified=True),
        b("auto_a", "auto", 1 * h),
        b("auto_b", "auto", 2 * h, status="running"),
        b("auto_c", "auto", 30 * h),
        b("auto_d", "auto", 3 * d),
        b("auto_e", "auto", 3 * d + 2 * h),
        b("auto_f", "auto", 4 * d, pinned=True),
        b("auto_g", "auto", 10 * d, verified=True),
        b("auto_i", "auto", 45 * d),
        b("auto_j", "auto", 50 * d, verified=True),
        b("auto_k", "auto", 400 * d, pinned=True, pin_reason="audit 2025"),
        b("auto_l", "auto", 800 * d),
        b("manual_a", "manual", 500 * d),
        b("emergency-a", "emergency", 5 * d),
        b("emergency-b", "emergency", 6 * d, verified=True),
        b("pre-a", "pre", 1 * d),
        b("pre-b", "pre", 7 * d),
        b("failed_a", "auto", 2 * h, status="failed"),
    ]


def test_every_rule_in_order_with_its_detail_golden() -> None:
    """The whole plan, word for word: what `cleanup --json` prints must not drift when the
    evaluator is rewritten for speed (each rule appears at least once)."""
    policy = Policy(
        classes={
            "auto": ClassPolicy(keep_within_days=0.001, keep_last=2, keep_daily=2, keep_weekly=2,
                                keep_monthly=2, keep_yearly=3),
            "manual": ClassPolicy(forever=True),
            "emergency": ClassPolicy(keep_last=1),
            "pre": ClassPolicy(keep_within_days=2),
        },
        min_verified=3,
    )  # fmt: skip
    auto_expired = (
        "no rule keeps it (auto backups: keep within 0.001 days, last 2, 2 daily, 2 weekly, "
        "2 monthly, 3 yearly)"
    )
    got = [(x.name, x.action, x.rule, x.detail) for x in evaluate(policy, golden_history(), NOW)]
    assert got == [
        ("auto_0", "keep", "newest-verified", "the newest verified backup is always kept"),
        ("auto_a", "keep", "keep_last", "one of the last 2 auto backups"),
        ("auto_b", "keep", "in-flight", "the backup is still being written"),
        ("pre-a", "keep", "keep_within", "younger than 2 days"),
        ("auto_c", "keep", "keep_daily", "newest auto backup of its day"),
        ("auto_d", "keep", "keep_weekly", "newest auto backup of its week"),
        ("auto_e", "remove", "expired", auto_expired),
        ("auto_f", "keep", "pinned", "pinned: no reason given"),
        ("emergency-a", "keep", "keep_last", "one of the last 1 emergency backups"),
        ("emergency-b", "keep", "min_verified", "keeps at least 3 verified backup(s)"),
        ("pre-b", "remove", "expired", "no rule keeps it (pre backups: keep within 2 days)"),
        ("auto_g", "keep", "min_verified", "keeps at least 3 verified backup(s)"),
        ("auto_i", "keep", "keep_monthly", "newest auto backup of its month"),
        ("auto_j", "remove", "expired", auto_expired),
        ("auto_k", "keep", "pinned", "pinned: audit 2025"),
        ("manual_a", "keep", "forever", "manual backups are kept until a person deletes them"),
        ("auto_l", "keep", "keep_yearly", "newest auto backup of its year"),
    ]


def old_system_history() -> list[BackupView]:
    """Four automatic backups a day for 60 days, plus manual and emergency ones."""
    out = []
    for i in range(240):
        kind = ("morning", "noon", "evening", "nightly")[i % 4]
        out.append(
            BackupView(
                name=f"auto_{kind}_{i:03d}",
                backup_class="auto",
                status="completed",
                started_at=NOW - timedelta(hours=6 * i, minutes=1),
                verified=True,
            )
        )
    for i in range(5):
        out.append(
            BackupView(name=f"manual_{i}", backup_class="manual", status="completed",
                       started_at=NOW - timedelta(days=20 * i + 3), verified=True)
        )  # fmt: skip
        out.append(
            BackupView(name=f"emergency-{i}", backup_class="emergency", status="completed",
                       started_at=NOW - timedelta(days=25 * i + 2))
        )  # fmt: skip
    return out


@pytest.mark.parametrize("days", [30, 60, 7, 1])
def test_cleanup_days_removes_exactly_the_automatic_backups_older_than_days(days: int) -> None:
    history = old_system_history()
    gone = removed(evaluate(Policy().with_auto_days(days), history, NOW))
    expected = {
        b.name
        for b in history
        if b.backup_class == "auto" and NOW - b.started_at > timedelta(days=days)
    }
    assert gone == expected
    assert len(gone) == 240 - (days * 4 if days < 60 else 240)


def test_config_parsing_names_the_bad_key() -> None:
    pol = policy_from_config({"auto": {"keep_within_days": 30, "keep_daily": 7}, "min_verified": 2})
    assert pol.for_class("auto") == ClassPolicy(keep_within_days=30, keep_daily=7)
    assert pol.for_class("manual").forever
    with pytest.raises(ValueError, match="keep_dialy"):
        policy_from_config({"auto": {"keep_dialy": 7}})
    with pytest.raises(ValueError, match="no rule keeps anything"):
        policy_from_config({"manual": {}})
    with pytest.raises(ValueError, match="min_verified"):
        policy_from_config({"min_verified": 0})

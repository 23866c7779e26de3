"""The pure half of `check`: facts + limits + now -> OK / WARNING / CRITICAL, with reasons."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from pathlib import Path

from catalog.retention import policy_from_config
from usecases.config.sections import Health
from usecases.config.settings import Settings
from usecases.health.check import (
    BackupFact,
    CheckResult,
    Facts,
    Status,
    evaluate,
    overall,
    summary_line,
)
from usecases.health.facts import horizon_bytes

LIMITS = Health(min_free_bytes=1000)


def auto(name: str, at: datetime, *, size: int = 10_000, seconds: float = 10.0) -> BackupFact:
    return BackupFact(
        name=name,
        backup_type="nightly",
        status="completed",
        finished_at=at,
        raw_size=size,
        stored_size=size // 4,
        duration_seconds=seconds,
    )


def healthy(now: datetime) -> Facts:
    return Facts(
        server_version="16.4",
        server_major=16,
        pg_dump_version="16.4",
        events=12,
        free_bytes=10**9,
        horizon_bytes=10**6,
        autos=(auto("auto_nightly_b", now - timedelta(hours=1)),),
        last_verified_at=now - timedelta(hours=1),
        last_drill_at=now - timedelta(days=2),
        schedule="installed (systemd, 4 slot(s))",
    )


def by_name(checks: list[CheckResult]) -> dict[str, CheckResult]:
    return {c.name: c for c in checks}


def test_everything_fresh_is_ok(frozen_now: datetime) -> None:
    checks = evaluate(healthy(frozen_now), LIMITS, frozen_now)
    assert overall(checks) is Status.OK
    assert [c.name for c in checks] == [
        "database",
        "pg_dump",
        "catalog",
        "store",
        "last backup",
        "verification",
        "drill",
        "schedule",
    ]
    assert summary_line(checks) == "DUMPLEDGER OK - 8 checks passed"


def test_backup_older_than_the_rpo_warns_then_goes_critical(frozen_now: datetime) -> None:
    old = dataclasses.replace(
        healthy(frozen_now), autos=(auto("auto_nightly_a", frozen_now - timedelta(hours=7)),)
    )
    checks = evaluate(old, LIMITS, frozen_now)
    last = by_name(checks)["last backup"]
    assert last.status is Status.WARNING
    assert "7.0 h old, older than the RPO of 6 h" in last.message
    assert summary_line(checks).startswith("DUMPLEDGER WARNING - last backup: auto_nightly_a")
    ancient = dataclasses.replace(
        old, autos=(auto("auto_nightly_a", frozen_now - timedelta(hours=25)),)
    )
    assert by_name(evaluate(ancient, LIMITS, frozen_now))["last backup"].status is Status.CRITICAL
    configured = dataclasses.replace(LIMITS, rpo_hours=8)
    assert overall(evaluate(old, configured, frozen_now)) is Status.OK


def test_a_failed_newest_automatic_backup_warns(frozen_now: datetime) -> None:
    failed = BackupFact(
        name="auto_nightly_c",
        backup_type="nightly",
        status="failed",
        finished_at=frozen_now,
        reason="pg_dump exited 1",
    )
    facts = healthy(frozen_now)
    facts = dataclasses.replace(facts, autos=(failed, *facts.autos))
    last = by_name(evaluate(facts, LIMITS, frozen_now))["last backup"]
    assert last.status is Status.WARNING
    assert "auto_nightly_c failed: pg_dump exited 1" in last.message


def test_database_down_and_broken_chain_are_critical(frozen_now: datetime) -> None:
    down = dataclasses.replace(
        healthy(frozen_now), db_error="cannot connect", server_major=None, server_version=None
    )
    checks = by_name(evaluate(down, LIMITS, frozen_now))
    assert checks["database"].status is Status.CRITICAL
    assert checks["pg_dump"].status is Status.OK  # nothing to compare with
    broken = dataclasses.replace(
        healthy(frozen_now), chain_problems=("event seq 3 (BackupCompleted x): content was edited",)
    )
    checks = by_name(evaluate(broken, LIMITS, frozen_now))
    assert checks["catalog"].status is Status.CRITICAL
    assert "seq 3" in checks["catalog"].message
    assert checks["catalog"].details["problems"] == list(broken.chain_problems)


def test_no_catalog_means_only_the_checks_that_need_none(frozen_now: datetime) -> None:
    facts = Facts(catalog_error="cannot open the catalog", pg_dump_error="pg_dump 17 needed")
    checks = evaluate(facts, LIMITS, frozen_now)
    assert [c.name for c in checks] == ["database", "pg_dump", "catalog", "store"]
    assert by_name(checks)["pg_dump"].status is Status.CRITICAL
    assert overall(checks) is Status.CRITICAL


def test_store_space(frozen_now: datetime) -> None:
    facts = healthy(frozen_now)
    low = by_name(evaluate(dataclasses.replace(facts, free_bytes=999), LIMITS, frozen_now))
    assert low["store"].status is Status.WARNING and "minimum" in low["store"].message
    short = dataclasses.replace(facts, free_bytes=5000, horizon_bytes=6000)
    store = by_name(evaluate(short, LIMITS, frozen_now))["store"]
    assert store.status is Status.WARNING and "retention horizon" in store.message
    broken = dataclasses.replace(facts, store_error="store /x is not writable")
    assert by_name(evaluate(broken, LIMITS, frozen_now))["store"].status is Status.CRITICAL


def test_verification_and_drill_ages(frozen_now: datetime) -> None:
    facts = dataclasses.replace(
        healthy(frozen_now),
        last_verified_at=frozen_now - timedelta(days=8),
        last_drill_at=None,
    )
    checks = by_name(evaluate(facts, LIMITS, frozen_now))
    assert checks["verification"].status is Status.WARNING
    assert "limit 7 days" in checks["verification"].message
    assert checks["drill"].status is Status.WARNING
    assert "never" in checks["drill"].message
    failed = dataclasses.replace(
        healthy(frozen_now), failed_verifications=("x",), last_drill_failed="y"
    )
    checks = by_name(evaluate(failed, LIMITS, frozen_now))
    assert checks["verification"].status is Status.CRITICAL
    assert checks["drill"].status is Status.WARNING and "(y) failed" in checks["drill"].message


def test_schedule_missing_warns(frozen_now: datetime) -> None:
    facts = dataclasses.replace(healthy(frozen_now), schedule=None)
    assert by_name(evaluate(facts, LIMITS, frozen_now))["schedule"].status is Status.WARNING


def test_a_truncated_or_slow_backup_against_the_trailing_median(frozen_now: datetime) -> None:
    history = tuple(
        auto(f"auto_nightly_{i}", frozen_now - timedelta(days=i), size=10_000, seconds=10)
        for i in range(1, 6)
    )
    normal = dataclasses.replace(
        healthy(frozen_now), autos=(auto("auto_nightly_0", frozen_now), *history)
    )
    assert overall(evaluate(normal, LIMITS, frozen_now)) is Status.OK
    small = dataclasses.replace(
        normal, autos=(auto("auto_nightly_0", frozen_now, size=4_000, seconds=40), *history)
    )
    checks = by_name(evaluate(small, LIMITS, frozen_now))
    assert checks["backup size"].status is Status.WARNING
    assert "a truncated dump?" in checks["backup size"].message
    assert checks["backup duration"].status is Status.WARNING
    too_few = dataclasses.replace(small, autos=small.autos[:3])  # 2 earlier: no verdict
    assert "backup size" not in by_name(evaluate(too_few, LIMITS, frozen_now))


def test_summary_puts_critical_first_and_shortens(frozen_now: datetime) -> None:
    facts = dataclasses.replace(
        healthy(frozen_now),
        schedule=None,
        db_error="cannot connect to x: refused; is the database running?",
    )
    line = summary_line(evaluate(facts, LIMITS, frozen_now))
    assert line.startswith("DUMPLEDGER CRITICAL - database: cannot connect to x: refused; schedule")
    assert "is the database running" not in line


def test_retention_horizon_estimate(frozen_now: datetime, tmp_path: Path) -> None:
    autos = [
        dataclasses.replace(auto("a2", frozen_now), stored_size=100),
        dataclasses.replace(auto("a1", frozen_now), stored_size=300),
        BackupFact(name="a0", backup_type="noon", status="failed", finished_at=frozen_now),
    ]
    settings = Settings(backup_dir=tmp_path)  # 4 slots a day, automatic kept 60 days
    assert horizon_bytes(settings, autos) == 200 * 4 * 60 - 400
    forever = Settings(
        backup_dir=tmp_path, retention=policy_from_config({"auto": {"forever": True}})
    )
    assert horizon_bytes(forever, autos) == 0
    assert horizon_bytes(settings, autos[2:]) == 0


def test_a_schedule_the_scheduler_will_not_run_warns(frozen_now: datetime) -> None:
    facts = dataclasses.replace(
        healthy(frozen_now), schedule_problem="the lines are in the crontab, but no cron daemon"
    )
    result = by_name(evaluate(facts, LIMITS, frozen_now))["schedule"]
    assert result.status is Status.WARNING
    assert result.message.startswith(
        "installed (systemd, 4 slot(s)), but the lines are in the crontab, but no cron daemon"
    )
    ok = by_name(evaluate(healthy(frozen_now), LIMITS, frozen_now))["schedule"]
    assert (ok.status, ok.message) == (Status.OK, "installed (systemd, 4 slot(s)), active")


def test_with_chunks_the_horizon_counts_what_each_backup_newly_stores(
    frozen_now: datetime, tmp_path: Path
) -> None:
    autos = [
        dataclasses.replace(auto(f"a{i}", frozen_now), stored_size=10_000, added_bytes=added)
        for i, added in enumerate((100, 300, 200, 50_000))  # the oldest, first, stored it all
    ]
    settings = Settings(backup_dir=tmp_path)  # 4 slots a day, automatic kept 60 days
    # median of the 4 newest: 250 per backup, 240 - 4 backups still to come
    assert horizon_bytes(settings, autos) == 250 * (240 - 4)
    whole = [dataclasses.replace(autos[0], added_bytes=None), *autos[1:]]
    assert horizon_bytes(settings, whole) == 10_000 * 240 - 40_000  # whole blobs: as before


def test_the_store_line_says_what_the_store_holds(frozen_now: datetime) -> None:
    facts = dataclasses.replace(healthy(frozen_now), store_bytes=5 << 20)
    store = by_name(evaluate(facts, LIMITS, frozen_now))["store"]
    assert store.status is Status.OK and "the store holds 5.0 MB" in store.message
    assert store.details["store_bytes"] == 5 << 20

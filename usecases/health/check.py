"""`dumpledger check`: what is healthy, as Nagios sees it (OK 0, WARNING 1, CRITICAL 2).

``evaluate`` is pure: facts + limits + now -> one result per check. ``usecases.health.facts``
gathers the facts (connects to the database, reads the catalog, probes the store).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import IntEnum
from typing import Any

from usecases.config.sections import Health
from usecases.health.blobcheck import BlobsFact, blobs_check

TRAILING = 10  # backups of the same type the last one is compared with
MIN_TRAILING = 3  # fewer than this: no anomaly verdict


class Status(IntEnum):
    OK = 0
    WARNING = 1
    CRITICAL = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckResult:
    name: str
    status: Status
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status.name,
            "message": self.message,
            "details": self.details,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class BackupFact:
    """One automatic backup as `check` needs it; times are aware UTC datetimes."""

    name: str
    backup_type: str
    status: str  # completed or failed
    finished_at: datetime
    raw_size: int = 0
    stored_size: int = 0
    duration_seconds: float | None = None
    reason: str | None = None
    added_bytes: int | None = None  # what it newly stored (recorded by a chunked store)


@dataclass(frozen=True, slots=True, kw_only=True)
class Facts:
    """What `check` found; None means "could not be found out" (the matching error says why)."""

    db_error: str | None = None
    scratch_leftovers: tuple[str, ...] = ()  # of interrupted restores and drills
    server_version: str | None = None
    server_major: int | None = None
    pg_dump_version: str | None = None
    pg_dump_error: str | None = None
    catalog_error: str | None = None
    chain_problems: tuple[str, ...] = ()
    events: int = 0
    store_error: str | None = None
    free_bytes: int | None = None
    store_bytes: int | None = None  # what the store's files take (deduplicated)
    horizon_bytes: int = 0  # what the retention horizon still needs (see healthfacts)
    autos: tuple[BackupFact, ...] = ()  # newest first: completed and failed automatic backups
    last_verified_at: datetime | None = None
    failed_verifications: tuple[str, ...] = ()  # backups whose latest verification failed
    last_drill_at: datetime | None = None  # newest passed drill
    last_drill_failed: str | None = None  # the newest drill's backup, when that drill failed
    schedule: str | None = None  # "installed (systemd)", or None when none is installed
    # Why the installed schedule will not run here (units gone, no cron daemon, timers not
    # active), as the scheduler says; None when it will.
    schedule_problem: str | None = None
    blobs: BlobsFact | None = None  # None: no store to look at
    # Backups running for longer than health.stale_running_hours (usecases.backup.abandon).
    stale_running: tuple[str, ...] = ()
    interrupted_restores: tuple[str, ...] = ()  # of the last days (usecases.restore.interrupted)


def evaluate(facts: Facts, limits: Health, now: datetime) -> list[CheckResult]:
    """Every check, in a fixed order."""
    out = [_database(facts), _pg_dump(facts), _catalog(facts), _store(facts, limits)]
    if facts.catalog_error is not None:
        return out  # the rest comes from the catalog
    out += [
        _last_backup(facts, limits, now),
        _verification(facts, limits, now),
        _drill(facts, limits, now),
        _schedule(facts),
        *_stale(facts),
        *_anomalies(facts, limits),
        *_restores(facts),
    ]
    if facts.blobs is not None:
        healthy, message = blobs_check(facts.blobs, size_text)
        out.append(_result("blobs", Status.OK if healthy else Status.WARNING, message))
    return out


def overall(checks: Sequence[CheckResult]) -> Status:
    return max((c.status for c in checks), default=Status.OK)


def summary_line(checks: Sequence[CheckResult]) -> str:
    """The Nagios first line: `DUMPLEDGER WARNING - last backup: ...; drill: ...`."""
    status = overall(checks)
    if status is Status.OK:
        text = f"{len(checks)} checks passed"
    else:
        bad = sorted((c for c in checks if c.status is not Status.OK), key=lambda c: -c.status)
        text = "; ".join(f"{c.name}: {_short(c.message)}" for c in bad)
    return f"DUMPLEDGER {status.name} - {text}"


def _short(message: str, limit: int = 100) -> str:
    """The first clause of a message, for the one-line summary (the check lines have it all)."""
    first = message.split("; ")[0]
    return first if len(first) <= limit else first[: limit - 3] + "..."


def age_text(delta: timedelta) -> str:
    seconds = max(int(delta.total_seconds()), 0)
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _result(name: str, status: Status, message: str, **details: Any) -> CheckResult:
    return CheckResult(name=name, status=status, message=message, details=details)


def leftovers_note(names: Sequence[str]) -> str:
    """What to say of scratch databases an interrupted restore or drill left (each a copy of a
    database): which, and how to drop them."""
    drops = " ".join(f'DROP DATABASE "{n}";' for n in names)
    return (
        f"{len(names)} scratch database(s) left by an interrupted restore or drill: "
        f"{', '.join(names)}; when no restore or drill is running: {drops}"
    )


def _database(f: Facts) -> CheckResult:
    if f.db_error is not None:
        return _result("database", Status.CRITICAL, f.db_error)
    if f.scratch_leftovers:
        return _result(
            "database",
            Status.WARNING,
            f"reachable, PostgreSQL {f.server_version}; {leftovers_note(f.scratch_leftovers)}",
            version=f.server_version,
        )
    return _result(
        "database", Status.OK, f"reachable, PostgreSQL {f.server_version}", version=f.server_version
    )


def _pg_dump(f: Facts) -> CheckResult:
    if f.pg_dump_error is not None:
        return _result("pg_dump", Status.CRITICAL, f.pg_dump_error)
    if f.server_major is None:
        return _result(
            "pg_dump",
            Status.OK,
            f"pg_dump {f.pg_dump_version} found (server version unknown)",
            version=f.pg_dump_version,
        )
    return _result(
        "pg_dump",
        Status.OK,
        f"pg_dump {f.pg_dump_version} fits server {f.server_major}",
        version=f.pg_dump_version,
        server_major=f.server_major,
    )


def _catalog(f: Facts) -> CheckResult:
    if f.catalog_error is not None:
        return _result("catalog", Status.CRITICAL, f.catalog_error)
    if f.chain_problems:
        first = f.chain_problems[0]
        more = f" (+{len(f.chain_problems) - 1} more)" if len(f.chain_problems) > 1 else ""
        return _result(
            "catalog",
            Status.CRITICAL,
            f"hash chain broken: {first}{more}; run `dumpledger catalog verify`",
            problems=list(f.chain_problems),
        )
    return _result("catalog", Status.OK, f"hash chain intact ({f.events} events)", events=f.events)


def _store(f: Facts, limits: Health) -> CheckResult:
    if f.store_error is not None:
        return _result("store", Status.CRITICAL, f.store_error)
    free = f.free_bytes or 0
    details = {"free_bytes": free, "horizon_bytes": f.horizon_bytes, "store_bytes": f.store_bytes}
    if free < limits.min_free_bytes:
        return _result(
            "store",
            Status.WARNING,
            f"only {size_text(free)} free (minimum {size_text(limits.min_free_bytes)})",
            **details,
        )
    if free < f.horizon_bytes:
        return _result(
            "store",
            Status.WARNING,
            f"{size_text(free)} free, but the retention horizon needs about "
            f"{size_text(f.horizon_bytes)}",
            **details,
        )
    held = "" if f.store_bytes is None else f", the store holds {size_text(f.store_bytes)}"
    return _result("store", Status.OK, f"writable, {size_text(free)} free{held}", **details)


def _last_backup(f: Facts, limits: Health, now: datetime) -> CheckResult:
    rpo = timedelta(hours=limits.rpo_hours)
    done = [b for b in f.autos if b.status == "completed"]
    if not done:
        return _result("last backup", Status.WARNING, "no automatic backup has completed yet")
    last = done[0]
    age = now - last.finished_at
    details = {"backup": last.name, "age_seconds": int(age.total_seconds())}
    if f.autos[0].status == "failed":
        failed = f.autos[0]
        return _result(
            "last backup",
            Status.WARNING,
            f"the newest automatic backup {failed.name} failed: {failed.reason}",
            failed=failed.name,
            **details,
        )
    if age > rpo:
        return _result(
            "last backup",
            Status.CRITICAL if age > 4 * rpo else Status.WARNING,
            f"{last.name} is {age_text(age)} old, older than the RPO of {limits.rpo_hours:g} h",
            **details,
        )
    return _result("last backup", Status.OK, f"{last.name}, {age_text(age)} ago", **details)


def _verification(f: Facts, limits: Health, now: datetime) -> CheckResult:
    if f.failed_verifications:
        names = ", ".join(f.failed_verifications[:3])
        return _result(
            "verification",
            Status.CRITICAL,
            f"failed verification: {names}; run `dumpledger verify` on them",
            backups=list(f.failed_verifications),
        )
    return _aged(
        "verification", f.last_verified_at, limits.verify_max_age_days, now, "dumpledger verify"
    )


def _drill(f: Facts, limits: Health, now: datetime) -> CheckResult:
    if f.last_drill_failed is not None:
        return _result(
            "drill",
            Status.WARNING,
            f"the last restore drill ({f.last_drill_failed}) failed; see "
            f"`dumpledger info {f.last_drill_failed}`",
            backup=f.last_drill_failed,
        )
    return _aged("drill", f.last_drill_at, limits.drill_max_age_days, now, "dumpledger drill")


def _aged(name: str, at: datetime | None, max_days: float, now: datetime, fix: str) -> CheckResult:
    if at is None:
        return _result(name, Status.WARNING, f"never done; run `{fix}`")
    age = now - at
    details = {"age_seconds": int(age.total_seconds())}
    if age > timedelta(days=max_days):
        return _result(
            name,
            Status.WARNING,
            f"last one {age_text(age)} ago, limit {max_days:g} days; run `{fix}`",
            **details,
        )
    return _result(name, Status.OK, f"last one {age_text(age)} ago", **details)


def _schedule(f: Facts) -> CheckResult:
    if f.schedule is None:
        return _result(
            "schedule", Status.WARNING, "not installed; run `dumpledger schedule install`"
        )
    if f.schedule_problem is not None:
        return _result(
            "schedule",
            Status.WARNING,
            f"{f.schedule}, but {f.schedule_problem}; `dumpledger schedule status` tells more",
        )
    return _result("schedule", Status.OK, f"{f.schedule}, active")


def _stale(f: Facts) -> list[CheckResult]:
    """Only when some backup is stuck in `running`: its process may be gone with its host."""
    if not f.stale_running:
        return []
    return [
        _result(
            "running backups",
            Status.WARNING,
            f"{'; '.join(f.stale_running)}: if its process is gone, "
            "`dumpledger delete --force NAME` records it as abandoned",
        )
    ]


def _restores(f: Facts) -> list[CheckResult]:
    """Shown only when a restore was interrupted, as the anomaly checks only when they apply."""
    if not f.interrupted_restores:
        return []
    return [
        _result(
            "restore",
            Status.WARNING,
            "; ".join(f.interrupted_restores),
            interrupted=list(f.interrupted_restores),
        )
    ]


def _anomalies(f: Facts, limits: Health) -> list[CheckResult]:
    """The newest completed automatic backup against the trailing median of its type."""
    done = [b for b in f.autos if b.status == "completed"]
    if not done:
        return []
    last = done[0]
    before = [b for b in done[1:] if b.backup_type == last.backup_type][:TRAILING]
    if len(before) < MIN_TRAILING:
        return []
    out = []
    median_size = statistics.median(b.raw_size for b in before)
    if median_size and last.raw_size < limits.size_drop_ratio * median_size:
        out.append(
            _result(
                "backup size",
                Status.WARNING,
                f"{last.name} is {size_text(last.raw_size)}, far below the median "
                f"{size_text(int(median_size))} of the last {len(before)} "
                f"{last.backup_type} backups (a truncated dump?)",
                raw_size=last.raw_size,
                median=median_size,
            )
        )
    durations = [b.duration_seconds for b in before if b.duration_seconds is not None]
    if last.duration_seconds is not None and len(durations) >= MIN_TRAILING:
        median_time = statistics.median(durations)
        if median_time and last.duration_seconds > limits.duration_growth_ratio * median_time:
            out.append(
                _result(
                    "backup duration",
                    Status.WARNING,
                    f"{last.name} took {last.duration_seconds:.0f}s, more than "
                    f"{limits.duration_growth_ratio:g}x the median {median_time:.0f}s",
                    duration_seconds=last.duration_seconds,
                    median=median_time,
                )
            )
    return out


def size_text(n: int) -> str:
    """1.2 MB: for messages (cli.output has its own, for the terminal)."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"

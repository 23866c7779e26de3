"""Benchmark: `dumpledger report` over 10,000 backups, with and without the charts extra.

Run by hand (never in the tests); no PostgreSQL needed:

    .venv/bin/python bench/bench_report.py --catalog-dir /tmp/dl-report  # build once, then time
    .venv/bin/python bench/bench_report.py --backups 2000 --rounds 3       # quicker

The synthetic catalog goes through the real append path (hash chain, projections), one
transaction per 5,000 events: four automatic backups a day (every 50th slot missed, every
40th failed), a manual backup a week, a verification of each backup, a drill every third day
(one in ten failed), retention's deletions of the backups older than 60 days (BackupDeleted,
BlobCollected) but for a pinned one each quarter. Every completed backup has a full artifact
of its own (the content changes every other day: the others reuse its blob) and the shared
globals, and metadata as real backups record it (git, versions, row counts of 40 tables).

It times, each the median of --rounds runs of a new process (`python -m cli`), wall and CPU
seconds:
- `report --since <all> --no-check` (all 10,000 backups on the page) with plotly, and with
  plotly blocked (tables only), and with `check`'s verdict;
- `report` (the default: the last 60 days) without and with the verdict;
- `check --no-notify` alone (the database is unreachable: port 1, refused at once);
and, in one process, the parts: reading and folding the catalog, the charts, the HTML.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from catalog import Catalog
from catalog.events import (
    BackupCompleted,
    BackupDeleted,
    BackupFailed,
    BackupPinned,
    BackupStarted,
    BackupVerified,
    BlobCollected,
    Event,
    RestoreTested,
    ScheduleInstalled,
)
from usecases.schedule.jobs import project_id

SLOTS = (("morning", 6), ("noon", 12), ("evening", 18), ("nightly", 23))
# Makes `import plotly` fail in the child process: the page without the charts extra.
BLOCKER = """import sys
class _NoPlotly:
    def find_spec(self, name, path=None, target=None):
        if name == "plotly" or name.startswith("plotly."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _NoPlotly())
"""


class Builder:
    def __init__(self, url: str, backup_dir: Path, now: datetime) -> None:
        self.moments: Iterator[datetime] = iter(())
        self.catalog = Catalog.open(url, clock=lambda: next(self.moments))
        self.batch: list[Event] = []
        self.stamps: list[datetime] = []
        self.total = 0
        self.now = now
        self.project = project_id(backup_dir)
        self.globals = _art("globals", hashlib.sha256(b"globals").hexdigest(), 900, True)

    def add(self, at: datetime, *events: Event) -> None:
        for i, ev in enumerate(events):
            self.batch.append(ev)
            self.stamps.append(at + timedelta(seconds=i * 30))
        if len(self.batch) >= 5000:
            self.flush()

    def flush(self) -> None:
        if self.batch:
            self.moments = iter(self.stamps)
            self.catalog.append_all(self.batch, actor="bench@host via scheduler")
            self.total += len(self.batch)
            self.batch, self.stamps = [], []
            print(f"\r  {self.total} events", end="", file=sys.stderr, flush=True)


def _art(kind: str, digest: str, raw: int, created: bool) -> dict[str, Any]:
    return {"kind": kind, "digest": digest, "codec": "gzip", "raw_size": raw,
            "stored_size": raw // 4, "stored_sha256": digest, "created": created}  # fmt: skip


META = {
    "git": {"commit": "5f1c0ffee0ddba11deadbeef00112233445566aa", "branch": "main"},
    "database": {"host": "127.0.0.1", "port": 5432, "user": "postgres", "name": "postgres"},
    "versions": {"server": "16.4", "pg_dump": "16.4"},
    "row_counts": {f"public.table_{i:02d}": 1000 * i for i in range(40)},
}


def build(b: Builder, n: int) -> None:
    """n backups ending now; slots every 6 hours, a manual one each week."""
    days = n // 4 + 1
    start = (b.now - timedelta(days=days)).replace(minute=0, second=0, microsecond=0)
    slots = [{"backup_type": s, "time": f"{h:02d}:00"} for s, h in SLOTS]
    b.add(start, ScheduleInstalled(backend="cron", slots=slots, units=[], project=b.project))
    made, pinned = 0, 0
    held: list[tuple[datetime, str, str]] = []  # (started, name, digest) still held
    for day in range(days):
        for k, (slot, hour) in enumerate(SLOTS):
            i = day * 4 + k
            at = (start + timedelta(days=day)).replace(hour=hour)
            if made >= n or at > b.now - timedelta(hours=1):
                break
            if i % 50 == 7:
                continue  # missed
            name = f"auto_{slot}_{at:%Y%m%d_%H%M%S}"
            made += 1
            if day % 7 == 3 and k == 1:
                _one(b, at + timedelta(hours=2), f"backup_{at:%Y%m%d}_140000", "manual", day, held)
                made += 1
            if i % 40 == 11:
                b.add(
                    at, _started(name, slot), BackupFailed(backup=name, reason="lost", stage="dump")
                )
                continue
            _one(b, at, name, slot, day, held)
        if day % 3 == 0 and held:
            _drill(b, start + timedelta(days=day, hours=4), held[-1][1], day)
        pinned += _expire(b, start + timedelta(days=day, hours=5), held, day)
    b.flush()
    print(file=sys.stderr)


def _started(name: str, slot: str) -> BackupStarted:
    return BackupStarted(
        backup=name,
        backup_type=slot,
        hostname="db-backup-01",
        pid=1,
        database=META["database"],
        artifacts=["full", "globals"],
        codec="gzip",
    )


def _one(b: Builder, at: datetime, name: str, slot: str, day: int, held: list[Any]) -> None:
    digest = hashlib.sha256(f"{name if slot == 'manual' else day // 2}".encode()).hexdigest()
    fresh = not any(h[2] == digest for h in held[-12:])
    arts = [
        _art("full", digest, 50_000_000 + day * 10_000, fresh),
        {**b.globals, "created": not held},
    ]
    b.add(
        at,
        _started(name, slot),
        BackupCompleted(
            backup=name,
            backup_type=slot,
            artifacts=arts,
            verified=True,
            duration_seconds=40.0,
            metadata=META,
        ),
        BackupVerified(backup=name, ok=True, artifacts=[{"kind": "full", "ok": True}]),
    )
    if slot != "manual":  # retention keeps manual backups
        held.append((at, name, digest))


def _drill(b: Builder, at: datetime, name: str, day: int) -> None:
    ok = day % 30 != 0
    b.add(at, RestoreTested(backup=name, ok=ok, target={"name": "dumpledger_drill"},
                            restore_seconds=30.0 + day % 90, check_seconds=5.0,
                            total_seconds=35.0 + day % 90, tables_checked=40,
                            mismatches=[] if ok else ["public.table_01"]))  # fmt: skip


def _expire(b: Builder, at: datetime, held: list[Any], day: int) -> int:
    """Retention as a daily cleanup: automatic backups older than 60 days go, but for one
    pinned each quarter; their blobs go when nothing holds them."""
    pinned = 0
    while held and held[0][0] < at - timedelta(days=60):
        _, name, digest = held.pop(0)
        if day % 90 == 0 and not pinned:
            b.add(at, BackupPinned(backup=name, reason="quarterly"))
            pinned += 1
            continue
        b.add(at, BackupDeleted(backup=name, reason="older than 60 days", rule="expired"))
        if not any(h[2] == digest for h in held):
            b.add(at, BlobCollected(digest=digest, codec="gzip"))
    return pinned


def timed(argv: list[str], env: dict[str, str], rounds: int) -> dict[str, float]:
    """Medians of `rounds` runs: wall seconds, and CPU seconds (user + system) of the process,
    which the other work on a shared machine disturbs less."""
    walls, cpus = [], []
    for _ in range(rounds):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if done.returncode not in (0, 1, 2) or (done.returncode and "check" not in argv):
            raise SystemExit(f"{argv} failed ({done.returncode}): {done.stderr}")
    return {"wall": round(statistics.median(walls), 3), "cpu": round(statistics.median(cpus), 3)}


def in_process(backup_dir: Path, since: datetime) -> dict[str, float]:
    """The parts, in this process (imports already paid), CPU seconds: read and fold, charts
    (the first call imports plotly), HTML."""
    from usecases.config.settings import load_settings
    from usecases.report.charts import charts
    from usecases.report.gather import ReportRequest, build_report
    from usecases.report.html import Times
    from usecases.report.render import render

    settings = load_settings(backup_dir=backup_dir)
    now = datetime.now(UTC)
    t0 = time.process_time()
    report = build_report(settings, ReportRequest(since=since, check=False), clock=lambda: now)
    t1 = time.process_time()
    times = Times(None)
    drawn = charts(report, times)
    t2 = time.process_time()
    page = render(report, drawn, times)
    t3 = time.process_time()
    return {"read_and_fold": round(t1 - t0, 3), "charts": round(t2 - t1, 3),
            "html": round(t3 - t2, 3), "backups_in_report": len(report.marks),
            "page_bytes": len(page.encode())}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backups", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--catalog-dir", type=Path, help="build here once; reuse it later")
    args = parser.parse_args()
    work = args.catalog_dir or Path(tempfile.mkdtemp(prefix="dumpledger-bench-report-"))
    backup_dir = work / "backups"
    stamp = work / "built.json"
    if not stamp.exists():
        backup_dir.mkdir(parents=True, exist_ok=True)
        config = {"health": {"rpo_hours": 8}, "notifications": {"desktop": False}}
        (backup_dir / "backup-config.json").write_text(json.dumps(config))
        now = datetime.now(UTC).replace(microsecond=0)
        t0 = time.perf_counter()
        b = Builder(f"sqlite:///{backup_dir / 'catalog.db'}", backup_dir, now)
        build(b, args.backups)
        b.catalog.close()
        seconds = round(time.perf_counter() - t0, 1)
        built = {"now": now.isoformat(), "backups": args.backups, "events": b.total}
        stamp.write_text(json.dumps({**built, "build_seconds": seconds}))
    built = json.loads(stamp.read_text())
    since = datetime.fromisoformat(built["now"]) - timedelta(days=built["backups"] // 4 + 5)
    results = {"built": built, **run(work, backup_dir, since, args.rounds)}
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if args.catalog_dir is None:
        shutil.rmtree(work)


def run(work: Path, backup_dir: Path, since: datetime, rounds: int) -> dict[str, Any]:
    blocker = work / "no-charts"
    blocker.mkdir(exist_ok=True)
    (blocker / "sitecustomize.py").write_text(BLOCKER)
    env = {**os.environ, "DUMPLEDGER_BACKUP_DIR": str(backup_dir), "SUPABASE_DB_PORT": "1"}
    plain = {**env, "PYTHONPATH": str(blocker)}
    cli = [sys.executable, "-m", "cli"]
    page = work / "report.html"
    every = ["report", "--since", since.date().isoformat(), "-o", str(page)]
    default = ["report", "-o", str(page)]  # the last 60 days
    out: dict[str, Any] = {"rounds": rounds}
    timed([*cli, "list"], env, 1)  # the settings cache warm, as after any earlier command
    out["all_backups_charts_no_check"] = timed([*cli, *every, "--no-check"], env, rounds)
    out["page_bytes_charts"] = page.stat().st_size
    out["all_backups_tables_only_no_check"] = timed([*cli, *every, "--no-check"], plain, rounds)
    out["page_bytes_tables_only"] = page.stat().st_size
    out["all_backups_charts_with_check"] = timed([*cli, *every], env, rounds)
    out["last_60_days_charts_no_check"] = timed([*cli, *default, "--no-check"], env, rounds)
    out["last_60_days_charts_with_check"] = timed([*cli, *default], env, rounds)
    out["check_alone"] = timed([*cli, "check", "--no-notify"], env, rounds)
    out["python_start"] = timed([sys.executable, "-c", "pass"], env, rounds)
    out["in_process"] = in_process(backup_dir, since)
    return out


if __name__ == "__main__":
    main()

"""Benchmark: retention over a large catalog (100,000 backups, 1,000,000 events).

Run by hand (never in the tests); no PostgreSQL needed:

    .venv/bin/python bench/bench_retention.py                  # 100k backups, 1M events
    .venv/bin/python bench/bench_retention.py --backups 10000  # quicker
    .venv/bin/python bench/bench_retention.py --catalog-dir /tmp/dl-1m  # build once, reuse after

Building 1M events through the real append path takes about 20 minutes on 2 cores; with
`--catalog-dir` the catalog (and the moment it was built for) is kept and later runs only time.

The synthetic catalog is written through the real append path (hash chain, projections): a
backup every 15 minutes (mostly automatic, every 50th manual), each BackupStarted +
BackupCompleted (a full artifact of its own, a globals artifact shared by all) + 8 BackupVerified.
Then it times, on that catalog:
- evaluate(policy, backups, now) alone, and loading the backups from the projection;
- `dumpledger cleanup --dry-run` end to end (a new process);
- `dumpledger list --since 1d` end to end (median of --rounds runs, with the settings cache
  warm as after any earlier command, and with it emptied before each run), and the query
  behind it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from catalog import Catalog
from catalog.events import BackupCompleted, BackupStarted, BackupVerified, Event
from catalog.queries import list_backups
from catalog.read import BackupFilter
from catalog.retention import evaluate
from usecases.config.settings import load_settings
from usecases.context import App
from usecases.retention.cleanup import backup_views

NOW = datetime.now(UTC).replace(microsecond=0)  # replaced by the kept one with --catalog-dir
STEP = timedelta(minutes=15)
VERIFIES = 8


def build(catalog_url: str, n: int) -> int:
    moments: Iterator[datetime] = iter(())
    catalog = Catalog.open(catalog_url, clock=lambda: next(moments))
    globals_digest = hashlib.sha256(b"globals").hexdigest()
    start = NOW - STEP * n
    batch: list[Event] = []
    stamps: list[datetime] = []
    total = 0
    for i in range(n):
        t = start + STEP * i
        name = f"backup_{i:06d}" if i % 50 == 0 else f"auto_nightly_{i:06d}"
        btype = "manual" if i % 50 == 0 else "nightly"
        full = hashlib.sha256(name.encode()).hexdigest()
        arts = [
            {"kind": "full", "digest": full, "codec": "gzip", "raw_size": 9000,
             "stored_size": 2000, "stored_sha256": full, "created": True},
            {"kind": "globals", "digest": globals_digest, "codec": "gzip", "raw_size": 900,
             "stored_size": 300, "stored_sha256": globals_digest, "created": i == 0},
        ]  # fmt: skip
        batch.append(
            BackupStarted(
                backup=name,
                backup_type=btype,
                hostname="bench",
                pid=1,
                database={"name": "postgres"},
                artifacts=["full", "globals"],
                codec="gzip",
            )
        )
        batch.append(
            BackupCompleted(
                backup=name,
                backup_type=btype,
                artifacts=arts,
                verified=True,
                duration_seconds=1.0,
            )
        )
        batch += [
            BackupVerified(backup=name, ok=True, artifacts=[{"kind": "full", "ok": True}])
            for _ in range(VERIFIES)
        ]
        stamps += [t + timedelta(seconds=s) for s in range(2 + VERIFIES)]
        if len(batch) >= 5000 or i == n - 1:
            moments = iter(stamps)
            catalog.append_all(batch, actor="bench@host via cli")
            total += len(batch)
            batch, stamps = [], []
            print(f"\r  {total} events", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    catalog.close()
    return total


def timed(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{argv} failed: {done.stderr}")
    return round(seconds, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backups", type=int, default=100_000)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--catalog-dir", type=Path, help="build here once; reuse it later")
    parser.add_argument("--rounds", type=int, default=5, help="runs of each `list` (median)")
    args = parser.parse_args()
    global NOW
    keep = args.catalog_dir is not None
    work = args.catalog_dir or Path(tempfile.mkdtemp(prefix="dumpledger-bench-retention-"))
    backup_dir = work / "backups"
    url = f"sqlite:///{backup_dir / 'catalog.db'}"
    stamp = work / "built.json"
    try:
        if stamp.exists():
            built = json.loads(stamp.read_text())
            NOW, events, build_s = (
                datetime.fromisoformat(built["now"]),
                built["events"],
                built["build_seconds"],
            )
        else:
            backup_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            t0 = time.perf_counter()
            events = build(url, args.backups)
            build_s = time.perf_counter() - t0
            built = {"now": NOW.isoformat(), "events": events, "build_seconds": build_s}
            stamp.write_text(json.dumps(built))
        settings = load_settings(backup_dir=backup_dir)
        with App.open(settings) as app:
            t0 = time.perf_counter()
            views = backup_views(app)
            load_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            decisions = evaluate(settings.retention, views, NOW)
            eval_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            recent = list_backups(
                app.catalog.engine,
                BackupFilter(since=(NOW - timedelta(days=1)).isoformat().replace("+00:00", "Z")),
            )
            query_s = time.perf_counter() - t0
        cache = Path(tempfile.mkdtemp(prefix="dumpledger-bench-cache-"))
        env = {
            **os.environ,
            "DUMPLEDGER_BACKUP_DIR": str(backup_dir),
            "DUMPLEDGER_CACHE_DIR": str(cache),
        }
        cli = [sys.executable, "-m", "cli"]
        cleanup_s = timed([*cli, "cleanup", "--dry-run", "--json"], env)  # fills the cache
        day_ago = (NOW - timedelta(days=1)).isoformat()  # absolute: the catalog may be kept
        list_cmd = [*cli, "list", "--since", day_ago, "--json"]
        warm = [timed(list_cmd, env) for _ in range(args.rounds)]
        cold = []
        for _ in range(args.rounds):
            shutil.rmtree(cache, ignore_errors=True)
            cold.append(timed(list_cmd, env))
        shutil.rmtree(cache, ignore_errors=True)
        version_s = timed([*cli, "--help"], env)
        res = {
            "backups": args.backups,
            "events": events,
            "build_seconds": round(build_s, 1),
            "removals": sum(1 for d in decisions if not d.keep),
            "load_backups_seconds": round(load_s, 3),
            "evaluate_seconds": round(eval_s, 3),
            "cleanup_dry_run_cli_seconds": cleanup_s,
            "list_since_query_seconds": round(query_s, 3),
            "list_since_rows": len(recent),
            "list_since_cli_seconds": statistics.median(warm),
            "list_since_cli_runs": warm,
            "list_since_cli_cold_cache_seconds": statistics.median(cold),
            "list_since_cli_cold_cache_runs": cold,
            "cli_startup_help_seconds": version_s,
        }
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(res, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Benchmark: collection over a store of many backups of a live database (issue 17 item 2).

Run by hand (never in the tests), on a throwaway cluster it starts itself:

    .venv/bin/python bench/bench_gc.py                              # 200 backups of ~130 MB
    .venv/bin/python bench/bench_gc.py --rows 20000 --backups 30 --keep 10
    .venv/bin/python bench/bench_gc.py --json /tmp/gc.json

The workload is bench_churn.py's: its realistic database, and a 6-hour slice of application
writes between two backups. Phase 1 takes N automatic backups (`dumpledger backup --type
nightly`, real processes; retention keeps them all, so nothing is collected but the counts of
new manifests). Phase 2 measures real processes, each with its seconds and peak RSS (wait4):
- `cleanup --dry-run` keeping the newest K backups: what it says it frees, per kind;
- `cleanup` keeping the newest K: what it freed (equal, or the benchmark fails), the packs
  deleted, repacked and written, the store before and after;
- `cleanup` again with nothing to do (the steady cost of an automatic backup's cleanup);
- R more rounds of writes + backup, K kept: one backup in and one out each time, the cleanup
  inside the backup process (compare with phase 1's backups, which removed nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_backup import du
from bench_churn import CHURN, ROOT, emit, setup, throwaway_cluster

from pgtools.cluster import Cluster


def files_in(path: Path, pattern: str) -> int:
    return sum(1 for _ in path.glob(pattern))


class GcBench:
    def __init__(self, cluster: Cluster, work: Path) -> None:
        self.cluster = cluster
        self.bdir = work / "backups"
        self.bdir.mkdir()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("PG", "SUPABASE_"))},
            **cluster.env(dbname="churn"),
            "SUPABASE_DB_HOST": str(cluster.socket_dir),
            "SUPABASE_DB_PORT": str(cluster.port),
            "SUPABASE_DB_USER": cluster.superuser,
            "SUPABASE_DB_NAME": "churn",
            "DUMPLEDGER_PG_BINDIR": str(cluster.bindir),
            "DUMPLEDGER_CACHE_DIR": str(work / "settings-cache"),
            "DUMPLEDGER_BACKUP_DIR": str(self.bdir),
        }

    def retention(self, auto: dict[str, Any]) -> None:
        config = {"retention": {"auto": auto, "min_verified": 1}}
        (self.bdir / "backup-config.json").write_text(json.dumps(config))

    def dumpledger(self, *args: str) -> tuple[dict[str, float], str]:
        out = self.bdir.parent / "out.json"
        argv = [sys.executable, "-m", "cli", *args]
        with out.open("w") as fh:
            run = measure_to(argv, self.env, fh)
        return run, out.read_text()

    def store(self) -> dict[str, int]:
        store = self.bdir / "store"
        return {
            "bytes": du(store),
            "packs": files_in(store, "packs/??/*.pack"),
            "manifests": files_in(store, "manifests/??/*"),
            "index_bytes": sum(p.stat().st_size for p in store.glob("index.sqlite*")),
        }

    def backup(self) -> dict[str, float]:
        self.cluster.psql(CHURN, dbname="churn")
        run, _ = self.dumpledger("backup", "--type", "nightly")
        return run


def measure_to(argv: list[str], env: dict[str, str], stdout: Any) -> dict[str, float]:
    """seconds and peak RSS of a process whose stdout goes to `stdout`."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=stdout, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv} failed: {err}")
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def run(args: argparse.Namespace, cluster: Cluster, work: Path) -> dict[str, Any]:
    raw = setup(cluster, args.rows)
    print(f"plain dump {raw / 2**20:.1f} MiB", flush=True)
    bench = GcBench(cluster, work)
    bench.retention({"forever": True})
    first: list[dict[str, float]] = []
    for n in range(args.backups):
        first.append(bench.backup() if n else bench.dumpledger("backup", "--type", "nightly")[0])
        if n % 20 == 0 or n == args.backups - 1:
            print(f"backup {n + 1}/{args.backups}: {first[-1]} store {bench.store()}", flush=True)
    before = bench.store()
    if args.stop_before_cleanup:
        shutil.copytree(bench.bdir, args.stop_before_cleanup)
    bench.retention({"keep_last": args.keep})
    dry_run, dry_out = bench.dumpledger("cleanup", "--dry-run", "--json")
    dry = json.loads(dry_out)
    real_run, real_out = bench.dumpledger("cleanup", "--json")
    real = json.loads(real_out)
    if dry["freed_bytes"] != real["freed_bytes"]:
        raise SystemExit(f"dry run {dry['freed_bytes']} != real run {real['freed_bytes']}")
    after = bench.store()
    idle_run, _ = bench.dumpledger("cleanup", "--json")
    print(f"cleanup: {real_run}, freed {real['freed']}", flush=True)
    steady = [bench.backup() for _ in range(args.rounds)]
    later = [r["seconds"] for r in first[1:]] or [0.0]
    return {
        "rows": args.rows,
        "plain_dump_mib": round(raw / 2**20, 1),
        "backups": args.backups,
        "kept": args.keep,
        "backup_seconds_median": statistics.median(later),
        "backup_peak_rss_mb": max(r["peak_rss_mb"] for r in first),
        "store_before": before,
        "cleanup_dry_run": {**dry_run, "freed": dry["freed"]["total_bytes"]},
        "cleanup": {
            **real_run,
            "deleted_backups": len(real["deleted"]),
            "freed": {k: v for k, v in real["freed"].items() if not k.startswith("packs_")},
            "packs_deleted": len(real["freed"]["packs_deleted"]),
            "packs_repacked": len(real["freed"]["packs_repacked"]),
            "packs_written": real["freed"]["packs_written"],
        },
        "store_after": after,
        "idle_cleanup": idle_run,
        "steady_backup_with_cleanup_seconds": [r["seconds"] for r in steady],
        "steady_backup_peak_rss_mb": max((r["peak_rss_mb"] for r in steady), default=0),
        "store_end": bench.store(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=175_000, help="~130 MB of plain dump")
    parser.add_argument("--backups", type=int, default=200)
    parser.add_argument("--keep", type=int, default=100, help="backups the cleanup keeps")
    parser.add_argument("--rounds", type=int, default=5, help="backups after the cleanup")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--stop-before-cleanup", type=Path, help="copy the backup dir there")
    args = parser.parse_args()
    with throwaway_cluster("dumpledger-gc-") as (cluster, work):
        result = run(args, cluster, work)
    emit(result, args.json)


if __name__ == "__main__":
    main()

"""Benchmark: `dumpledger catalog verify` over a large catalog.

Run by hand (never in the tests); no PostgreSQL needed:

    .venv/bin/python bench/bench_catalog_verify.py --backups 10000   # 100,000 events

The catalog is bench_retention's synthetic one (each backup: BackupStarted, BackupCompleted,
8 BackupVerified), written through the real append path. Times, in one process: the hash chain,
the fold of the whole log into a scratch in-memory database compared row for row with the
projections, and `verify NAME`'s fold of one backup's events; then `catalog verify` end to end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_retention import build

from catalog import Catalog


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backups", type=int, default=10_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dumpledger-bench-verify-"))
    backup_dir = work / "backups"
    backup_dir.mkdir(mode=0o700)
    url = f"sqlite:///{backup_dir / 'catalog.db'}"
    try:
        events = build(url, args.backups)
        with Catalog.open(url) as cat:
            t0 = time.perf_counter()
            assert cat.verify_chain().ok
            chain_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            assert cat.projection_differences() == []
            fold_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            for i in range(1, 51):
                cat.backup_by_log(f"auto_nightly_{i:06d}")
            one_s = (time.perf_counter() - t0) / 50
        env = {**os.environ, "DUMPLEDGER_BACKUP_DIR": str(backup_dir)}
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "cli", "catalog", "verify"], env=env, check=True)
        cli_s = time.perf_counter() - t0
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res = {
        "backups": args.backups,
        "events": events,
        "chain_seconds": round(chain_s, 2),
        "projections_seconds": round(fold_s, 2),
        "one_backup_by_log_seconds": round(one_s, 4),
        "catalog_verify_cli_seconds": round(cli_s, 2),
    }
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()

"""Benchmark: the hash chain check (Catalog.verify_chain) against the way it was done before
(every row decoded into a Recorded and its payload re-serialised), in one process.

Run by hand (never in the tests), no PostgreSQL needed:

    .venv/bin/python bench/bench_chain.py            # 5,000 backups: 50,000 events
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_retention import build

from catalog import Catalog
from catalog.log import GENESIS_HASH, _check_row


def main() -> None:
    d = Path(tempfile.mkdtemp())
    url = f"sqlite:///{d}/c.db"
    build(url, int(sys.argv[1]) if len(sys.argv) > 1 else 5000)
    cat = Catalog.open(url)
    for _ in range(3):
        t = time.process_time()
        rep = cat.verify_chain()
        new = time.process_time() - t
        t = time.process_time()
        with cat.engine.connect() as conn:
            recs = list(cat._iter_events(conn))
        prev, exp, problems = GENESIS_HASH, 1, []
        for rec in recs:
            problems.extend(_check_row(rec, prev, exp))
            prev, exp = rec.hash, rec.seq + 1
        old = time.process_time() - t
        print(f"events {rep.events} ok {rep.ok} now {new:.2f}s before {old:.2f}s x{old / new:.1f}")


if __name__ == "__main__":
    main()

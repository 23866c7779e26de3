"""Benchmark: the psql meta-command scan that `restore --file` runs over a plain dump.

Run by hand (never in the tests); needs no database:

    .venv/bin/python bench/bench_meta_scan.py                # 200 MB of each shape, 3 rounds
    .venv/bin/python bench/bench_meta_scan.py --mb 50 --rounds 1

Two synthetic plain dumps shaped as pg_dump writes them, in 1 MiB chunks as the restore reads
them: `copy` (the default: DDL, then COPY data blocks) and `inserts` (`--column-inserts`: one
INSERT statement per row, strings with quotes). The scan (usecases.restore.stream.meta_checked)
is compared with SHA-256 over the same bytes, which every restore computes anyway.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from usecases.restore.stream import meta_checked

CHUNK = 1 << 20


def copy_dump(mb: int) -> bytes:
    head = b"SET standard_conforming_strings = on;\nCREATE TABLE public.t (id int, note text);\n"
    rows = b"".join(
        b"%d\tnote with a \\\\backslash and some text %d\n" % (i, i) for i in range(20000)
    )
    block = b"COPY public.t (id, note) FROM stdin;\n" + rows + b"\\.\n\n"
    return head + block * max(1, (mb << 20) // len(block))


def insert_dump(mb: int) -> bytes:
    rows = b"".join(
        b"INSERT INTO public.t (id, note) VALUES (%d, 'it''s row %d (with; parens)');\n" % (i, i)
        for i in range(20000)
    )
    return rows * max(1, (mb << 20) // len(rows))


def chunks(data: bytes) -> Iterator[bytes]:
    for i in range(0, len(data), CHUNK):
        yield data[i : i + CHUNK]


def timed(fn: Callable[[], object], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    for name, data in (("copy", copy_dump(args.mb)), ("inserts", insert_dump(args.mb))):
        mb = len(data) / (1 << 20)
        scan = timed(lambda d=data: sum(len(c) for c in meta_checked(chunks(d), "x")), args.rounds)
        sha = timed(lambda d=data: hashlib.sha256(d).hexdigest(), args.rounds)
        print(
            f"{name:8} {mb:7.0f} MB  scan {scan:6.2f} s ({mb / scan:6.0f} MB/s)  "
            f"sha256 {sha:5.2f} s ({mb / sha:6.0f} MB/s)  scan/sha256 {scan / sha:5.1f}x"
        )


if __name__ == "__main__":
    main()

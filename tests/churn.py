"""Dumps of a table that changes between backups, as a live database's do: for the pack
collection tests (each version's changed rows make new chunks; the oldest versions' chunks
die as later versions edit their rows again)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

ROWS = 6000  # ~530 KB of dump, ~100 chunks
# version -> the rows it edits (every 10th in the range): version 2 edits again every row
# version 1 did (version 1's chunks die with it), version 4 half of them, version 3 other rows;
# the later versions a few rows each.
EDITS = {
    1: range(0, 1500, 10),
    2: range(0, 1500, 10),
    3: range(3000, 3900, 10),
    4: range(0, 750, 10),
    5: range(5000, 5200, 10),
    6: range(5200, 5400, 10),
    7: range(5400, 5600, 10),
}


def churn_dump(version: int) -> bytes:
    """A plain dump (psql restores it) of public.t as it is at `version` (0 to 7)."""
    r = random.Random(7)
    bodies = [r.randbytes(40).hex() for _ in range(ROWS)]
    for v in range(1, version + 1):
        edit = random.Random(1000 + v)
        for row in EDITS[v]:
            bodies[row] = f"v{v} {edit.randbytes(40).hex()}"
    lines = [
        "SET client_encoding = 'UTF8';",
        "CREATE TABLE public.t (id integer PRIMARY KEY, body text NOT NULL);",
        "COPY public.t (id, body) FROM stdin;",
        *(f"{i}\t{body}" for i, body in enumerate(bodies)),
        "\\.",
        "",
        "--",
        "-- PostgreSQL database dump complete",
        "--",
        "",
    ]
    return "\n".join(lines).encode()


ROW_COUNTS = {"public.t": ROWS}


class Clock:
    """A clock a test moves: App.open(settings, clock=Clock(now))."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def fabricate_churn(app: Any, clock: Clock, versions: range = range(8)) -> list[str]:
    """Automatic backups of `versions` (0..7), ten days apart, the newest 10 days before the
    clock's time (a cleanup keeping 45 days removes versions 0 to 3)."""
    from tests.support import fabricate_backup

    now, names = clock.now, []
    for v in versions:
        clock.now = now - timedelta(days=80 - 10 * v)
        name = f"auto_nightly_{clock.now:%Y%m%d}_000000"
        fabricate_backup(app, name, churn_dump(v), row_counts=ROW_COUNTS, backup_type="nightly")
        names.append(name)
    clock.now = now
    return names

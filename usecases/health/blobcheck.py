"""The `blobs` check of `dumpledger check`: what the store holds that no catalog references,
and the catalogs it is shared with. Pure, as ``usecases.health.check`` is."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

STALE_DAYS = 30.0  # another catalog's roots unchanged this long: perhaps it is gone


@dataclass(frozen=True, slots=True, kw_only=True)
class BlobsFact:
    error: str | None = None
    others: tuple[tuple[str, str, float], ...] = ()  # id, whose (host:backup dir), days idle
    replaced: tuple[str, ...] = ()  # other catalogs registered from this backup directory
    collectable: tuple[int, int] = (0, 0)  # (blobs, bytes) this catalog's cleanup removes
    others_orphans: tuple[int, int] = (0, 0)  # another catalog's cleanup removes them
    unclaimed: tuple[int, int] = (0, 0)  # nobody's: from before roots, or forgotten


def blobs_check(f: BlobsFact, size: Callable[[int], str]) -> tuple[bool, str]:
    """(healthy, message)."""
    if f.error is not None:
        return False, f.error
    problems = []
    for other in f.replaced:
        problems.append(
            f"catalog {other} was registered from this backup directory too: this directory's "
            "catalog was replaced or lost; if that one is gone, `dumpledger catalog rebuild "
            f"--from-store` brings its backups back, then `dumpledger store forget-catalog {other}`"
        )
    for other, whose, idle in f.others:
        if idle > STALE_DAYS and other not in f.replaced:
            problems.append(
                f"catalog {other} ({whose}) has not used this store for {idle:.0f} days; if it "
                f"is gone: `dumpledger store forget-catalog {other}`"
            )
    n, b = f.unclaimed
    if n:
        problems.append(
            f"{n} blob(s) ({size(b)}) no catalog references or claims (written before this "
            "store kept roots, or by a forgotten catalog) are kept; once every catalog using "
            "this store has run with this version, `dumpledger store adopt` lets cleanup "
            "remove them"
        )
    n, b = f.collectable
    if n:
        problems.append(
            f"{n} unreferenced blob(s) ({size(b)}): the next `dumpledger cleanup` removes them"
        )
    if problems:
        return False, "; ".join(problems)
    message = "every blob in the store is referenced"
    n, b = f.others_orphans
    if n:
        message += f"; {n} unreferenced blob(s) ({size(b)}) wait for another catalog's cleanup"
    if f.others:
        message += f"; store shared with {len(f.others)} other catalog(s)"
    return True, message

"""Sizes and deduplication, from what the catalog records (pure).

A backup's artifacts say what each added to the store: a chunked artifact its `added_bytes`
(new chunks and manifest), a whole blob its stored size when it was newly written (`created`);
the rest of the backup's logical size was already there. The store's total over time adds
those and subtracts each collected artifact's (for a chunked one, the chunks it added: an
estimate, since later backups may share them).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from catalog.read import Query
from catalog.reporting import artifact_refs, blob_sizes

if TYPE_CHECKING:
    from usecases.config.settings import Settings

BlobKey = tuple[str, str]  # digest, codec


class StorePoint(NamedTuple):
    at: datetime
    total: int  # stored bytes of every blob the catalog knows, after this change
    change: int
    why: str  # the backup that added bytes, or "collected <digest>"


def newly_stored(artifacts: Iterable[Mapping[str, Any]]) -> int:
    """Stored bytes the backup wrote that were not in the store before it: a chunked
    artifact's `added_bytes` (its new chunks and manifest); a whole blob's size if new."""
    return sum(_added(a) for a in artifacts)


def _added(art: Mapping[str, Any]) -> int:
    if "added_bytes" in art:
        return int(art.get("added_bytes") or 0)
    return int(art.get("stored_size") or 0) if art.get("created") else 0


class StoreLedger:
    """Folds completions and collections, in log order, into the store's total over time:
    the blobs projection's sum of stored sizes, as it stood after each event. A blob counts
    from the first backup that references it (as the projection inserts its row) until it is
    collected."""

    def __init__(self) -> None:
        self.sizes: dict[BlobKey, int] = {}
        self.total = 0
        self.points: list[StorePoint] = []

    def added(self, at: datetime, backup: str, artifacts: Iterable[Mapping[str, Any]]) -> None:
        change = 0
        for art in artifacts:
            key = (str(art.get("digest")), str(art.get("codec")))
            if key not in self.sizes:  # a chunked artifact counts the chunks it added
                added = "added_bytes" in art
                self.sizes[key] = _added(art) if added else int(art.get("stored_size") or 0)
                change += self.sizes[key]
        if change:
            self._move(at, change, backup)

    def collected(self, at: datetime, digest: str, codec: str) -> None:
        size = self.sizes.pop((digest, codec), None)
        if size:  # an orphan (no backup recorded it) was never counted
            self._move(at, -size, f"collected {digest[:12]}")

    def _move(self, at: datetime, change: int, why: str) -> None:
        self.total += change
        self.points.append(StorePoint(at=at, total=self.total, change=change, why=why))

    def series(self, since: datetime) -> list[StorePoint]:
        """The points from `since` on, led by the total the store had then."""
        before = [p for p in self.points if p.at < since]
        start = before[-1].total if before else 0
        later = [p for p in self.points if p.at >= since]
        return [StorePoint(at=since, total=start, change=0, why="start of the period"), *later]


def bytes_freed(
    removed: Collection[str],
    refs: Sequence[tuple[str, str, str]],
    blobs: Sequence[tuple[str, str, int, int]],
) -> int:
    """Stored bytes that removing `removed` would free: the blobs whose every reference is an
    artifact of theirs (as catalog.queries.bytes_freed_without, on rows already read)."""
    gone = set(removed)
    held = Counter((digest, codec) for name, digest, codec in refs if name in gone)
    return sum(
        size for digest, codec, size, refcount in blobs if 0 < refcount <= held[(digest, codec)]
    )


def freed_by_cleanup(settings: Settings, query: Query, removed: Collection[str]) -> int:
    """What `cleanup --dry-run` says removing `removed` frees: the store's own plan
    (usecases.storage.plan) for blobs and manifests, then the packs those leave unused or
    worth repacking (store/chunked/gc.py), asked with the catalog rows read here. Read-only."""
    from store import Codec, LocalStore, Ref
    from usecases.storage.plan import garbage_without

    store = LocalStore(settings.store_dir)
    held = {digest for digest, _, _ in store.iter_blobs()}
    gone = set(removed)
    per = Counter((d, c) for name, d, c in artifact_refs(query) if name in gone)
    rows = [(d, c, n) for d, c, _, n in blob_sizes(query) if d in held]
    going = {Ref(d, Codec(c)) for d, c, n in rows if 0 < n <= per[(d, c)]}
    first = list(query("SELECT id FROM events WHERE seq = 1", {}))
    owner = str(first[0]["id"]) if first else None
    collected = garbage_without(store, owner, rows, going)
    packs = store.plan_packs(
        settings.repack_threshold, excluding={Ref(c.digest, Codec(c.codec)) for c in collected}
    )
    return sum(c.stored_size for c in collected) + packs.freed_bytes

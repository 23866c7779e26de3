"""What a collection would remove, computed from rows already read: the part of collection
that needs no SQLAlchemy (the report reads the catalog with sqlite3 and asks this too)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from store import BlobStore, Codec, CollectionPlan, Ref


@dataclass(frozen=True, slots=True, kw_only=True)
class Collected:
    digest: str
    codec: str
    stored_size: int  # bytes freed: the file's size
    orphan: bool  # written by this catalog and never referenced (a failed backup's)


def garbage_without(
    store: BlobStore,
    owner: str | None,
    rows: Collection[tuple[str, str, int]],
    going: Collection[Ref],
) -> list[Collected]:
    """What a collection by `owner` removes once the blobs `going` are released: `rows` are
    the catalog's blobs (digest, codec, refcount). Read-only; `cleanup --dry-run` and the
    report (which reads the catalog its own way) both ask this."""
    known = {Ref(d, Codec(c)) for d, c, _ in rows}
    referenced = {Ref(d, Codec(c)) for d, c, n in rows if n > 0} - set(going)
    plan = store.plan_collection(owner, known=known, releasing=known - referenced)
    return garbage_of(plan, known)


def garbage_of(plan: CollectionPlan, known: set[Ref]) -> list[Collected]:
    return [
        Collected(
            digest=s.ref.digest,
            codec=s.ref.codec.value,
            stored_size=s.size,
            orphan=s.ref not in known,
        )
        for s in plan.garbage
    ]

"""Blob collection: remove what no catalog sharing the store references, and only what this
catalog may remove (store.roots); a dry run plans exactly what a real run removes.

Under the store's exclusive lock (no backup, restore or drill holds blobs meanwhile): register
if new, publish this catalog's roots as its catalog says they are now, plan, then for each blob
append BlobCollected (re-checked under the catalog's write lock) and remove the file.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field, replace

from catalog.queries import blobs_freed_without
from store import Codec, CollectionPlan, Ref
from usecases.context import App
from usecases.storage.roots import CatalogRefs, attach, catalog_refs


@dataclass(frozen=True, slots=True, kw_only=True)
class Collected:
    digest: str
    codec: str
    stored_size: int  # bytes freed: the file's size (0 when it was gone already)
    orphan: bool  # written by this catalog and never referenced (a failed backup's)


@dataclass(slots=True, kw_only=True)
class CollectReport:
    collected: list[Collected] = field(default_factory=list)
    postponed: bool = False  # a backup was writing: the next cleanup collects
    kept_for_others: int = 0  # released here, still referenced by another catalog
    files_not_removed: list[str] = field(default_factory=list)  # "path: reason"

    @property
    def freed_bytes(self) -> int:
        return sum(c.stored_size for c in self.collected)


def collect_blobs(app: App, *, wait: float = 5.0) -> CollectReport:
    """Remove the blobs no catalog references, never one a running backup may be about to
    use, never one another catalog wrote or references."""
    report = CollectReport()
    with app.store.collecting(wait=wait) as alone:
        if not alone:
            report.postponed = True
            return report
        owner = attach(app)
        if owner is not None:
            refs = catalog_refs(app)
            app.store.set_roots(owner, refs.referenced)
            candidates, plan = _candidates(app, owner, refs)
            for item in candidates:
                # Re-checked under the catalog's write lock; then the file goes.
                if app.catalog.collect_blob(item.digest, item.codec, actor=app.actor) is None:
                    continue
                removed = app.store.delete(item.digest, Codec(item.codec))
                report.collected.append(item if removed else replace(item, stored_size=0))
            report.kept_for_others = len(plan.kept_for_others)
        app.store.remove_stale_temp_files()
    return report


def would_collect(app: App, removed: Collection[str]) -> list[Collected]:
    """What collection would remove once the backups `removed` are deleted: read-only."""
    owner = app.catalog.identity()
    refs = catalog_refs(app)
    going = {Ref(d, Codec(c)) for d, c in blobs_freed_without(app.catalog.engine, removed)}
    after = CatalogRefs(known=refs.known, referenced=refs.referenced - going)
    return _candidates(app, owner, after)[0]


def _candidates(
    app: App, owner: str | None, refs: CatalogRefs
) -> tuple[list[Collected], CollectionPlan]:
    """The plan's garbage, plus released blobs whose file is gone already (their record goes,
    0 bytes freed)."""
    released = refs.released
    plan = app.store.plan_collection(owner, known=refs.known, releasing=released)
    out = [
        Collected(
            digest=s.ref.digest,
            codec=s.ref.codec.value,
            stored_size=s.size,
            orphan=s.ref not in refs.known,
        )
        for s in plan.garbage
    ]
    present = {s.ref for s in (*plan.garbage, *plan.kept_for_others)}
    for ref in sorted(released - present):
        if not app.store.exists(ref.digest, ref.codec):
            out.append(
                Collected(digest=ref.digest, codec=ref.codec.value, stored_size=0, orphan=False)
            )
    return out, plan

"""Blob collection: remove what no catalog sharing the store references, and only what this
catalog may remove (store.roots); a dry run plans exactly what a real run removes.

Under the store's exclusive lock (no backup, restore or drill holds blobs meanwhile): register
if new, publish this catalog's roots as its catalog says they are now, plan, then for each blob
append BlobCollected (re-checked under the catalog's write lock) and remove the file.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from catalog.queries import blob_refs, blobs_freed_without
from store import Codec, Ref
from usecases.context import App
from usecases.storage.plan import Collected, garbage_of, garbage_without
from usecases.storage.roots import attach, catalog_refs


@dataclass(slots=True, kw_only=True)
class CollectReport:
    collected: list[Collected] = field(default_factory=list)
    postponed: bool = False  # a backup was writing: the next cleanup collects
    kept_for_others: int = 0  # released here, still referenced by another catalog
    # Released blobs whose file was not in the store (gone already): their records go.
    records_only: int = 0
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
            plan = app.store.plan_collection(owner, known=refs.known, releasing=refs.released)
            for item in garbage_of(plan, refs.known):
                # Re-checked under the catalog's write lock; then the file goes.
                if app.catalog.collect_blob(item.digest, item.codec, actor=app.actor) is None:
                    continue
                if app.store.delete(item.digest, Codec(item.codec)):
                    report.collected.append(item)
            report.kept_for_others = len(plan.kept_for_others)
            there = {s.ref for s in (*plan.garbage, *plan.kept_for_others)}
            for ref in sorted(refs.released - there):  # no file: only the record goes
                if app.catalog.collect_blob(ref.digest, ref.codec.value, actor=app.actor):
                    report.records_only += 1
        app.store.remove_stale_temp_files()
    return report


def would_collect(app: App, removed: Collection[str]) -> list[Collected]:
    """What collection would remove once the backups `removed` are deleted: read-only. Only
    the blobs the store holds matter, so the catalog is asked about those alone (a catalog of
    100,000 backups over a store of a few hundred blobs costs a few hundred rows)."""
    held = {digest for digest, _, _ in app.store.iter_blobs()}
    engine = app.catalog.engine
    rows = blob_refs(engine, among=held)
    going = {Ref(d, Codec(c)) for d, c in blobs_freed_without(engine, removed, among=held)}
    return garbage_without(app.store, app.catalog.identity(), rows, going)

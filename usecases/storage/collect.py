"""Collection: remove what no catalog sharing the store references, and only what this catalog
may remove (store.roots); then the packs no remaining artifact uses, and repack the mostly
dead and small ones (store/chunked/gc.py). A dry run (usecases.storage.forecast) plans exactly
what a real run removes.

Under the store's exclusive lock (no backup, restore, drill, read or copy holds the store
meanwhile): register if new, publish this catalog's roots as its catalog says they are now,
plan, then for each blob or manifest append BlobCollected (re-checked under the catalog's write
lock) and remove the file; then collect the packs, from the manifests still present.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from store import Codec, PackPlan, PackReport
from usecases.context import App
from usecases.storage.plan import Collected, garbage_of
from usecases.storage.roots import attach, catalog_refs


@dataclass(slots=True, kw_only=True)
class CollectReport:
    collected: list[Collected] = field(default_factory=list)
    postponed: bool = False  # a backup was writing: the next cleanup collects
    kept_for_others: int = 0  # released here, still referenced by another catalog
    # Released blobs whose file was not in the store (gone already): their records go.
    records_only: int = 0
    files_not_removed: list[str] = field(default_factory=list)  # "path: reason"
    pack_plan: PackPlan = field(default_factory=PackPlan)
    packs: PackReport = field(default_factory=PackReport)

    @property
    def artifact_bytes(self) -> int:
        return sum(c.stored_size for c in self.collected)

    @property
    def freed_bytes(self) -> int:
        return self.artifact_bytes + self.packs.freed_bytes


def collect_blobs(app: App, *, wait: float = 5.0) -> CollectReport:
    """Remove the blobs no catalog references, never one a running backup may be about to
    use, never one another catalog wrote or references; then the packs (never a chunk a
    manifest still present uses, whoever owns it)."""
    report = CollectReport()
    with app.store.collecting(wait=wait) as alone:
        if not alone:
            report.postponed = True
            return report
        owner = attach(app)
        if owner is not None:
            _collect_artifacts(app, owner, report)
        report.pack_plan, report.packs = app.store.collect_packs(app.settings.repack_threshold)
        app.store.remove_stale_temp_files()
    return report


def _collect_artifacts(app: App, owner: str, report: CollectReport) -> None:
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

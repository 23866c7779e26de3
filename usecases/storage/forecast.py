"""What collection would free, read only: a cleanup's dry run, `retention explain` and
`retention simulate`. The same plans the real run makes (store.roots for blobs and
manifests, store/chunked/gc.py for packs) over the same store, so the total is exactly what
the real run frees; and, per backup, the bytes only that backup's removal frees.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from catalog.queries import blob_refs, blobs_freed_without
from store import Codec, PackPlan, Ref
from usecases.context import App
from usecases.storage.plan import Collected, garbage_of


@dataclass(slots=True, kw_only=True)
class Forecast:
    collected: list[Collected] = field(default_factory=list)  # blobs and manifests
    packs: PackPlan = field(default_factory=PackPlan)
    # backup -> the stored bytes only it holds: its blobs and manifests no other backup (of
    # any catalog sharing the store) uses, and the chunks only those use
    per_backup: dict[str, int] = field(default_factory=dict)

    @property
    def artifact_bytes(self) -> int:
        return sum(c.stored_size for c in self.collected)

    @property
    def freed_bytes(self) -> int:
        return self.artifact_bytes + self.packs.freed_bytes


def forecast(
    app: App, removed: Collection[str], *, per_backup: Collection[str] | None = None
) -> Forecast:
    """What collection frees once the backups `removed` are deleted, and what each backup of
    `per_backup` (default: `removed`) alone holds. Only the blobs the store holds matter, so
    the catalog is asked about those alone (a catalog of 100,000 backups over a store of a
    few hundred blobs costs a few hundred rows)."""
    held = {digest for digest, _, _ in app.store.iter_blobs()}
    engine = app.catalog.engine
    rows = blob_refs(engine, among=held)
    known = {Ref(d, Codec(c)) for d, c, _ in rows}
    referenced = {Ref(d, Codec(c)) for d, c, n in rows if n > 0}
    released = known - referenced
    ident = app.catalog.identity()
    going = _freed_without(app, removed, held)
    plan = app.store.plan_collection(ident, known=known, releasing=released | going)
    collected = garbage_of(plan, known)
    names = sorted(set(removed if per_backup is None else per_backup))
    own = {name: _freed_without(app, [name], held) for name in names}
    alone = {r for refs in own.values() for r in refs}
    solo = app.store.plan_collection(ident, known=known, releasing=released | alone)
    sizes = {s.ref: s.size for s in solo.garbage if s.ref in alone}  # held by no one else
    groups = {ref: i for i, name in enumerate(names) for ref in own[name] if ref in sizes}
    packs = app.store.plan_packs(
        app.settings.repack_threshold,
        excluding={Ref(c.digest, Codec(c.codec)) for c in collected},
        groups=groups,
    )
    per = {
        name: sum(sizes[r] for r in own[name] if r in sizes) + packs.group_bytes.get(i, 0)
        for i, name in enumerate(names)
    }
    return Forecast(collected=collected, packs=packs, per_backup=per)


def _freed_without(app: App, names: Collection[str], held: Collection[str]) -> set[Ref]:
    return {
        Ref(d, Codec(c))
        for d, c in blobs_freed_without(app.catalog.engine, list(names), among=held)
    }

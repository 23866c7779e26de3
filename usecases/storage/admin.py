"""`store status|forget-catalog|adopt`: the catalogs a store knows, what nobody references,
and the two decisions only a person can take (that a catalog is gone; that the blobs nobody
claims may go)."""

from __future__ import annotations

import socket
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from catalog.events import StoreBlobsAdopted, StoreCatalogForgotten
from store import CollectionPlan, OwnerInfo
from usecases.context import App
from usecases.errors import BadInput, UseCaseError
from usecases.storage.roots import attach, catalog_refs

WAIT_SECONDS = 5.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Pile:
    """Some blobs, counted."""

    count: int = 0
    bytes: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class CatalogEntry:
    id: str
    label: dict[str, str]
    refs: int
    updated_at: float
    this: bool
    same_backup_dir: bool  # another catalog registered from this backup directory


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreStatus:
    store: str
    this: str | None  # this catalog's id (None while it is empty)
    registered: bool
    catalogs: list[CatalogEntry] = field(default_factory=list)
    collectable: Pile = Pile()  # this catalog's next cleanup removes them
    others_orphans: Pile = Pile()  # another catalog's next cleanup removes them
    unowned: Pile = Pile()  # in no roots, written by no registered catalog: `store adopt`
    legacy_kept: Pile = Pile()  # held only by the roots from before the upgrade

    @property
    def others(self) -> list[CatalogEntry]:
        return [c for c in self.catalogs if not c.this]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _pile(items: list[Any]) -> Pile:
    return Pile(count=len(items), bytes=sum(s.size for s in items))


def store_status(app: App) -> StoreStatus:
    """Read-only: what the store holds for whom."""
    ident = app.catalog.identity()
    refs = catalog_refs(app)
    plan: CollectionPlan = app.store.plan_collection(
        ident, known=refs.known, releasing=refs.released
    )
    here = (str(app.settings.backup_dir), socket.gethostname())
    return StoreStatus(
        store=str(app.settings.store_dir),
        this=ident,
        registered=ident is not None and app.store.registered(ident),
        catalogs=[_entry(o, ident, here) for o in app.store.owners()],
        collectable=_pile(plan.garbage),
        others_orphans=_pile(plan.others_orphans),
        unowned=_pile(plan.unowned),
        legacy_kept=_pile(plan.legacy_kept),
    )


def _entry(o: OwnerInfo, ident: str | None, here: tuple[str, str]) -> CatalogEntry:
    this = o.id == ident
    there = (o.label.get("backup_dir", ""), o.label.get("host", ""))
    return CatalogEntry(
        id=o.id,
        label=o.label,
        refs=o.refs,
        updated_at=o.updated_at,
        this=this,
        same_backup_dir=not this and there == here,
    )


def forget_catalog(app: App, catalog_id: str) -> CatalogEntry:
    """Remove another catalog's roots from the store: that catalog is gone (its catalog.db
    lost and rebuilt, or a catalog URL no longer used). What only it referenced is then
    collected by the catalogs that know it, or kept until adopted."""
    status = store_status(app)
    entry = next((c for c in status.catalogs if c.id == catalog_id), None)
    if entry is None:
        known = ", ".join(c.id for c in status.catalogs) or "none"
        raise BadInput(f"no catalog {catalog_id!r} is registered in {status.store} ({known})")
    if entry.this:
        raise BadInput(
            f"{catalog_id} is this catalog; run `dumpledger store forget-catalog` from "
            "another backup directory, or not at all"
        )
    with app.store.collecting(wait=WAIT_SECONDS) as alone:
        if not alone:
            raise UseCaseError("a backup is writing to the store; run this again when it is done")
        app.catalog.append(
            StoreCatalogForgotten(
                catalog=catalog_id, store=status.store, label=entry.label, refs=entry.refs
            ),
            actor=app.actor,
        )
        app.store.forget(catalog_id)
    return entry


@dataclass(frozen=True, slots=True, kw_only=True)
class Adopted:
    count: int
    bytes: int
    legacy_released: int


def adopt(app: App) -> Adopted:
    """This catalog may collect every blob no registered catalog references or wrote (from
    before roots, or a forgotten catalog's), and the legacy roots go. The next cleanup
    removes what no catalog references."""
    with app.store.collecting(wait=WAIT_SECONDS) as alone:
        if not alone:
            raise UseCaseError("a backup is writing to the store; run this again when it is done")
        owner = attach(app)
        if owner is None:
            raise BadInput(
                "this catalog is empty: run `dumpledger store adopt` from a catalog that has "
                "backups (its cleanup is what removes the adopted blobs)"
            )
        result = app.store.adopt(owner)
        done = Adopted(
            count=len(result.adopted),
            bytes=sum(s.size for s in result.adopted),
            legacy_released=result.legacy_released,
        )
        app.catalog.append(
            StoreBlobsAdopted(
                store=str(app.settings.store_dir),
                digests=[s.ref.digest for s in result.adopted],
                bytes=done.bytes,
                legacy_released=done.legacy_released,
            ),
            actor=app.actor,
        )
    return done


def age_days(entry: CatalogEntry, now: float | None = None) -> float:
    return max(0.0, ((now or time.time()) - entry.updated_at) / 86400)

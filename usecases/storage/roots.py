"""This catalog in its store: registered from its first write, its roots published before
anything references a blob (store.roots says what this protects)."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from catalog.queries import blob_refs
from store import Codec, Ref
from usecases.context import App

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class CatalogRefs:
    """What the catalog says of the blobs: every one it knows, and those it references."""

    known: set[Ref]
    referenced: set[Ref]

    @property
    def released(self) -> set[Ref]:
        return self.known - self.referenced


def catalog_refs(app: App) -> CatalogRefs:
    known, referenced = set(), set()
    for digest, codec, refcount in blob_refs(app.catalog.engine):
        ref = Ref(digest, Codec(codec))
        known.add(ref)
        if refcount > 0:
            referenced.add(ref)
    return CatalogRefs(known=known, referenced=referenced)


def label(app: App) -> dict[str, str]:
    """How `check` and `store status` name this catalog to a person (never a password)."""
    from sqlalchemy.engine import make_url

    from catalog.db import normalize_url

    url = make_url(normalize_url(app.settings.effective_catalog_url()))
    return {
        "host": socket.gethostname(),
        "backup_dir": str(app.settings.backup_dir),
        "catalog": url.render_as_string(hide_password=True),
    }


def attach(app: App) -> str | None:
    """This catalog's id in the store, registering it there on first use with every blob it
    references as its roots; from then on the store journals the blobs this process writes
    as this catalog's. None for an empty catalog: it has no id yet (its first event gives
    it one) and references nothing."""
    ident = app.catalog.identity()
    if ident is None:
        return None
    if not app.store.registered(ident):
        refs = catalog_refs(app)
        app.store.register(ident, label=label(app), known=refs.known, referenced=refs.referenced)
    app.store.write_as(ident)
    return ident


def referencing(app: App, refs: Iterable[Ref], append: Callable[[], T]) -> T:
    """Hold `refs` in this catalog's roots, then `append` the event that references them.
    An empty catalog has no id to hold them under yet: its first event goes first, and the
    registration that follows holds every blob the catalog then references (the caller holds
    the store's shared lock throughout, so nothing is collected in between)."""
    owner = attach(app)
    if owner is None:
        done = append()
        attach(app)
        return done
    app.store.add_roots(owner, refs)
    return append()


def refs_of(artifacts: Iterable[dict[str, Any]]) -> list[Ref]:
    return [Ref(a["digest"], Codec(a["codec"])) for a in artifacts]

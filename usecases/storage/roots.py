"""This catalog in its store: registered from its first write, its roots published before
anything references a blob, its repairs recorded (store.roots says what this protects)."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from catalog.events import BlobRepaired
from catalog.queries import backups_with_blob, blob_refs, get_backup
from store import BlobInfo, Codec, Ref
from usecases.backup.views import write_backup_views
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


def record_repairs(app: App, infos: list[BlobInfo], backup: str | None) -> list[str]:
    """Append BlobRepaired for each put that replaced a damaged copy (taking them out of
    `infos`, so a second call records nothing twice); then rewrite the metadata files of the
    backups that share the blob (their stored sizes changed)."""
    shared: set[str] = set()
    while infos:
        info = infos.pop(0)
        if info.repaired_from is None:
            continue
        app.catalog.append(
            BlobRepaired(
                digest=info.digest,
                codec=info.codec.value,
                stored_sha256=info.stored_sha256,
                stored_size=info.stored_size,
                previous_sha256=info.repaired_from,
                reason=info.repair_reason or "failed verification",
                backup=backup,
            ),
            actor=app.actor,
        )
        shared.update(backups_with_blob(app.catalog.engine, info.digest, info.codec.value))
    for name in sorted(shared - {backup}):
        b = get_backup(app.catalog.engine, name)
        if b["status"] == "completed":
            write_backup_views(app.settings.database_dir, b, app.settings.retention)
    return sorted(shared)

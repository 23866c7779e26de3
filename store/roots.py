"""Who may collect what in a store several catalogs share: roots, journals, the plan.

Each owner (a catalog, named by its id) publishes its roots in the store: the artifacts it
references. It also keeps a journal of the blobs it wrote. A blob may be collected by an owner
only when no other owner's roots (nor the legacy roots, below) hold it, and the owner either
releases it (its catalog referenced it and no longer does) or wrote it and never referenced it
(an orphan of a failed or killed backup). A blob nobody wrote or referenced is never collected
on anyone's word: it waits until a person adopts it.

Legacy roots: a store written before roots existed holds blobs nobody journaled. When the
first owner registers there and some blob present is unknown to its catalog (another catalog
may use the store and not have registered yet), every blob present is held by the legacy
roots until a person runs `store adopt`.

Pure: this module computes; store.rootdir (files) and store.memory (dicts) keep the state.
When chunks replace whole-dump blobs, a root stays an artifact; the plan then walks artifacts
to their chunks (reachability from every owner's roots, as restic's prune).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Container, Iterable, Mapping, Set
from dataclasses import dataclass, field
from typing import NamedTuple

from store.codecs import Codec
from store.errors import StoreError

DIGEST = re.compile(r"^[0-9a-f]{64}$")
CODECS = frozenset(c.value for c in Codec)
OWNER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
LEGACY = "legacy"  # the pseudo-owner of blobs from before roots


class Ref(NamedTuple):
    """One artifact an owner references: the blob's digest and codec."""

    digest: str
    codec: Codec


def check_owner(owner: str) -> str:
    if not OWNER.fullmatch(owner) or owner == LEGACY:
        raise ValueError(f"not a usable owner id: {owner!r}")
    return owner


def encode(refs: Iterable[Ref]) -> bytes:
    """One `digest codec` line per ref, sorted: the roots and journal file format."""
    lines = sorted({f"{r.digest} {Codec(r.codec).value}" for r in refs})
    return ("# dumpledger refs v1\n" + "".join(f"{line}\n" for line in lines)).encode()


def decode(data: bytes, *, where: str, strict: bool) -> set[Ref]:
    """Parse refs. `strict` (roots) refuses a damaged line: a root that cannot be read must not
    shrink what it protects. Otherwise (journals) a torn last line is skipped: a leak."""
    out: set[Ref] = set()
    for n, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        if not line or line.startswith("#"):
            continue
        digest, _, codec = line.partition(" ")
        if DIGEST.fullmatch(digest) and codec in CODECS:
            out.add(Ref(digest, Codec(codec)))
        elif strict:
            raise StoreError(
                f"{where} line {n} is damaged ({line[:80]!r}); blob collection stops until it "
                "is repaired (remove the file only if that catalog is gone: "
                "dumpledger store forget-catalog)"
            )
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class OwnerInfo:
    """A registered owner, as its files describe it."""

    id: str
    label: dict[str, str]
    registered_at: str | None
    updated_at: float  # POSIX time of its newest roots or journal file
    refs: int


@dataclass(frozen=True, slots=True)
class Sized:
    ref: Ref
    size: int


@dataclass(slots=True, kw_only=True)
class CollectionPlan:
    """What an owner's collection removes, and what it leaves to others or to a person."""

    garbage: list[Sized] = field(default_factory=list)  # this owner may delete them
    kept_for_others: list[Sized] = field(default_factory=list)  # released here, held elsewhere
    others_orphans: list[Sized] = field(default_factory=list)  # another owner's to collect
    unowned: list[Sized] = field(default_factory=list)  # nobody's: `store adopt`
    legacy_kept: list[Sized] = field(default_factory=list)  # held only by the legacy roots

    @property
    def garbage_bytes(self) -> int:
        return sum(s.size for s in self.garbage)


@dataclass(frozen=True, slots=True, kw_only=True)
class State:
    """Everything the plan reads from a store."""

    present: Mapping[Ref, int]  # blob -> stored size
    roots: Mapping[str, Set[Ref]]  # owner -> refs
    journals: Mapping[str, Set[Ref]]  # owner -> refs it wrote
    legacy: Set[Ref]
    initialised: bool  # False: no owner registered yet (a store from before roots)


def legacy_at_registration(present: Iterable[Ref], known: Container[Ref]) -> set[Ref]:
    """What the first registration in a store without roots keeps as legacy: every blob
    present, unless the registering catalog knows each of them (then it is the only writer
    this store has had, as far as anything can tell)."""
    blobs = set(present)
    return set() if all(r in known for r in blobs) else blobs


def legacy_once_registered(state: State, known: Container[Ref]) -> Set[Ref]:
    """The legacy roots as they are, or, in a store without roots yet, as the first
    registration (by a catalog that `known`s these blobs) will make them."""
    if state.initialised:
        return state.legacy
    return legacy_at_registration(state.present, known)


def plan(
    state: State, owner: str | None, *, known: Container[Ref], releasing: Collection[Ref]
) -> CollectionPlan:
    """What `owner` may collect, given what its catalog `known`s (every blob it has a record
    of) and `releasing` (known blobs it no longer references). Its own roots on file are not
    read: the catalog's word is newer."""
    legacy = legacy_once_registered(state, known)
    held = {r for o, refs in state.roots.items() if o != owner for r in refs}
    mine = state.journals.get(owner, frozenset()) if owner else frozenset()
    freed = set(releasing)
    out = CollectionPlan()
    for ref, size in sorted(state.present.items()):
        item = Sized(ref, size)
        if ref in freed or (ref in mine and ref not in known):
            if ref in held or ref in legacy:
                out.kept_for_others.append(item)
            else:
                out.garbage.append(item)
        elif ref in known or ref in held:
            continue
        elif ref in legacy:
            out.legacy_kept.append(item)
        elif any(ref in refs for o, refs in state.journals.items() if o != owner):
            out.others_orphans.append(item)
        else:
            out.unowned.append(item)
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class AdoptResult:
    adopted: list[Sized]  # present, in no roots and no journal: now the adopter's
    legacy_released: int  # blobs the legacy roots held


def adoptable(state: State) -> AdoptResult:
    """What `store adopt` takes: every blob present that no owner's roots hold and no owner
    wrote; the legacy roots are released."""
    held = {r for refs in state.roots.values() for r in refs}
    wrote = {r for refs in state.journals.values() for r in refs}
    return AdoptResult(
        adopted=[
            Sized(ref, size)
            for ref, size in sorted(state.present.items())
            if ref not in held and ref not in wrote
        ],
        legacy_released=len(state.legacy),
    )

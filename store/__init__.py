"""Content-addressed blobs. Knows nothing of the catalog, PostgreSQL or the CLI:
bytes in, digest out; digest in, bytes out.

The names below load on first use (PEP 562), so that ``store.errors`` alone stays cheap to
import: the CLI needs the error classes on every run, the codecs only when it stores.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from store.age import AgeKeys
    from store.chunked.gc import PackPlan
    from store.chunked.repack import PackReport
    from store.codecs import SUFFIXES, Codec
    from store.errors import BlobCorrupted, BlobMissing, DecryptionKeyError, StoreError, StoreFull
    from store.local import LocalStore
    from store.memory import MemoryStore
    from store.ports import BlobStore
    from store.results import BlobInfo, VerifyResult
    from store.roots import CollectionPlan, OwnerInfo, Ref

_WHERE = {
    "AgeKeys": "store.age",
    "PackPlan": "store.chunked.gc",
    "PackReport": "store.chunked.repack",
    "SUFFIXES": "store.codecs",
    "Codec": "store.codecs",
    "BlobCorrupted": "store.errors",
    "BlobMissing": "store.errors",
    "DecryptionKeyError": "store.errors",
    "StoreError": "store.errors",
    "StoreFull": "store.errors",
    "LocalStore": "store.local",
    "MemoryStore": "store.memory",
    "BlobStore": "store.ports",
    "BlobInfo": "store.results",
    "VerifyResult": "store.results",
    "CollectionPlan": "store.roots",
    "OwnerInfo": "store.roots",
    "Ref": "store.roots",
}

__all__ = [
    "SUFFIXES",
    "AgeKeys",
    "BlobCorrupted",
    "BlobInfo",
    "BlobMissing",
    "BlobStore",
    "Codec",
    "CollectionPlan",
    "DecryptionKeyError",
    "LocalStore",
    "MemoryStore",
    "OwnerInfo",
    "PackPlan",
    "PackReport",
    "Ref",
    "StoreError",
    "StoreFull",
    "VerifyResult",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'store' has no attribute {name!r}")
    return getattr(import_module(_WHERE[name]), name)

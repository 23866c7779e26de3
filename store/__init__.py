"""Content-addressed blobs. Knows nothing of the catalog, PostgreSQL or the CLI:
bytes in, digest out; digest in, bytes out."""

from store.codecs import SUFFIXES, Codec
from store.errors import BlobCorrupted, BlobMissing, StoreError, StoreFull
from store.local import LocalStore
from store.memory import MemoryStore
from store.ports import BlobStore
from store.results import BlobInfo, VerifyResult

__all__ = [
    "SUFFIXES",
    "BlobCorrupted",
    "BlobInfo",
    "BlobMissing",
    "BlobStore",
    "Codec",
    "LocalStore",
    "MemoryStore",
    "StoreError",
    "StoreFull",
    "VerifyResult",
]

"""Content-addressed blobs. Knows nothing of the catalog, PostgreSQL or the CLI:
bytes in, digest out; digest in, bytes out."""

from store.age import AgeKeys
from store.codecs import SUFFIXES, Codec
from store.errors import BlobCorrupted, BlobMissing, DecryptionKeyError, StoreError, StoreFull
from store.local import LocalStore
from store.memory import MemoryStore
from store.ports import BlobStore
from store.results import BlobInfo, VerifyResult

__all__ = [
    "SUFFIXES",
    "AgeKeys",
    "BlobCorrupted",
    "BlobInfo",
    "BlobMissing",
    "BlobStore",
    "Codec",
    "DecryptionKeyError",
    "LocalStore",
    "MemoryStore",
    "StoreError",
    "StoreFull",
    "VerifyResult",
]

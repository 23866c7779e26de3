"""Whole blobs of the first layout converted to chunked artifacts (`dumpledger store migrate`).

The artifact keeps its identity (the SHA-256 of its raw stream, its codec); its stored form
changes: a manifest (whose SHA-256 is the new stored_sha256) and chunks in packs. The steps,
each safe to be killed after (the caller holds the store's exclusive lock throughout):

1. `chunk_whole`: the blob is read (its stored bytes hashed against what the caller expects,
   its raw stream against its digest) and stored chunked beside it; the chunked form is read
   back (every chunk decompressed, the whole digest recomputed) and durable. Both forms are
   there now: the store reads the one the catalog expects (LocalStore._whole).
2. The caller records the new stored form (its catalog's event).
3. `drop_whole`: the blob file goes.

An encrypted (age) blob is decrypted with the store's identity and its new chunks go into
sealed packs (encrypted to the configured recipients), as an encrypted backup's do:
`sealed_reason` says, before anything is written, why one cannot be converted here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from store.codecs import Codec
from store.errors import BlobCorrupted, BlobMissing, DecryptionKeyError, StoreError
from store.files import fsync_dir
from store.local import LocalStore
from store.roots import Ref, legacy_once_registered
from store.streams import hash_file as _hash_file
from store.streams import opened_stream, read_chunks

Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class Converted:
    """An artifact stored chunked beside its whole blob, read back whole."""

    digest: str
    codec: Codec
    stored_sha256: str  # the manifest's: the artifact's stored_sha256 from now on
    stored_size: int  # its chunks' stored bytes
    previous_sha256: str  # the whole blob's
    previous_size: int
    added_bytes: int  # new packs and the manifest: what the conversion took back


def whole_size(store: LocalStore, digest: str, codec: Codec) -> int | None:
    """The size of the artifact's whole blob, None when it has none."""
    path = store.blob_file(digest, codec)
    if path is None:
        return None
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


def chunked_sha256(store: LocalStore, digest: str, codec: Codec) -> str | None:
    """The SHA-256 of the artifact's manifest, None when it is not stored chunked."""
    path = store.chunks.manifest_path(digest, codec)
    try:
        return _hash_file(path)[0]
    except FileNotFoundError:
        return None


def held_by_others(
    store: LocalStore, owner: str, *, known: Container[Ref] | None = None
) -> dict[Ref, str]:
    """What another catalog sharing the store references or wrote ("other"), and what the
    legacy roots hold ("legacy": blobs from before roots, which a catalog not registered yet
    may reference, until `store adopt`). `known` (every blob the catalog of `owner` has a
    record of), for a catalog not registered yet: a store without roots is read as its
    registration will leave it (the legacy roots that creates)."""
    present = {} if known is None else {Ref(d, c): 0 for d, c, _ in store.iter_blobs()}
    state = store.roots.state(present)
    legacy = state.legacy if known is None else legacy_once_registered(state, known)
    out = dict.fromkeys(legacy, "legacy")
    for who, refs in (*state.roots.items(), *state.journals.items()):
        if who != owner:
            out.update(dict.fromkeys(refs, "other"))
    return out


def sealed_reason(store: LocalStore, path: Path) -> str | None:
    """Why the encrypted whole blob at `path` cannot be converted by this host, None when it
    can: the identity must open it, and must open the sealed packs its chunks go into (one of
    its keys is among the recipients). A broken identity file is DecryptionKeyError."""
    keys = store.chunks.keys
    if not keys.can_open:
        return (
            "encrypted: converting it needs the identity to read it (set "
            "encryption.identity_file on a host that has it)"
        )
    if not keys.can_seal:
        return (
            "encrypted: its chunks would go into sealed packs, and no encryption.recipients "
            "are configured"
        )
    own = {str(identity.to_public()) for identity in keys.identities()}
    if not own & set(keys.keys.recipients):
        return (
            "encrypted: encryption.identity_file holds no key of encryption.recipients, so "
            "this host could not read the sealed packs back"
        )
    try:
        keys.fits(path)
    except DecryptionKeyError:
        return "encrypted to a key encryption.identity_file does not hold"
    return None


def chunk_whole(
    store: LocalStore,
    digest: str,
    codec: Codec,
    *,
    expected_stored_sha256: str,
    chunk_codec: Codec,
    level: int | None,
    threads: int,
    progress: Progress | None = None,
) -> Converted:
    """Store the whole blob's artifact chunked too and read it back (steps 1 of the module
    doc); BlobCorrupted when the blob is damaged (nothing is left of the attempt but
    chunks no manifest uses, which pack collection removes)."""
    codec = Codec(codec)
    path = store.blob_file(digest, codec)
    if path is None:
        raise BlobMissing(f"blob {digest} has no whole blob in {store.blobs_dir}")
    if codec.sealed and (why := sealed_reason(store, path)) is not None:
        raise StoreError(f"blob {digest} stays whole: {why}")
    inner = codec.compression
    if inner is Codec.NONE:
        inner = Codec(chunk_codec).compression
    stored = hashlib.sha256()
    with path.open("rb") as fh:
        raw = _guarded(opened_stream(_tee(read_chunks(fh), stored), codec, store.keys, ""), path)
        out = store.chunks.put(
            raw, codec, chunk_codec=inner, level=level, threads=threads, progress=progress
        )
    problem = None
    if out.digest != digest:
        problem = f"its content hashes to {out.digest}"
    elif stored.hexdigest() != expected_stored_sha256:
        problem = f"its bytes hash to {stored.hexdigest()}, not {expected_stored_sha256}"
    if problem is not None:
        if out.created:
            store.chunks.delete(out.digest, codec)
        raise BlobCorrupted(f"whole blob {path} failed its check: {problem}")
    back = store.chunks.verify(
        digest, codec, expected_stored_sha256=out.manifest_sha256, progress=None, read_data=True
    )
    if not back.ok:
        raise BlobCorrupted(f"blob {digest} stored chunked did not read back: {back.error}")
    return Converted(
        digest=digest,
        codec=codec,
        stored_sha256=out.manifest_sha256,
        stored_size=out.stored_size,
        previous_sha256=expected_stored_sha256,
        previous_size=path.stat().st_size,
        added_bytes=out.added_bytes,
    )


def read_back(store: LocalStore, digest: str, codec: Codec) -> Converted | None:
    """The chunked form already beside a whole blob (a migrate killed after step 1), read
    back whole as `chunk_whole` would; None when it is missing or does not read back."""
    sha = chunked_sha256(store, digest, codec)
    size = whole_size(store, digest, codec)
    if sha is None or size is None:
        return None
    back = store.chunks.verify(
        digest, codec, expected_stored_sha256=sha, progress=None, read_data=True
    )
    if not back.ok:
        return None
    return Converted(
        digest=digest,
        codec=Codec(codec),
        stored_sha256=sha,
        stored_size=back.stored_size,
        previous_sha256="",
        previous_size=size,
        added_bytes=0,
    )


def drop_whole(store: LocalStore, digest: str, codec: Codec) -> bool:
    """Remove the whole blob of an artifact stored chunked (step 3); never the only form."""
    if not store.chunks.has(digest, codec):
        raise StoreError(f"blob {digest} is not stored chunked: its whole blob stays")
    path = store.blob_path(digest, codec)
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    fsync_dir(path.parent)
    return True


def _tee(pieces: Iterable[bytes], sha: hashlib._Hash) -> Iterator[bytes]:
    for piece in pieces:
        sha.update(piece)
        yield piece


def _guarded(pieces: Iterator[bytes], path: object) -> Iterator[bytes]:
    """The blob's raw stream; a blob that cannot be read or decompressed is BlobCorrupted."""
    try:
        yield from pieces
    except (DecryptionKeyError, MemoryError):
        raise
    except (EOFError, ValueError, StoreError) as exc:
        raise BlobCorrupted(f"whole blob {path} failed its check: {exc}") from exc
    except OSError as exc:
        if exc.errno is None:  # gzip's BadGzipFile and friends, not the disk
            raise BlobCorrupted(f"whole blob {path} failed its check: {exc}") from exc
        raise
    except Exception as exc:  # zlib.error, zstandard.ZstdError
        raise BlobCorrupted(f"whole blob {path} failed its check: {exc}") from exc

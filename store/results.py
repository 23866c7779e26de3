"""What the store answers: where a blob landed, and whether it verified."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from store.codecs import Codec


@dataclass(frozen=True, slots=True, kw_only=True)
class BlobInfo:
    digest: str  # SHA-256 of the uncompressed bytes: the blob's address
    codec: Codec
    raw_size: int
    stored_size: int
    stored_sha256: str  # SHA-256 of the bytes on disk
    path: Path | None  # the stored object: the blob file, or the artifact's manifest
    created: bool  # False when the digest was already stored
    # When the stored copy of this digest failed its check and these bytes replaced it: the
    # SHA-256 of the damaged copy, and what was wrong with it.
    repaired_from: str | None = None
    repair_reason: str | None = None
    added_bytes: int = 0  # what this put newly stored: new packs and manifest, or a new blob
    chunks: int = 0  # chunks of the stream (0 for a whole blob)
    new_chunks: int = 0  # of which this put stored
    chunked: bool = False  # stored as a manifest and chunks in packs (not a whole blob)


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyResult:
    ok: bool
    digest: str
    raw_size: int = 0
    stored_size: int = 0
    stored_sha256: str = ""
    error: str | None = None
    note: str | None = None  # what was not checked, e.g. content under encryption without a key
    # The content decompressed and hashed to the digest: the stored bytes are a valid copy
    # even when they are not the bytes expected (another compression level, a repair).
    content_ok: bool = False

    @classmethod
    def failed(cls, digest: str, error: str) -> VerifyResult:
        return cls(ok=False, digest=digest, error=error)

    @classmethod
    def check(
        cls,
        digest: str,
        actual: str,
        raw_size: int,
        stored_sha: str,
        stored_size: int,
        expected_stored: str | None,
        where: Path | str,
    ) -> VerifyResult:
        error = None
        if actual != digest:
            error = (
                f"blob {digest} failed verification ({where}): its content hashes to "
                f"{actual}; run `dumpledger verify --all`"
            )
        return cls._stored(
            digest,
            stored_sha,
            stored_size,
            expected_stored,
            where,
            error,
            raw_size=raw_size,
            content_ok=error is None,
        )

    @classmethod
    def stored_only(
        cls,
        digest: str,
        stored_sha: str,
        stored_size: int,
        expected_stored: str | None,
        where: Path | str,
    ) -> VerifyResult:
        """An encrypted blob checked without its key: only the stored bytes' digest."""
        note = "encrypted; stored digest checked only (no identity_file to decrypt with)"
        return cls._stored(digest, stored_sha, stored_size, expected_stored, where, None, note=note)

    @classmethod
    def _stored(
        cls,
        digest: str,
        stored_sha: str,
        stored_size: int,
        expected_stored: str | None,
        where: Path | str,
        error: str | None,
        *,
        raw_size: int = 0,
        note: str | None = None,
        content_ok: bool = False,
    ) -> VerifyResult:
        """The result, once the stored bytes' digest is checked too (after any content error)."""
        if error is None and expected_stored and stored_sha != expected_stored:
            error = (
                f"blob {digest} failed verification ({where}): stored bytes hash to "
                f"{stored_sha}, expected {expected_stored}"
            )
        return cls(
            ok=error is None,
            digest=digest,
            raw_size=raw_size,
            stored_size=stored_size,
            stored_sha256=stored_sha,
            error=error,
            note=note,
            content_ok=content_ok,
        )

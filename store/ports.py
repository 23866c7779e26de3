"""The port the use cases talk to; LocalStore and MemoryStore implement it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from store.codecs import Codec
from store.results import BlobInfo, VerifyResult


class BlobStore(Protocol):
    def path_for(self, digest: str, codec: Codec) -> Path: ...

    def exists(self, digest: str, codec: Codec) -> bool: ...

    def put(
        self,
        chunks: Iterable[bytes],
        codec: Codec,
        *,
        level: int | None = None,
        threads: int = 2,
        progress: Callable[[int], None] | None = None,
    ) -> BlobInfo: ...

    def put_stored(
        self, chunks: Iterable[bytes], digest: str, codec: Codec, *, stored_sha256: str
    ) -> bool:
        """Take stored (compressed) bytes verbatim if they hash to `stored_sha256`."""
        ...

    def open_raw(self, digest: str, codec: Codec) -> AbstractContextManager[Iterator[bytes]]: ...

    def verify(
        self,
        digest: str,
        codec: Codec,
        *,
        expected_stored_sha256: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> VerifyResult: ...

    def delete(self, digest: str, codec: Codec) -> bool: ...

    def iter_blobs(self) -> Iterator[tuple[str, Codec, Path]]: ...

    def remove_stale_temp_files(self, older_than_seconds: float = 0) -> int: ...

    def protect(self) -> AbstractContextManager[None]:
        """Shared hold: no blob is collected while any holder runs."""
        ...

    def collecting(self, wait: float = 0.0) -> AbstractContextManager[bool]:
        """Exclusive hold for collection; False when holders stayed longer than `wait`."""
        ...

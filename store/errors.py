"""Errors of the store: one root, each message names the blob or directory and the next step."""

from __future__ import annotations


class StoreError(Exception):
    """The store could not do what was asked."""

    exit_code = 1


class BlobMissing(StoreError):
    """A blob the caller expected is not in the store."""


class BlobCorrupted(StoreError):
    """A blob's bytes do not hash to what they should."""


class StoreFull(StoreError):
    """No space left on the device that holds the store."""

    def __init__(self, directory: str) -> None:
        super().__init__(
            f"no space left on device writing to {directory}: free space and run the backup again"
        )


class DecryptionKeyError(StoreError):
    """An encrypted blob cannot be read: no identity file, an unreadable one, or the wrong key.

    Exit 2: the configuration (encryption.identity_file) needs fixing, not the backup.
    """

    exit_code = 2

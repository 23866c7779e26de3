"""Errors of the use cases (bad input, failed operations)."""

from __future__ import annotations


class UseCaseError(Exception):
    """A use case failed; the message says what to do."""

    exit_code = 1


class BadInput(UseCaseError):
    """The user asked for something that cannot be done as asked (exit 2)."""

    exit_code = 2


class BackupFailedError(UseCaseError):
    """The backup did not complete; BackupFailed has been appended (when it could be)."""

    def __init__(self, message: str, *, backup: str | None = None) -> None:
        super().__init__(message)
        self.backup = backup  # the name it had, when it was started


class VerificationFailed(UseCaseError):
    """One or more artifacts failed verification."""


class BackupDirReadOnly(UseCaseError):
    """The backup directory cannot be written (a read-only mount, permissions)."""

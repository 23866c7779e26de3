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


class Terminated(KeyboardInterrupt):
    """SIGTERM (a service stopped, `timeout`, `kill`), raised in the main thread as Ctrl-C
    raises KeyboardInterrupt (cli.main installs the handler): the operation records what it
    left before the process ends."""


class Interrupted(UseCaseError):
    """Ctrl-C or SIGTERM stopped the operation; the message says what it left and what to do.
    Exit 130 (Ctrl-C) or 143 (SIGTERM), as a shell reports a process those signals ended."""

    def __init__(self, message: str, *, how: str) -> None:
        super().__init__(message)
        self.how = how
        self.exit_code = 143 if how == TERMINATED else 130


INTERRUPTED = "interrupted (Ctrl-C)"
TERMINATED = "terminated (SIGTERM)"


def interruption(exc: BaseException) -> str | None:
    """How a signal stopped the operation, or None when `exc` is not about a signal."""
    if isinstance(exc, Interrupted):
        return exc.how
    if isinstance(exc, Terminated):
        return TERMINATED
    if isinstance(exc, KeyboardInterrupt):
        return INTERRUPTED
    return None

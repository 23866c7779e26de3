"""Errors from talking to PostgreSQL and its client programs."""

from __future__ import annotations


class PgError(Exception):
    """A PostgreSQL client program or connection failed."""

    exit_code = 1


class PgConnectionFailed(PgError):
    """The server refused or could not be reached."""


class PgClientMissing(PgError):
    """No suitable pg_dump/psql/pg_restore."""


class PgDumpFailed(PgError):
    """pg_dump exited non-zero, was killed, or produced an incomplete dump."""


class RestoreError(PgError):
    """psql or pg_restore failed, or the swap could not be done; the target is unchanged."""

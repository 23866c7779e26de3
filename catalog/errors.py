"""Errors of the catalog package: one root, each message names the object and the next step."""

from __future__ import annotations


class CatalogError(Exception):
    """The catalog could not do what was asked."""

    exit_code = 1


class CatalogUnavailable(CatalogError):
    """The catalog database cannot be opened or migrated."""


class UnknownBackup(CatalogError):
    """A backup name the catalog does not know."""

    exit_code = 2

    def __init__(self, name: str) -> None:
        super().__init__(
            f"no backup named {name!r} in the catalog; run `dumpledger list` to see them"
        )
        self.name = name


class UnknownEventType(CatalogError):
    """A stored event whose type this version does not know."""

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


class CatalogReadOnly(CatalogError):
    """The catalog was opened read-only (a read-only backup directory), or cannot be written."""


class CatalogCorrupt(CatalogError):
    """The catalog's database file is damaged."""


class CatalogFull(CatalogError):
    """The disk holding the catalog is full."""


def explain_database_error(message: str, where: str) -> CatalogError:
    """A database error of the catalog as one line naming the catalog and what to do."""
    text = " ".join(message.split()) or "unknown error"
    lower = text.lower()
    if "malformed" in lower or "not a database" in lower or "disk i/o error" in lower:
        return CatalogCorrupt(
            f"the catalog at {where} is damaged ({text}); keep a copy of the file, then put "
            "back a copy of it, or load an export (`dumpledger catalog import`) or an offsite "
            "copy (`dumpledger recover --from ...`) into a new backup directory"
        )
    if "disk is full" in lower or "no space left" in lower:
        return CatalogFull(
            f"cannot write to the catalog at {where}: the disk is full; free space and run "
            "the command again"
        )
    if "readonly" in lower or "read-only" in lower:
        return CatalogReadOnly(
            f"cannot write to the catalog at {where}: it is read-only ({text}); this command "
            "must record what it does: run it where the backup directory is writable"
        )
    if "database is locked" in lower:
        return CatalogUnavailable(
            f"the catalog at {where} stayed locked by another dumpledger process for longer "
            "than the busy timeout (60 s); run the command again when it has finished"
        )
    return CatalogUnavailable(
        f"cannot open the catalog at {where}: {text}; check `catalog_url` and that the "
        "directory is writable"
    )

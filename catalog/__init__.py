"""The event log, its projections and queries. Knows nothing of the store, PostgreSQL or the CLI."""

from catalog.errors import CatalogError, CatalogUnavailable, UnknownBackup
from catalog.log import Catalog, ChainReport
from catalog.recorded import Recorded

__all__ = [
    "Catalog",
    "CatalogError",
    "CatalogUnavailable",
    "ChainReport",
    "Recorded",
    "UnknownBackup",
]

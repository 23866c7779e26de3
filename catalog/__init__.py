"""The event log, its projections and queries. Knows nothing of the store, PostgreSQL or the CLI.

The names below load on first use (PEP 562), so that importing a light part of the catalog
(``catalog.retention``, ``catalog.errors``) does not import SQLAlchemy: start-up time of the
read-only commands depends on it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from catalog.errors import CatalogError, CatalogUnavailable, UnknownBackup
    from catalog.log import Catalog, ChainReport
    from catalog.recorded import Recorded

_WHERE = {
    "Catalog": "catalog.log",
    "ChainReport": "catalog.log",
    "CatalogError": "catalog.errors",
    "CatalogUnavailable": "catalog.errors",
    "UnknownBackup": "catalog.errors",
    "Recorded": "catalog.recorded",
}

__all__ = [
    "Catalog",
    "CatalogError",
    "CatalogUnavailable",
    "ChainReport",
    "Recorded",
    "UnknownBackup",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'catalog' has no attribute {name!r}")
    return getattr(import_module(_WHERE[name]), name)

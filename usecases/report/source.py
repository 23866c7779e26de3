"""The catalog a report reads, opened so that nothing can be written (catalog.reporting).

No App.open here: that migrates the catalog and records abandoned backups as failed, both
writes. `check`'s facts get an App built around the read-only engine instead.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from catalog.errors import CatalogUnavailable
from catalog.read import Query, sqlite_file, sqlite_query
from catalog.reporting import open_sqlite_readonly, postgres_engine, sqlite_engine

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from usecases.config.settings import Settings
    from usecases.context import App, Clock


@dataclass(kw_only=True)
class Source:
    """An open read-only catalog: a query runner, and an engine when `check` needs one."""

    query: Query
    where: str
    dialect: str = "sqlite"
    note: str | None = None
    path: Path | None = None  # a SQLite file
    immutable: bool = False
    _engine: Engine | None = None
    _conn: sqlite3.Connection | None = field(default=None, repr=False)

    def engine(self) -> Engine:
        if self._engine is None:
            assert self.path is not None
            self._engine = sqlite_engine(self.path, immutable=self.immutable)
        return self._engine

    def app(self, settings: Settings, clock: Clock) -> App:
        """An App over this read-only catalog, for `check`'s facts; App.open would write."""
        from catalog import Catalog
        from store import AgeKeys, LocalStore
        from usecases.context import App, actor_label

        enc = settings.encryption
        keys = AgeKeys(recipients=enc.recipients, identity_file=enc.identity_file)
        store = LocalStore(settings.store_dir, keys)
        return App(settings, Catalog(self.engine()), store, actor_label(), clock)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._engine is not None:
            self._engine.dispose()


def open_source(settings: Settings) -> Source | None:
    """The catalog of `settings`, read-only; None when there is no SQLite catalog file yet."""
    url = settings.effective_catalog_url()
    path = sqlite_file(url)
    if path is not None:
        opened = open_sqlite_readonly(path)
        if opened is None:
            return None
        conn, immutable = opened
        note = (
            "read as an immutable copy (this user cannot write its directory): a backup "
            "running meanwhile may be missing"
            if immutable
            else None
        )
        return Source(
            query=sqlite_query(conn),
            where=str(path),
            note=note,
            path=path,
            immutable=immutable,
            _conn=conn,
        )
    if url.startswith("sqlite"):
        raise CatalogUnavailable(
            f"the report reads a SQLite catalog named as sqlite:///PATH, not {url!r}; "
            "set `catalog_url` so"
        )
    from catalog.queries import engine_query

    engine = postgres_engine(url)
    shown = engine.url.render_as_string(hide_password=True)
    return Source(query=engine_query(engine), where=shown, dialect="postgresql", _engine=engine)

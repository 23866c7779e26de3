"""The projections as the log alone makes them, folded into a scratch in-memory SQLite
database, never into the catalog itself (which may be read-only, or shared).

`catalog verify` compares every stored projection row with the fold, naming each table and row
that differ; `verify NAME` asks the fold of one backup's events what the log says about it
(status, artifacts), whatever the `backups` table says.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import create_engine, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.schema import Table

from catalog import projections
from catalog.recorded import Recorded
from catalog.schema import PROJECTION_TABLES, checkpoints, metadata

COMPARED = (*PROJECTION_TABLES, checkpoints)


def fold(records: Iterable[Recorded]) -> Engine:
    """A private in-memory database holding the projections of `records`, folded in order."""
    engine = create_engine(
        "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
    )
    metadata.create_all(engine)
    with engine.begin() as conn:
        projections.rebuild(conn, records)
    return engine


def differences(stored: Connection, folded: Connection, *, limit: int = 50) -> list[str]:
    """Each projection row that is not what the fold of the log gives: missing, extra, or a
    column with another value; at most `limit` lines (then how many more)."""
    out: list[str] = []
    for table in COMPARED:
        out.extend(_table_differences(table, _rows(stored, table), _rows(folded, table)))
    if len(out) > limit:
        out = [*out[:limit], f"... and {len(out) - limit} more differences"]
    return out


def _rows(conn: Connection, table: Table) -> dict[tuple[Any, ...], dict[str, Any]]:
    keys = [c.name for c in table.primary_key.columns]
    rows = {}
    for row in conn.execute(select(table)).mappings():
        rows[tuple(row[k] for k in keys)] = dict(row)
    return rows


def _table_differences(
    table: Table,
    stored: Mapping[tuple[Any, ...], Mapping[str, Any]],
    folded: Mapping[tuple[Any, ...], Mapping[str, Any]],
) -> list[str]:
    keys = [c.name for c in table.primary_key.columns]
    out = []
    for key in sorted(set(stored) | set(folded), key=lambda k: json.dumps(k, default=str)):
        where = f"table {table.name}, row " + ", ".join(
            f"{k}={v!r}" for k, v in zip(keys, key, strict=True)
        )
        if key not in folded:
            out.append(f"{where}: not in the log (the log has no event that makes this row)")
        elif key not in stored:
            out.append(f"{where}: missing (the log makes this row)")
        else:
            for column in (c.name for c in table.columns):
                got, want = stored[key][column], folded[key][column]
                if not _same(got, want):
                    out.append(f"{where}: {column} is {_shown(got)}, the log says {_shown(want)}")
    return out


def _same(got: Any, want: Any) -> bool:
    if isinstance(got, bool) or isinstance(want, bool):  # SQLite may hold 0/1
        return got is not None and want is not None and bool(got) == bool(want)
    return bool(got == want) and (got is None) == (want is None)


def _shown(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def backup_of(records: Iterable[Recorded], name: str) -> dict[str, Any] | None:
    """Backup `name` as the fold of `records` (its own events) describes it, with its
    artifacts, like `queries.get_backup`; None when they never start or import it."""
    from catalog.errors import UnknownBackup
    from catalog.queries import get_backup

    engine = fold(records)
    try:
        return get_backup(engine, name)
    except UnknownBackup:
        return None
    finally:
        engine.dispose()

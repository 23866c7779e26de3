"""The event log as JSON Lines, and back: what offsite targets carry so they alone can rebuild.

One line per event, canonical JSON of the stored row (seq, id, type, occurred_at, actor,
subject, payload, prev_hash, hash). Importing re-appends the rows verbatim (same ids, hashes
and times) into an empty catalog, checks the chain line by line, and folds the projections,
all in one transaction. No I/O here besides the database and the file objects given.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from sqlalchemy import func, insert, select

from catalog import projections
from catalog.canonical import GENESIS_HASH, canonical_json
from catalog.db import writing
from catalog.errors import CatalogError
from catalog.log import Catalog
from catalog.recorded import Recorded
from catalog.schema import events

FIELDS = ("seq", "id", "type", "occurred_at", "actor", "subject", "payload", "prev_hash", "hash")


class ExportBroken(CatalogError):
    """An export whose hash chain does not hold (edited, missing or reordered lines)."""


class CatalogNotEmpty(CatalogError):
    """Import is only into an empty catalog: it keeps the exported ids and hashes."""

    exit_code = 2


def export_line(rec: Recorded) -> str:
    return canonical_json(rec.to_json()) + "\n"


def iter_export(catalog: Catalog, *, after_seq: int = 0) -> Iterator[str]:
    """Lines of every event with seq > `after_seq`, in order."""
    query = select(events).where(events.c.seq > after_seq).order_by(events.c.seq)
    with catalog.engine.connect() as conn:
        for row in conn.execute(query):
            yield export_line(Recorded.from_row(row))


def write_export(catalog: Catalog, out: TextIO, *, after_seq: int = 0) -> int:
    """Write the export to `out`; return how many events were written."""
    n = 0
    for line in iter_export(catalog, after_seq=after_seq):
        out.write(line)
        n += 1
    return n


def parse_line(line: str, lineno: int) -> Recorded:
    """One export line as a Recorded; ExportBroken when it is not one."""
    try:
        doc: Any = json.loads(line)
        if not isinstance(doc, dict) or set(doc) != set(FIELDS):
            raise ValueError(f"expected the fields {', '.join(FIELDS)}")
        return Recorded(**doc)
    except (ValueError, TypeError) as exc:
        raise ExportBroken(f"export line {lineno} is not an event: {exc}") from None


def check_link(rec: Recorded, prev_seq: int, prev_hash: str, where: str) -> None:
    """The chain holds from (prev_seq, prev_hash) to `rec`, and `rec` hashes to its hash."""
    if rec.seq != prev_seq + 1:
        raise ExportBroken(
            f"{where}: event seq {rec.seq} follows seq {prev_seq} (lines missing or reordered); "
            "use an intact export"
        )
    if rec.prev_hash != prev_hash:
        raise ExportBroken(
            f"{where}: event seq {rec.seq} does not chain to the previous event; "
            "use an intact export"
        )
    if rec.expected_hash() != rec.hash:
        raise ExportBroken(
            f"{where}: event seq {rec.seq} ({rec.type} {rec.subject}) was edited; "
            "use an intact export"
        )


def read_export(lines: Iterable[str], *, source: str = "export") -> Iterator[Recorded]:
    """Parse and chain-check an export from its first event on."""
    prev_seq, prev_hash = 0, GENESIS_HASH
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        rec = parse_line(line, lineno)
        check_link(rec, prev_seq, prev_hash, f"{source} line {lineno}")
        prev_seq, prev_hash = rec.seq, rec.hash
        yield rec


def import_export(catalog: Catalog, lines: Iterable[str], *, source: str = "export") -> int:
    """Append the exported events verbatim to an EMPTY catalog and fold the projections.

    One transaction: a broken chain anywhere leaves the catalog empty. Returns the count.
    """
    with writing(catalog.engine) as conn:
        present = int(conn.execute(select(func.count()).select_from(events)).scalar_one())
        if present:
            raise CatalogNotEmpty(
                f"the catalog already holds {present} events; import only into an empty "
                "catalog (a new --backup-dir, or `catalog_url` pointing at a new database)"
            )
        n = 0
        for rec in read_export(lines, source=source):
            row = {**rec.body(), "payload": canonical_json(rec.payload)}
            conn.execute(insert(events).values(**row, prev_hash=rec.prev_hash, hash=rec.hash))
            projections.apply(conn, rec)
            n += 1
        if n == 0:
            raise ExportBroken(f"{source} holds no events: nothing to import")
    return n

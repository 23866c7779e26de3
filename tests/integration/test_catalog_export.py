"""catalog export / import on SQLite and PostgreSQL: verbatim rows, the chain checked while
importing, all or nothing; the offsite projection folds and rebuilds like the others."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from catalog import Catalog
from catalog.events import OffsitePushed
from catalog.export import CatalogNotEmpty, ExportBroken, import_export, iter_export, write_export
from catalog.queries import offsite_targets
from tests.catalog_urls import postgres_url, sqlite_url
from tests.integration.test_catalog import ACTOR, TickingClock, history

LINES = list[str]


@pytest.fixture(params=["sqlite", "postgresql"])
def make_catalog(
    request: pytest.FixtureRequest, tmp_path: Path, frozen_now: datetime
) -> Iterator[object]:
    opened: list[Catalog] = []

    def make(tag: str) -> Catalog:
        if request.param == "sqlite":
            url = sqlite_url(tmp_path / tag)
        else:
            url = postgres_url(request.getfixturevalue("pg_cluster"))
        cat = Catalog.open(url, clock=TickingClock(frozen_now))
        opened.append(cat)
        return cat

    yield make
    for cat in opened:
        cat.close()


def pushed(target: str, backups: list[str], seq: int) -> OffsitePushed:
    return OffsitePushed(
        target=target,
        location=f"/media/{target}",
        backups=backups,
        digests_sent=[],
        bytes_sent=0,
        log_seq=seq,
    )


def source_catalog(make: object) -> Catalog:
    cat: Catalog = make("source")  # type: ignore[operator]
    history(cat)
    cat.append(pushed("drive", ["a", "b"], 10), actor=ACTOR)
    cat.append(pushed("bucket", ["a"], 11), actor=ACTOR)
    cat.append(pushed("drive", ["b"], 12), actor=ACTOR)  # a target's set is replaced
    return cat


def test_offsite_projection_folds_and_rebuilds(make_catalog: object) -> None:
    cat = source_catalog(make_catalog)
    assert offsite_targets(cat.engine) == {"a": ["bucket"], "b": ["drive"]}
    before = cat.snapshot()
    assert len(before["offsite_copies"]) == 2
    cat.rebuild()
    assert cat.snapshot() == before


def test_export_then_import_gives_the_same_log_and_projections(make_catalog: object) -> None:
    source = source_catalog(make_catalog)
    out = io.StringIO()
    assert write_export(source, out) == source.count() == 14
    lines = out.getvalue().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == list(range(1, 15))
    assert list(iter_export(source, after_seq=11)) == [line + "\n" for line in lines[11:]]

    copy: Catalog = make_catalog("copy")  # type: ignore[operator]
    assert import_export(copy, lines) == 14
    assert [e.to_json() for e in copy.events()] == [e.to_json() for e in source.events()]
    assert copy.snapshot() == source.snapshot()
    assert copy.verify_chain().ok and copy.identity() == source.identity()
    # Appending goes on from the imported head.
    copy.append(pushed("drive", [], 14), actor=ACTOR)
    assert copy.verify_chain().ok

    with pytest.raises(CatalogNotEmpty, match="already holds 15 events"):
        import_export(copy, lines)


def edit(lines: LINES) -> LINES:
    doc = json.loads(lines[5])
    doc["payload"]["reason"] = "all fine"
    return [*lines[:5], json.dumps(doc), *lines[6:]]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (edit, "seq 6 .* was edited"),
        (lambda ls: ls[:4] + ls[5:], "seq 6 follows seq 4"),
        (lambda ls: [ls[1], ls[0], *ls[2:]], "seq 2 follows seq 0"),
        (lambda ls: [*ls[:3], "{not json", *ls[3:]], "line 4 is not an event"),
        (lambda ls: [], "holds no events"),
    ],
)
def test_a_broken_export_is_refused_and_nothing_is_imported(
    make_catalog: object, damage: object, message: str
) -> None:
    lines = list(iter_export(source_catalog(make_catalog)))
    target: Catalog = make_catalog("target")  # type: ignore[operator]
    with pytest.raises(ExportBroken, match=message):
        import_export(target, damage(lines))  # type: ignore[operator]
    assert target.count() == 0
    assert all(rows == [] for rows in target.snapshot().values())

"""Prometheus text from catalog facts: parseable, HELP/TYPE per family, atomic textfile."""

from __future__ import annotations

import math
import re
import stat
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from usecases.errors import BadInput
from usecases.health.metrics import MetricsFacts, render, write_textfile

SAMPLE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$"
)
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """A tiny parser of the text format: every line a comment of a known kind or a sample whose
    family was declared (HELP and TYPE gauge) before it."""
    declared: dict[str, set[str]] = {}
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# "):
            kind, name, rest = line[2:].split(" ", 2)
            assert kind in ("HELP", "TYPE"), line
            declared.setdefault(name, set()).add(kind)
            if kind == "TYPE":
                assert rest == "gauge"
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name = match["name"]
        assert declared.get(name) == {"HELP", "TYPE"}, f"{name} sampled before HELP/TYPE"
        labels = tuple(sorted(LABEL.findall(match["labels"] or "")))
        out.setdefault(name, {})[labels] = float(match["value"])
    return out


def test_render_parses_and_says_what_it_knows(frozen_now: datetime) -> None:
    facts = MetricsFacts(
        by_type_status={("nightly", "completed"): 3, ("manual", "failed"): 1},
        stored_bytes=12345,
        last_backup_at={"any": frozen_now - timedelta(seconds=90)},
        last_verified_at=frozen_now - timedelta(hours=1),
        last_drill_at=None,
        last_backup={"stored_size": 500, "raw_size": 2000, "duration_seconds": 1.5},
    )
    m = parse(render(facts, frozen_now))
    assert all(name.startswith("dumpledger_") for name in m)
    assert m["dumpledger_seconds_since_last_backup"][(("class", "any"),)] == 90
    assert math.isinf(m["dumpledger_seconds_since_last_backup"][(("class", "auto"),)])
    assert m["dumpledger_seconds_since_last_verified"][()] == 3600
    assert math.isinf(m["dumpledger_seconds_since_last_drill"][()])
    assert m["dumpledger_backups"] == {
        (("status", "completed"), ("type", "nightly")): 3,
        (("status", "failed"), ("type", "manual")): 1,
    }
    assert m["dumpledger_stored_bytes"][()] == 12345
    assert m["dumpledger_last_backup_stored_bytes"][()] == 500
    assert m["dumpledger_last_backup_raw_bytes"][()] == 2000
    assert m["dumpledger_last_backup_duration_seconds"][()] == 1.5


def test_label_values_are_escaped(frozen_now: datetime) -> None:
    text = render(MetricsFacts(by_type_status={('we"ird\\', "completed"): 1}), frozen_now)
    assert 'type="we\\"ird\\\\"' in text
    parse(text)


def test_textfile_is_written_atomically_and_readable_by_node_exporter(tmp_path: Path) -> None:
    target = tmp_path / "textfile" / "dumpledger.prom"
    target.parent.mkdir(mode=0o755)
    write_textfile(target, "dumpledger_stored_bytes 1\n")
    write_textfile(target, "dumpledger_stored_bytes 2\n")
    assert target.read_text() == "dumpledger_stored_bytes 2\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o755  # not made private
    assert [p.name for p in target.parent.iterdir()] == ["dumpledger.prom"]  # no temp left


def test_textfile_must_be_a_prom_file_in_an_existing_directory(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"\*\.prom"):
        write_textfile(tmp_path / "metrics.txt", "x 1\n")
    with pytest.raises(BadInput, match="not a directory"):
        write_textfile(tmp_path / "missing" / "dumpledger.prom", "x 1\n")

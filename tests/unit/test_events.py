"""Events: payload round trips, upcasting, canonical JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from catalog import events as ev
from catalog.canonical import canonical_json, chain_hash, parse_utc, utc_iso
from catalog.errors import UnknownEventType


def test_payload_round_trip_keeps_every_field() -> None:
    started = ev.BackupStarted(
        backup="b",
        backup_type="manual",
        hostname="h",
        pid=7,
        database={"host": "x", "port": 5432},
        artifacts=["full"],
        codec="gzip",
    )
    payload = json.loads(canonical_json(started.payload()))
    assert payload["schema_version"] == 1
    assert ev.decode("BackupStarted", payload) == started


def test_unknown_type_names_the_type() -> None:
    with pytest.raises(UnknownEventType, match="NoSuchEvent"):
        ev.decode("NoSuchEvent", {})


def test_upcaster_applied_on_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ev.BackupFailed, "schema_version", 2)
    monkeypatch.setitem(
        ev.UPCASTERS,
        ("BackupFailed", 1),
        lambda p: {**{k: v for k, v in p.items() if k != "why"}, "reason": p["why"]},
    )
    stored = {"schema_version": 1, "backup": "b", "why": "disk full", "stage": "dump"}
    decoded = ev.decode("BackupFailed", stored)
    assert isinstance(decoded, ev.BackupFailed)
    assert decoded.reason == "disk full"
    assert stored["why"] == "disk full"  # the stored payload is never rewritten


def test_restore_started_v1_reads_as_v2_without_a_process() -> None:
    """v1 named no process, so an interrupted v1 restore cannot be told from a running one."""
    stored = {
        "schema_version": 1,
        "restore_id": "r1",
        "backup": "b",
        "source_file": None,
        "target": {"name": "postgres"},
        "artifacts": [],
        "method": "partial",
        "safety_backup": None,
        "terminate_connections": True,
    }
    decoded = ev.decode("RestoreStarted", stored)
    assert isinstance(decoded, ev.RestoreStarted)
    assert (decoded.hostname, decoded.pid, decoded.scratch_db, decoded.keep_as) == (None,) * 4
    assert decoded.payload()["schema_version"] == 2
    assert stored["schema_version"] == 1


def test_utc_iso_refuses_naive_and_normalises_zones() -> None:
    with pytest.raises(ValueError):
        utc_iso(datetime(2026, 1, 1))
    cet = datetime(2026, 1, 1, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    assert utc_iso(cet) == "2026-01-01T12:00:00.000000Z"
    assert parse_utc(utc_iso(cet)) == cet.astimezone(UTC)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_canonical_json_round_trips_and_is_stable(value: object) -> None:
    text = canonical_json(value)
    assert json.loads(text) == value
    assert canonical_json(json.loads(text)) == text


@given(st.dictionaries(st.text(), st.integers(), min_size=1))
def test_chain_hash_depends_on_key_order_never(body: dict[str, int]) -> None:
    reordered = dict(reversed(list(body.items())))
    assert chain_hash("0" * 64, body) == chain_hash("0" * 64, reordered)

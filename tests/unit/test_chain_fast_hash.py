"""verify_chain hashes rows as stored (catalog.log.fast_row_hash): it must give exactly the
hash Recorded.expected_hash gives for every row written the normal way."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from catalog.canonical import canonical_json
from catalog.log import ROW_COLUMNS, _Row, fast_row_hash
from catalog.recorded import Recorded

TEXT = st.text(max_size=40)  # any unicode, quotes, backslashes, control characters
JSONS = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)


def stored_row(seq: int, texts: list[str], payload: dict[str, Any], prev: str) -> tuple[Any, ...]:
    return (seq, *texts[:2], texts[2], *texts[3:5], canonical_json(payload), prev, "")


@given(
    seq=st.integers(min_value=1, max_value=2**40),
    texts=st.lists(TEXT, min_size=5, max_size=5),
    payload=st.dictionaries(TEXT, JSONS, max_size=6),
    prev=st.text("0123456789abcdef", min_size=64, max_size=64),
)
def test_the_stored_row_hashes_as_the_decoded_record(
    seq: int, texts: list[str], payload: dict[str, Any], prev: str
) -> None:
    row = stored_row(seq, texts, payload, prev)
    rec = Recorded.from_row(_Row(dict(zip(ROW_COLUMNS, row, strict=True))))
    assert fast_row_hash(row) == rec.expected_hash()


def test_a_payload_stored_other_than_canonically_gives_another_hash() -> None:
    """Then verify_chain judges the row the exact way (decoded), as before."""
    payload = {"b": 1, "a": "é"}
    row = stored_row(1, ["id", "T", "2026-01-01T00:00:00.000000Z", "me", "x"], payload, "0" * 64)
    spaced = (*row[:6], json.dumps(payload), *row[7:])
    rec = Recorded.from_row(_Row(dict(zip(ROW_COLUMNS, spaced, strict=True))))
    assert fast_row_hash(spaced) != fast_row_hash(row) == rec.expected_hash()

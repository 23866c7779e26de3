"""The compression level of chunks: with none configured, gzip chunks take the level that
stores them smallest (zlib-ng's 6 beats its 9 on chunks of a few KiB); a configured level is
the one used, and any level reads back as the same dump."""

from __future__ import annotations

import gzip
from pathlib import Path

from store import Codec, LocalStore
from store.chunked import chunker
from store.chunked.compress import compress_batch
from tests.unit.test_chunked_store import DUMP, pieces


def _packed_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.glob("packs/??/*.pack"))


def test_unconfigured_gzip_chunks_are_stored_no_larger_than_at_level_9() -> None:
    views = list(chunker.cut([DUMP]))
    default = sum(map(len, compress_batch(views, Codec.GZIP, None)))
    nine = sum(map(len, compress_batch(views, Codec.GZIP, 9)))
    one = sum(map(len, compress_batch(views, Codec.GZIP, 1)))
    assert default < nine < one


def test_a_configured_level_is_the_one_used_and_every_level_reads_back(tmp_path: Path) -> None:
    sizes = {}
    for level in (None, 1, 9):
        store = LocalStore(tmp_path / f"store-{level}")
        info = store.put(pieces(DUMP, 1 << 20), Codec.GZIP, level=level)
        dest = tmp_path / f"{level}_full.sql.gz"
        store.materialize(info.digest, Codec.GZIP, dest)
        assert gzip.decompress(dest.read_bytes()) == DUMP
        sizes[level] = _packed_bytes(store.root)
    assert sizes[None] < sizes[9] < sizes[1]

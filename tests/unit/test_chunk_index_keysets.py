"""The chunk index records the recipients each sealed pack is sealed to (issue 17,
encryption): a put sealing to other recipients, or a plain put, does not use its chunks; an
index of before (version 2) is upgraded with its sealed packs' recipients unknown."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from store.chunked.index import VERSION, ChunkIndex
from store.chunked.packs import CODEC_IDS, Entry
from store.codecs import Codec

GZ = CODEC_IDS[Codec.GZIP]


def entry(n: int) -> Entry:
    return Entry(digest=bytes([n]) * 32, offset=8 * n, stored_len=8, raw_len=16, codec=Codec.GZIP)


def test_a_put_uses_plain_packs_and_packs_sealed_to_its_own_recipients_only(
    tmp_path: Path,
) -> None:
    idx = ChunkIndex(tmp_path / "index.sqlite", tmp_path / "packs")
    idx.add_pack("plain", 100, [entry(1)])
    idx.add_pack("old-key", 100, [entry(2), entry(3)], sealed=True, keyset="A")
    digests = [entry(n).digest for n in (1, 2, 3)]
    assert set(idx.known(digests, Codec.GZIP)) == {entry(1).digest}  # a plain put
    assert set(idx.known(digests, Codec.GZIP, keyset="A")) == set(digests)
    assert set(idx.known(digests, Codec.GZIP, keyset="B")) == {entry(1).digest}
    # Sealed to B, chunk 2 again: its row points to the new pack from now on (a backup of
    # after the change reads it with B's key); chunk 3 stays where it is.
    idx.add_pack("new-key", 100, [entry(2)], sealed=True, keyset="B")
    assert idx.lookup([entry(2).digest], Codec.GZIP)[entry(2).digest].pack == "new-key"
    assert idx.lookup([entry(3).digest], Codec.GZIP)[entry(3).digest].pack == "old-key"
    # Back to A (the recipients changed back): the row follows the pack written last.
    idx.add_pack("old-key-2", 100, [entry(2)], sealed=True, keyset="A")
    assert idx.lookup([entry(2).digest], Codec.GZIP)[entry(2).digest].pack == "old-key-2"
    idx.close()


def test_an_index_of_version_2_is_upgraded_with_its_sealed_packs_recipients_unknown(
    tmp_path: Path,
) -> None:
    path = tmp_path / "index.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(
        """
        CREATE TABLE packs (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
            size INTEGER NOT NULL, sealed INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE chunks (digest BLOB NOT NULL, codec INTEGER NOT NULL,
            pack INTEGER NOT NULL, offset INTEGER NOT NULL, stored_len INTEGER NOT NULL,
            raw_len INTEGER NOT NULL, PRIMARY KEY (digest, codec)) WITHOUT ROWID;
        PRAGMA user_version = 2;
        """
    )
    db.execute("INSERT INTO packs VALUES (1, 'sealed-before', 100, 1), (2, 'plain', 100, 0)")
    db.executemany(
        "INSERT INTO chunks VALUES (?, ?, ?, 0, 8, 16)",
        [(entry(1).digest, GZ, 1), (entry(2).digest, GZ, 2)],
    )
    db.close()
    idx = ChunkIndex(path, tmp_path / "packs")
    assert idx.db.execute("PRAGMA user_version").fetchone()[0] == VERSION == 3
    both = [entry(1).digest, entry(2).digest]
    # Sealed to recipients not known: not used by a put sealing to any set; plain still is.
    assert set(idx.known(both, Codec.GZIP, keyset="A")) == {entry(2).digest}
    assert idx.lookup(both, Codec.GZIP)[entry(1).digest].pack == "sealed-before"
    idx.close()

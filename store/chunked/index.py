"""The chunk index: which pack holds each (chunk digest, codec), at which offset.

SQLite from the standard library (`store/index.sqlite`, WAL, synchronous=FULL), on disk so
memory stays bounded whatever the store's size. It is derived data: a pack's rows are
committed only after the pack is durable, and `reconcile` rebuilds it from the packs'
trailers (rows for packs it lacks, none for packs gone); a missing or damaged index file is
set aside and rebuilt from scratch.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from store.chunked.layout import PACK_SUFFIX
from store.chunked.packs import CODEC_IDS, Entry, read_trailer
from store.chunked.sealed import PackKeys, is_sealed
from store.codecs import Codec
from store.errors import BlobCorrupted, StoreError

BATCH = 500  # digests per lookup query (SQLite allows 999 parameters at least)
VERSION = 3  # PRAGMA user_version; an index of another version is rebuilt (1, 2: upgraded)
# Packs by a small integer id: ~55 bytes per chunk row on disk (a pack's 64-hex name in every
# row, and an index on it, made it ~260).
_SCHEMA = """
CREATE TABLE IF NOT EXISTS packs (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, size INTEGER NOT NULL,
    sealed INTEGER NOT NULL DEFAULT 0, keyset TEXT);
CREATE TABLE IF NOT EXISTS chunks (
    digest BLOB NOT NULL, codec INTEGER NOT NULL, pack INTEGER NOT NULL,
    offset INTEGER NOT NULL, stored_len INTEGER NOT NULL, raw_len INTEGER NOT NULL,
    PRIMARY KEY (digest, codec)) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class Location:
    pack: str
    offset: int
    stored_len: int
    raw_len: int


_CHECKED: set[Path] = set()  # index files this process found sound (PRAGMA quick_check)


class ChunkIndex:
    """One connection: open one per thread (a put, a reader), close it after."""

    def __init__(self, path: Path, packs_dir: Path, keys: PackKeys | None = None) -> None:
        self.path = path
        self.packs_dir = packs_dir
        self.keys = keys or PackKeys()  # sealed packs are indexed only with the identity
        self._names: dict[int, str] = {}  # pack id -> name
        existed = path.exists()
        self.writable = os.access(path.parent, os.W_OK)  # False: a file read only, or memory
        if not self.writable:  # a read-only copy (a mounted offsite disk)
            self.db = self._connect_read_only(existed)
            return
        try:
            self.db = self._connect_patiently()
            self._check_once()
        except sqlite3.OperationalError as exc:  # locked, I/O error: not damage, no rebuild
            raise StoreError(
                f"cannot open the chunk index {path}: {exc}; check the disk and try again"
            ) from None
        except sqlite3.DatabaseError:
            self.db = self._rebuild_damaged()
            existed = False
        if not existed:
            self.reconcile()

    def _check_once(self) -> None:
        """A damaged index file is rebuilt, not trusted: checked once per process."""
        if self.path in _CHECKED:
            return
        row = self.db.execute("PRAGMA quick_check").fetchone()
        if not row or row[0] != "ok":
            self.db.close()
            raise sqlite3.DatabaseError(f"quick_check: {row[0] if row else 'no answer'}")
        _CHECKED.add(self.path)

    def _connect_read_only(self, existed: bool) -> sqlite3.Connection:
        """The index as it is, read only (immutable when no write-ahead log waits: SQLite
        cannot make its -shm file there); without one, an index in memory from the packs."""
        wal = Path(f"{self.path}-wal")
        if existed:
            pending = wal.exists() and wal.stat().st_size > 0
            uri = f"{self.path.as_uri()}?mode=ro{'' if pending else '&immutable=1'}"
            try:
                db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
                if db.execute("PRAGMA user_version").fetchone()[0] == VERSION:
                    return db
                db.close()
            except sqlite3.Error:
                pass
        db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        _create(db)
        self.db = db
        self.reconcile()
        return db

    def _connect_patiently(self, wait: float = 60.0) -> sqlite3.Connection:
        """_connect, again while another connection holds the lock: switching a new file to
        WAL answers "database is locked" at once, without SQLite's busy timeout."""
        deadline = time.monotonic() + wait
        while True:
            try:
                return self._connect()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.02)

    def _connect(self) -> sqlite3.Connection:
        # Created 0600 first: SQLite gives its -wal and -shm files the database file's mode.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        db = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            if db.execute("PRAGMA user_version").fetchone()[0] != VERSION:
                _create(db)
            db.execute("SELECT count(*) FROM packs").fetchone()
        except BaseException:
            db.close()
            raise
        return db

    def _rebuild_damaged(self) -> sqlite3.Connection:
        """Set the damaged file aside (kept for a post-mortem) and start an empty one, which
        `reconcile` fills from the packs' trailers."""
        aside = self.path.with_name(f"{self.path.name}.damaged-{int(time.time())}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(f"{self.path}{suffix}")
            if src.exists():
                src.replace(Path(f"{aside}{suffix}"))
        try:
            return self._connect()
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"cannot create the chunk index {self.path}: {exc}; check the disk"
            ) from None

    def close(self) -> None:
        self.db.close()

    # -- packs ---------------------------------------------------------------------------

    def add_pack(
        self,
        name: str,
        size: int,
        entries: Sequence[Entry],
        *,
        moved: bool = False,
        sealed: bool = False,
        keyset: str | None = None,
    ) -> None:
        """Record a durable pack and its chunks, in one transaction; a chunk already indexed
        in another pack keeps its row (the second copy is dead weight for collection), unless
        the chunks were `moved` here (a repack): then their rows point here from now on. A
        plain pack takes over the rows of chunks indexed in a sealed one (a plain backup is
        read without the key); a sealed one, of `keyset` (PackKeys.keyset; None: not known,
        a pack indexed from its trailer), those indexed in a pack sealed to another set of
        recipients or to one not known (a new backup is read with today's keys)."""
        with self._transaction():
            self.db.execute(
                "INSERT OR IGNORE INTO packs (name, size, sealed, keyset) VALUES (?, ?, ?, ?)",
                (name, size, int(sealed), keyset if sealed else None),
            )
            pid = self.db.execute("SELECT id FROM packs WHERE name = ?", (name,)).fetchone()[0]
            rows = sorted(  # in key order: one walk through the table's B-tree
                (e.digest, CODEC_IDS[e.codec], pid, e.offset, e.stored_len, e.raw_len)
                for e in entries
            )
            if moved:
                self.db.executemany("INSERT OR REPLACE INTO chunks VALUES (?, ?, ?, ?, ?, ?)", rows)
            elif not sealed:
                self.db.executemany(_PLAIN_OVER_SEALED, [(*r, *r[2:]) for r in rows])
            else:
                self.db.executemany(_SEALED_OVER_OTHER_KEYS, [(*r, *r[2:], keyset) for r in rows])
        self._names[pid] = name

    def drop_pack(self, name: str, entries: Sequence[Entry] | None = None) -> None:
        """Forget a pack: its row and the chunk rows that point to it. `entries` (its trailer,
        read from a pack that hashes to its name) finds those rows by key; without them the
        whole table is scanned."""
        with self._transaction():
            row = self.db.execute("SELECT id FROM packs WHERE name = ?", (name,)).fetchone()
            if row is not None:
                if entries is None:
                    self.db.execute("DELETE FROM chunks WHERE pack = ?", (row[0],))  # a scan
                else:
                    self.db.executemany(
                        "DELETE FROM chunks WHERE digest = ? AND codec = ? AND pack = ?",
                        sorted((e.digest, CODEC_IDS[e.codec], row[0]) for e in entries),
                    )
                self.db.execute("DELETE FROM packs WHERE id = ?", (row[0],))
                self._names.pop(row[0], None)

    def sealed_packs(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT name FROM packs WHERE sealed = 1")}

    def pack_names(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT name FROM packs")}

    def _pack_name(self, pid: int) -> str:
        name = self._names.get(pid)
        if name is None:
            self._names = dict(self.db.execute("SELECT id, name FROM packs").fetchall())
            name = self._names[pid]
        return name

    def reconcile(self) -> int:
        """Index the packs on disk it lacks, forget those gone; how many packs changed."""
        on_disk = {p.name.removesuffix(PACK_SUFFIX): p for p in _pack_files(self.packs_dir)}
        known = self.pack_names()
        changed = 0
        for name in sorted(known - on_disk.keys()):
            self.drop_pack(name)
            changed += 1
        for name in sorted(on_disk.keys() - known):
            path = on_disk[name]
            try:
                sealed = is_sealed(path)
                if sealed and not self.keys.can_open:
                    continue  # indexed where the identity is (its chunks are stored again)
                entries = read_trailer(path, self.keys)
            except (BlobCorrupted, FileNotFoundError):
                continue  # verify reports it; its chunks are stored again when needed
            with contextlib.suppress(OSError):  # its name must be durable before rows name it
                fd = os.open(path.parent, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            self.add_pack(name, path.stat().st_size, entries, sealed=sealed)
            changed += 1
        return changed

    # -- chunks --------------------------------------------------------------------------

    def lookup(self, digests: Iterable[bytes], codec: Codec) -> dict[bytes, Location]:
        """Where each of `digests` is stored with `codec`; absent ones are left out."""
        found: dict[bytes, Location] = {}
        for digest, pid, offset, stored_len, raw_len in self._select(
            "digest, pack, offset, stored_len, raw_len", digests, codec
        ):
            found[digest] = Location(self._pack_name(pid), offset, stored_len, raw_len)
        return found

    def known(
        self, digests: Iterable[bytes], codec: Codec, *, keyset: str | None = None
    ) -> dict[bytes, tuple[int, int, int]]:
        """(stored length, pack id, offset) of each of `digests` the index holds that a put
        may use: what it needs. In plain packs, and, for a put sealing to `keyset`, in packs
        sealed to the same recipients (a plain backup must read without the key, a sealed
        one with today's keys)."""
        rows = self._select("digest, stored_len, pack, offset", digests, codec)
        if rows:  # a plain put (keyset None) uses no sealed pack, not even one of no keyset
            query = "SELECT id FROM packs WHERE sealed = 1 AND (? IS NULL OR keyset IS NOT ?)"
            other = {r[0] for r in self.db.execute(query, (keyset, keyset))}
            rows = [r for r in rows if r[2] not in other]
        return {d: (n, p, o) for d, n, p, o in rows}

    def pack_name(self, pid: int) -> str:
        return self._pack_name(pid)

    def _select(self, columns: str, digests: Iterable[bytes], codec: Codec) -> list[Any]:
        cid = CODEC_IDS[Codec(codec)]
        wanted = list(dict.fromkeys(digests))
        rows: list[Any] = []
        for i in range(0, len(wanted), BATCH):
            part = wanted[i : i + BATCH]
            marks = ",".join("?" * len(part))
            try:
                rows += self.db.execute(
                    f"SELECT {columns} FROM chunks WHERE codec = ? AND digest IN ({marks})",
                    (cid, *part),
                ).fetchall()
            except sqlite3.DatabaseError as exc:
                raise self._damaged(exc) from None
        return rows

    def _damaged(self, exc: sqlite3.DatabaseError) -> StoreError:
        if isinstance(exc, sqlite3.OperationalError):  # locked, I/O error: not the file's fault
            return StoreError(f"the chunk index {self.path}: {exc}; check the disk, try again")
        _CHECKED.discard(self.path)  # the next open checks it again, and rebuilds it
        return StoreError(
            f"the chunk index {self.path} cannot be read ({exc}); run the command again: "
            "a damaged index is rebuilt from the packs"
        )

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on any error); a damaged file is StoreError."""
        return self._transaction()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as exc:
            raise self._damaged(exc) from None
        try:
            yield
        except sqlite3.DatabaseError as exc:
            self.db.execute("ROLLBACK")
            raise self._damaged(exc) from None
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")


# A plain pack's chunk: a new row, or the row of a chunk in a sealed pack points here instead.
_PLAIN_OVER_SEALED = (
    "INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (digest, codec) DO UPDATE SET "
    "pack = ?, offset = ?, stored_len = ?, raw_len = ? "
    "WHERE chunks.pack IN (SELECT id FROM packs WHERE sealed = 1)"
)
# A sealed pack's chunk: a new row, or the row of a chunk in a pack sealed to other (or to
# unknown) recipients points here instead.
_SEALED_OVER_OTHER_KEYS = (
    "INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (digest, codec) DO UPDATE SET "
    "pack = ?, offset = ?, stored_len = ?, raw_len = ? "
    "WHERE chunks.pack IN (SELECT id FROM packs WHERE sealed = 1 AND keyset IS NOT ?)"
)


def _create(db: sqlite3.Connection) -> None:
    """Create the tables, under the write lock: threads and processes opening a new index
    at once must not see it half made (and take that for damage)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if tables and version == 1:  # before sealed packs: none of its packs is sealed
            db.execute("ALTER TABLE packs ADD COLUMN sealed INTEGER NOT NULL DEFAULT 0")
            version = 2
        if tables and version == 2:  # before key sets: its sealed packs' are not known
            db.execute("ALTER TABLE packs ADD COLUMN keyset TEXT")
            db.execute(f"PRAGMA user_version = {VERSION}")
        elif tables and version != VERSION:
            raise sqlite3.DatabaseError(f"index version {version}, not {VERSION}")
        if not tables:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {VERSION}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _pack_files(packs_dir: Path) -> Iterator[Path]:
    if packs_dir.is_dir():
        yield from packs_dir.glob(f"??/*{PACK_SUFFIX}")

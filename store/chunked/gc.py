"""Pack collection, planned: which packs hold no chunk a manifest uses (deleted), which are
mostly dead or small (repacked), and exactly how many bytes that frees.

Live chunks are those of every manifest present, whoever owns it: the artifact plan
(store.roots) decided which manifests go, and a manifest still there may be another
catalog's, an orphan that is not ours to judge, or one waiting for `store adopt`; it keeps
its chunks. They are the chunks whose count of manifests (store/chunked/refs.py: kept in the
index, brought up to date with the manifests on disk first) is above zero. A manifest that
cannot be read stops the plan (its chunks cannot be told from garbage). A dry run names the
manifests the real run removes first (`exclude`), so it plans exactly what the real run does.

What a plan needs besides the counts (the excluded manifests' chunks, groups, the packs'
live bytes, the chunks to move) goes in a scratch SQLite file attached to the index's
connection, beside the packs (or in the temp directory for a read-only store): memory stays
bounded whatever the number of chunks. store/chunked/repack.py carries a plan out.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import secrets
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from store.chunked.index import ChunkIndex
from store.chunked.layout import PACK_SUFFIX, TMP_PREFIX
from store.chunked.packs import ENTRY, FOOTER, MAGIC, TARGET_SIZE
from store.chunked.refs import Flush, Refs, rows, tally
from store.chunked.sealed import PackKeys

# Small packs (each put writes its own: a backup's globals or schema-only dump leaves one of a
# few KiB) are merged once this many are below SMALL_PACK bytes (docs/PERFORMANCE.md).
SMALL_PACK = 1 << 20
MERGE_MIN = 32
SHARED = -1  # the group of a chunk more than one group's manifests list
_BATCH = 4096
_COUNT_INTO = (  # gc.minus, and a group's neighbours (Planner.group)
    "INSERT INTO {table} (cnt, digest, codec) VALUES (?, ?, ?) "
    "ON CONFLICT (digest, codec) DO UPDATE SET cnt = cnt + excluded.cnt"
)
_SCRATCH = """
CREATE TABLE gc.minus (
    digest BLOB NOT NULL, codec INTEGER NOT NULL, cnt INTEGER NOT NULL,
    PRIMARY KEY (digest, codec)) WITHOUT ROWID;
CREATE TABLE gc.grp (
    digest BLOB NOT NULL, codec INTEGER NOT NULL, grp INTEGER NOT NULL, cnt INTEGER NOT NULL,
    PRIMARY KEY (digest, codec)) WITHOUT ROWID
"""

# One group's chunks and how many times its manifests list them (Planner.group).
_NEIGHBOUR = """
CREATE TABLE {table} (
    digest BLOB NOT NULL, codec INTEGER NOT NULL, cnt INTEGER NOT NULL,
    PRIMARY KEY (digest, codec)) WITHOUT ROWID
"""
# The chunks of a group that neither the group before nor the one after lists, into gc.grp.
_ALONE = (
    "INSERT INTO gc.grp (cnt, digest, codec, grp) SELECT n.cnt, n.digest, n.codec, ? "
    "FROM {now} n WHERE NOT EXISTS (SELECT 1 FROM {before} b "
    "WHERE b.digest = n.digest AND b.codec = n.codec) AND NOT EXISTS (SELECT 1 FROM {after} a "
    "WHERE a.digest = n.digest AND a.codec = n.codec) "
    "ON CONFLICT (digest, codec) DO UPDATE SET cnt = cnt + excluded.cnt, "
    "grp = CASE WHEN grp = excluded.grp THEN grp ELSE -1 END"
)


def packed_size(stored: int, chunks: int) -> int:
    """The size of a pack holding `chunks` chunks of `stored` bytes in all."""
    return len(MAGIC) + stored + chunks * ENTRY.size + FOOTER.size


@dataclass(frozen=True, slots=True)
class PackSize:
    name: str
    size: int


@dataclass(frozen=True, slots=True, kw_only=True)
class NewPack:
    """A pack the repack writes: rows `first`..`last` of the moves, in order."""

    first: int
    last: int
    size: int
    chunks: int
    sealed: bool = False  # its chunks came from sealed packs: it is sealed too


@dataclass(slots=True, kw_only=True)
class PackPlan:
    delete: list[PackSize] = field(default_factory=list)  # no live chunk
    repack: list[PackSize] = field(default_factory=list)  # rewritten with their live chunks
    new_packs: list[NewPack] = field(default_factory=list)
    merged_small: int = 0  # of `repack`, those there only because they are small
    # old pack -> after which new pack (its index in new_packs) it may go
    drop_after: dict[str, int] = field(default_factory=dict)
    packs: int = 0  # packs in the store
    manifests: int = 0  # manifests read
    group_bytes: dict[int, int] = field(default_factory=dict)  # Planner.group_bytes
    sealed_kept: int = 0  # sealed packs worth repacking, kept: no identity or no recipient

    @property
    def deleted_bytes(self) -> int:
        return sum(p.size for p in self.delete)

    @property
    def repack_savings(self) -> int:
        return sum(p.size for p in self.repack) - sum(p.size for p in self.new_packs)

    @property
    def freed_bytes(self) -> int:
        return self.deleted_bytes + self.repack_savings


class Planner:
    """The live chunks of a store, and what collection does with its packs."""

    def __init__(self, index: ChunkIndex, packs_dir: Path, keys: PackKeys | None = None) -> None:
        self.index = index
        self.keys = keys or PackKeys()
        self.db = index.db
        self.packs_dir = packs_dir
        writable = os.access(packs_dir, os.W_OK)
        where = packs_dir if writable else Path(tempfile.gettempdir())
        self.scratch = where / f"{TMP_PREFIX}gc-{secrets.token_hex(6)}.sqlite"
        self.names: dict[int, str] = {}  # pack id -> name, of the packs to repack
        self.manifests = 0
        self.db.execute("ATTACH DATABASE ? AS gc", (str(self.scratch),))
        try:
            os.chmod(self.scratch, 0o600)
            for pragma in ("journal_mode = MEMORY", "synchronous = OFF", "cache_size = -16384"):
                self.db.execute(f"PRAGMA gc.{pragma}")
            for statement in _SCRATCH.split(";"):
                self.db.execute(statement)
            self.refs = Refs(index, "main" if index.writable else "gc")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.db.execute("DETACH DATABASE gc")
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(f"{self.scratch}{suffix}").unlink(missing_ok=True)

    # -- the live set --------------------------------------------------------------------

    def count(self, manifests: Iterable[Path], gone: Iterable[Path] = ()) -> list[Path]:
        """Bring the counts to `manifests` (every manifest present), after taking back those
        of the manifests deleted (`gone`); those that could not be counted (gone or replaced
        meanwhile: only without the store's lock, a dry run)."""
        paths = list(manifests)
        self.manifests = len(paths)
        return self.refs.sync(paths, gone)

    def exclude(self, manifests: Iterable[Path]) -> None:
        """Plan as if these were gone (the real run removes them before it collects packs):
        tallied together (consecutive backups list mostly the same chunks), TALLY at most."""
        self._tally_into("gc.minus", manifests)

    def group(self, manifests: Iterable[tuple[Path, int]]) -> None:
        """Put each manifest in its group (>= 0): `group_bytes` counts what only it lists.
        Groups are read oldest first; a chunk the previous or next group lists too is no
        group's alone, and is not written (backups next to each other share most chunks).
        Three groups' chunks at a time (the previous, this one, the next) are tallied into
        scratch tables, TALLY at a time: a group of a large dump lists millions."""
        members: dict[int, list[Path]] = {}
        for path, group in manifests:
            members.setdefault(group, []).append(path)
        order = sorted(members, key=lambda g: min(_written(p) for p in members[g]))
        before, now, after = "gc.g_before", "gc.g_now", "gc.g_after"
        for table in (before, now, after):
            self.db.execute(_NEIGHBOUR.format(table=table))
        if order:
            self._tally_into(now, members[order[0]])
        for i, group in enumerate(order):
            if i + 1 < len(order):
                self._tally_into(after, members[order[i + 1]])
            self._write(_ALONE.format(now=now, before=before, after=after), [(group,)])
            self.db.execute(f"DELETE FROM {before}")
            before, now, after = now, after, before

    def _tally_into(self, table: str, paths: Iterable[Path]) -> None:
        """Add how many times `paths` list each chunk to `table`, TALLY chunks at a time."""
        upsert = _COUNT_INTO.format(table=table)
        tallies: dict[int, Counter[bytes]] = {}

        def flush(t: dict[int, Counter[bytes]]) -> None:
            self._write(upsert, rows(t))
            t.clear()

        for path in paths:
            self._tally(path, tallies, flush)
        flush(tallies)

    def _tally(
        self, path: Path, tallies: dict[int, Counter[bytes]], flush: Flush | None = None
    ) -> None:
        with contextlib.suppress(FileNotFoundError):  # collected meanwhile (a dry run)
            tally(path, tallies, flush)

    def _write(self, upsert: str, values: Iterable[tuple[object, ...]]) -> None:
        self.db.execute("BEGIN")  # the scratch file alone
        try:
            self.db.executemany(upsert, values)
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def group_bytes(self) -> dict[int, int]:
        """Per group: the bytes of the chunks only that group's manifests list (stored, and
        their trailer entries): what rewriting their packs without them frees."""
        rows = self.db.execute(
            f"SELECT g.grp, sum(c.stored_len) + {ENTRY.size} * count(*) FROM gc.grp g "
            f"JOIN {self.refs.table} r ON r.digest = g.digest AND r.codec = g.codec "
            "JOIN main.chunks c ON c.digest = g.digest AND c.codec = g.codec "
            "WHERE g.grp >= 0 AND r.n = g.cnt GROUP BY g.grp"
        )
        return {int(g): int(n) for g, n in rows}

    def _live(self, columns: str) -> str:
        """SELECT `columns` of the chunks (c) some manifest not excluded lists."""
        return (
            f"SELECT {columns} FROM {self.refs.table} r JOIN main.chunks c "
            "ON c.digest = r.digest AND c.codec = r.codec LEFT JOIN gc.minus m "
            "ON m.digest = r.digest AND m.codec = r.codec WHERE r.n > coalesce(m.cnt, 0)"
        )

    # -- the plan ------------------------------------------------------------------------

    def plan(self, threshold: float) -> PackPlan:
        """Packs with no live chunk go; a pack whose dead bytes (what rewriting it frees) are
        more than `threshold` of its size is repacked, and so are the small ones once there
        are MERGE_MIN of them. Deterministic: the same store gives the same plan."""
        self.db.execute(
            "CREATE TABLE gc.used AS "
            + self._live("c.pack AS pack, count(*) AS n, sum(c.stored_len) AS bytes")
            + " GROUP BY c.pack"
        )
        rows = self.db.execute(
            "SELECT p.id, p.name, coalesce(u.n, 0), coalesce(u.bytes, 0), p.sealed "
            "FROM main.packs p LEFT JOIN gc.used u ON u.pack = p.id ORDER BY p.id"
        ).fetchall()
        out = PackPlan(packs=len(rows))
        small: list[tuple[int, PackSize]] = []
        repack: list[tuple[int, PackSize]] = []
        rewrite_sealed = self.keys.can_open and self.keys.can_seal
        for pid, name, n, live, sealed in rows:
            size = self._size(name)
            if size is None:
                continue
            item = PackSize(name, size)
            if n == 0:
                out.delete.append(item)
            elif sealed and not rewrite_sealed:  # not read here: kept as it is
                out.sealed_kept += int(size - packed_size(live, n) > threshold * size)
            elif size - packed_size(live, n) > threshold * size:
                repack.append((pid, item))
            elif size < SMALL_PACK:
                small.append((pid, item))
        if len(small) >= MERGE_MIN:
            out.merged_small = len(small)
            repack = sorted(repack + small)
        out.repack = [item for _, item in repack]
        self.names = {pid: item.name for pid, item in repack}
        if repack:
            self._moves(out)
        return out

    def _size(self, name: str) -> int | None:
        try:
            return (self.packs_dir / name[:2] / f"{name}{PACK_SUFFIX}").stat().st_size
        except FileNotFoundError:
            return None  # gone since the index was reconciled (not under the lock: a dry run)

    def _moves(self, out: PackPlan) -> None:
        """The live chunks of the packs to repack, in pack and offset order, cut into new
        packs as the pack writer cuts them (closed once TARGET_SIZE stored bytes are in)."""
        self.db.execute("CREATE TABLE gc.repack (id INTEGER PRIMARY KEY)")
        self.db.executemany("INSERT INTO gc.repack VALUES (?)", [(p,) for p in self.names])
        self.db.execute(
            "CREATE TABLE gc.moves (seq INTEGER PRIMARY KEY, digest BLOB, codec INTEGER, "
            "pack INTEGER, offset INTEGER, stored_len INTEGER, raw_len INTEGER, sealed INTEGER)"
        )
        self.db.execute(  # plain chunks, then sealed ones: never in the same new pack
            "INSERT INTO gc.moves (digest, codec, pack, offset, stored_len, raw_len, sealed) "
            + self._live(
                "c.digest, c.codec, c.pack, c.offset, c.stored_len, c.raw_len, "
                "(SELECT sealed FROM main.packs WHERE id = c.pack) AS s"
            )
            + " AND c.pack IN (SELECT id FROM gc.repack) ORDER BY s, c.pack, c.offset"
        )
        first = last = stored = count = 0
        kind = 0
        for seq, stored_len, sealed in self.db.execute(
            "SELECT seq, stored_len, sealed FROM gc.moves ORDER BY seq"
        ):
            if count and sealed != kind:
                out.new_packs.append(self._new(first, last, stored, count, kind))
                stored = count = 0
            first, kind = (seq, sealed) if count == 0 else (first, kind)
            stored, count, last = stored + stored_len, count + 1, seq
            if len(MAGIC) + stored >= TARGET_SIZE:
                out.new_packs.append(self._new(first, last, stored, count, kind))
                stored = count = 0
        if count:
            out.new_packs.append(self._new(first, last, stored, count, kind))
        ends = [p.last for p in out.new_packs]
        for pid, end in self.db.execute("SELECT pack, max(seq) FROM gc.moves GROUP BY pack"):
            out.drop_after[self.names[pid]] = bisect.bisect_left(ends, end)

    def moves(self, new: NewPack) -> Iterator[tuple[bytes, int, str, int, int, int]]:
        """(digest, codec id, old pack, offset, stored length, raw length) of a new pack's
        chunks, in order, a batch at a time (no statement stays open across index writes)."""
        start = new.first
        while start <= new.last:
            rows = self.db.execute(
                "SELECT seq, digest, codec, pack, offset, stored_len, raw_len FROM gc.moves "
                "WHERE seq >= ? AND seq <= ? ORDER BY seq LIMIT ?",
                (start, new.last, _BATCH),
            ).fetchall()
            if not rows:
                return
            for _, digest, codec, pack, offset, stored_len, raw_len in rows:
                yield digest, codec, self.names[pack], offset, stored_len, raw_len
            start = rows[-1][0] + 1

    def _new(self, first: int, last: int, stored: int, count: int, sealed: int) -> NewPack:
        size = packed_size(stored, count)
        if sealed:
            size = self.keys.sealed_size(size)
        return NewPack(first=first, last=last, size=size, chunks=count, sealed=bool(sealed))


def _written(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return 0

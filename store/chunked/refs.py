"""How many times manifests list each chunk: the counts pack collection plans with.

Kept in the index file, so that a collection reads only the manifests that came or went since
the last one, not every manifest of the store (a cleanup runs after every automatic backup):

    counted(name, size, mtime_ns, ino)  the manifests whose chunks are in `refs`, as their
                                        files were when they were counted
    refs(digest, codec, n)              per chunk, how many times counted manifests list it

Derived data, like the rest of the index. A manifest is deleted by renaming it aside
(`<name>.gone`, one rename: it is no longer a manifest of the store); `sync` first takes back
the counts of the manifests set aside, together, then deletes them, then counts the manifests
not counted yet. A counted manifest that is gone otherwise (a person deleted it) or whose file
changed (a damaged one replaced by a repair) cannot be subtracted: then every manifest is
counted again. Each batch of counts changes with its `counted` rows in one transaction, under
the index's write lock: whenever a process dies, the counts are the sum over the manifests
`counted` names, and two processes never count one manifest twice. An index that cannot be
written (a read-only copy) is counted into the collection's scratch file instead, every time.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from store.chunked import crashpoint
from store.chunked.index import ChunkIndex
from store.chunked.manifest import Manifest
from store.chunked.packs import CODEC_IDS
from store.codecs import Codec
from store.errors import BlobCorrupted, StoreError

Fingerprint = tuple[int, int, int]  # size, mtime_ns, inode
TALLY = 1 << 17  # distinct chunks tallied in memory (~20 MB) before they are written
GONE = ".gone"  # a manifest deleted: renamed aside until its counts are taken back

_TABLES = """
CREATE TABLE IF NOT EXISTS {s}.counted (
    name TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    ino INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.refs (
    digest BLOB NOT NULL, codec INTEGER NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (digest, codec)) WITHOUT ROWID
"""


def fingerprint(path: Path) -> Fingerprint | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ino


Flush = Callable[[dict[int, Counter[bytes]]], None]


def tally(path: Path, into: dict[int, Counter[bytes]], flush: Flush | None = None) -> None:
    """Add how many times the manifest lists each chunk (per codec id) to `into`; whenever
    `into` holds TALLY distinct chunks, `flush(into)` writes them and empties it (one manifest
    of a large dump lists millions). FileNotFoundError when it is gone; StoreError when it
    cannot be read."""
    try:
        found = Manifest(path)
        cid = CODEC_IDS[Codec(found.footer.chunk_codec)]
        for records in found.records():
            into.setdefault(cid, Counter()).update(d for d, _ in records)
            if flush is not None and size_of(into) >= TALLY:
                flush(into)
    except (BlobCorrupted, KeyError, ValueError) as exc:
        raise StoreError(
            f"pack collection stopped: manifest {path} cannot be read ({exc}), so the chunks "
            "it uses cannot be told from garbage; nothing was deleted from the packs. Run "
            "`dumpledger verify --all`: a backup of the same database state repairs it"
        ) from None


def size_of(tallies: dict[int, Counter[bytes]]) -> int:
    return sum(len(c) for c in tallies.values())


def rows(tallies: dict[int, Counter[bytes]]) -> Iterator[tuple[int, bytes, int]]:
    """(n, digest, codec id) of every chunk tallied, in key order: SQLite then walks the
    table's B-tree once, front to back (in the manifests' order, random digests, every row
    touched a page that had left SQLite's small cache: 2.5x slower for a 1 GB dump's)."""
    for cid, counts in sorted(tallies.items()):
        for digest in sorted(counts):
            yield counts[digest], digest, cid


_ADD = (
    "INSERT INTO {s}.refs (n, digest, codec) VALUES (?, ?, ?) "
    "ON CONFLICT (digest, codec) DO UPDATE SET n = n + excluded.n"
)


_SUBTRACT = "UPDATE {s}.refs SET n = n - ? WHERE digest = ? AND codec = ?"


class _Writes:
    """A `flush` for `tally`: writes (n, digest, codec) of every chunk tallied by `statement`
    and empties the tallies; `wrote` once it has (a batch ends at that manifest)."""

    def __init__(self, refs: Refs, statement: str) -> None:
        self.db, self.statement, self.wrote = refs.db, statement, False

    def __call__(self, tallies: dict[int, Counter[bytes]]) -> None:
        self.db.executemany(self.statement, rows(tallies))
        tallies.clear()
        self.wrote = True


class _Replaced(Exception):
    """A manifest changed while it was counted."""

    def __init__(self, path: Path) -> None:
        super().__init__(str(path))
        self.path = path


class Refs:
    def __init__(self, index: ChunkIndex, schema: str = "main") -> None:
        self.index = index
        self.db = index.db
        self.s = schema
        for statement in _TABLES.format(s=schema).split(";"):
            self.db.execute(statement)

    @property
    def table(self) -> str:
        return f"{self.s}.refs"

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        if self.s == "main":
            with self.index.transaction():
                yield
            return
        self.db.execute("BEGIN")  # the scratch file alone: nobody else writes it
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def sync(self, manifests: Iterable[Path], gone: Iterable[Path] = ()) -> list[Path]:
        """Take back the counts of the manifests set aside (`gone`), then count those not
        counted yet (all of them again when a counted one went or changed otherwise); the ones
        that could not be counted (gone or replaced meanwhile)."""
        self._take_back(list(gone))
        present = {p.name: (p, fp) for p in manifests if (fp := fingerprint(p)) is not None}
        missed: list[Path] = []
        while True:
            try:
                with self._writing():
                    counted = self._counted()
                    if any(present.get(n, (None, None))[1] != fp for n, fp in counted.items()):
                        self._clear()
                        counted = {}
                    # oldest first: neighbours in time list mostly the same chunks (_count)
                    todo = sorted(
                        (v for n, v in present.items() if n not in counted and v[0] not in missed),
                        key=lambda item: (item[1][1], item[0].name),
                    )
                    if not todo:
                        return missed
                    batch = self._count(todo)
                    self.db.executemany(
                        f"INSERT OR REPLACE INTO {self.s}.counted VALUES (?, ?, ?, ?)",
                        [(path.name, *fp) for path, fp in batch],
                    )
            except _Replaced as replaced:  # what was written went with the transaction
                missed.append(replaced.path)

    def _counted(self) -> dict[str, Fingerprint]:
        return {
            name: (size, mtime, ino)
            for name, size, mtime, ino in self.db.execute(
                f"SELECT name, size, mtime_ns, ino FROM {self.s}.counted"
            )
        }

    def _take_back(self, gone: list[Path]) -> None:
        """Subtract the counts of manifests set aside (the rename kept their files as they
        were counted), a batch at a time; then their files go. One that cannot be read, or is
        not the file that was counted, makes every count go."""
        while gone:
            with self._writing():
                counted = self._counted()
                batch: list[Path] = []
                tallies: dict[int, Counter[bytes]] = {}
                subtract = _Writes(self, _SUBTRACT.format(s=self.s))
                while gone and not subtract.wrote and size_of(tallies) < TALLY:
                    path = gone.pop(0)
                    batch.append(path)
                    name = path.name.removesuffix(GONE)
                    if name not in counted:
                        continue  # never counted (or taken back already): only the file goes
                    try:
                        if fingerprint(path) != counted[name]:
                            raise FileNotFoundError(path)
                        tally(path, tallies, subtract)
                    except (OSError, StoreError):
                        self._clear()
                        counted = {}
                        tallies.clear()
                        continue
                    self.db.execute(f"DELETE FROM {self.s}.counted WHERE name = ?", (name,))
                subtract(tallies)
                self.db.execute(f"DELETE FROM {self.s}.refs WHERE n <= 0")
            crashpoint.reached("counts-taken-back")
            for path in batch:  # after the commit: a crash before leaves files, never counts
                with contextlib.suppress(OSError):
                    path.unlink()

    def _count(self, todo: list[tuple[Path, Fingerprint]]) -> list[tuple[Path, Fingerprint]]:
        """Count manifests from `todo`, in the caller's transaction: tallied together
        (consecutive backups list mostly the same chunks: one row each, not one per listing),
        written whenever TALLY distinct chunks are tallied; the batch ends at the manifest
        during which that happened. _Replaced when one went or changed while it was read
        (the caller's transaction then takes back what was written)."""
        batch: list[tuple[Path, Fingerprint]] = []
        tallies: dict[int, Counter[bytes]] = {}
        add = _Writes(self, _ADD.format(s=self.s))
        while todo and not add.wrote and size_of(tallies) < TALLY:
            path, fp = todo.pop(0)
            try:
                tally(path, tallies, add)
            except FileNotFoundError:  # gone meanwhile (a dry run holds no lock)
                raise _Replaced(path) from None
            if fingerprint(path) != fp:  # replaced while read: the next sync counts it
                raise _Replaced(path)
            batch.append((path, fp))
        add(tallies)
        return batch

    def _clear(self) -> None:
        self.db.execute(f"DELETE FROM {self.s}.refs")
        self.db.execute(f"DELETE FROM {self.s}.counted")

"""The roots and journals of a local store, as files under <store>/roots/ (see store.roots).

    roots/legacy              blobs from before roots, held until a person adopts them
    roots/<owner>/owner.json  who registered: label, time
    roots/<owner>/refs        the owner's roots, rewritten whole by its collection
    roots/<owner>/refs.<id>   roots a backup added since (one file per backup, never edited)
    roots/<owner>/wrote       the blobs the owner wrote, compacted by its collection
    roots/<owner>/wrote.<id>  appended by one writing process (a line per blob, fsynced)

Every file is written to a temp file in its directory, fsynced and renamed (0600; directories
0700), except the per-process journals, which are appended and fsynced line by line: a torn
last line loses one journal entry, which leaks that blob (kept), never loses one.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
import time
from collections.abc import Callable, Container, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from store.errors import StoreError
from store.files import fsync_dir
from store.roots import LEGACY, OWNER, OwnerInfo, Ref, State, check_owner, decode, encode
from store.roots import legacy_at_registration as legacy_rule

OWNER_FILE = "owner.json"
BASE = "refs"
JOURNAL = "wrote"


def _mkdir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def write_atomically(path: Path, data: bytes) -> None:
    """Temp file beside `path`, write, fsync, rename, fsync the directory; 0600."""
    tmp = path.with_name(f".tmp-{path.name}-{secrets.token_hex(6)}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            if fh.write(data) != len(data):
                raise OSError(errno.EIO, f"short write to {tmp}")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read(path: Path, *, strict: bool) -> set[Ref]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return set()
    return decode(data, where=str(path), strict=strict)


class RootDir:
    def __init__(self, store_root: Path) -> None:
        self.store_root = store_root
        self.dir = store_root / "roots"
        self.token = f"{os.getpid()}-{secrets.token_hex(6)}"

    def owner_dir(self, owner: str) -> Path:
        return self.dir / check_owner(owner)

    def initialised(self) -> bool:
        return self.dir.is_dir()

    def registered(self, owner: str) -> bool:
        return (self.owner_dir(owner) / OWNER_FILE).is_file()

    def register(
        self,
        owner: str,
        *,
        label: Mapping[str, str],
        known: Container[Ref],
        referenced: Iterable[Ref],
        present: Callable[[], Iterable[Ref]],
    ) -> None:
        if not self.initialised():
            self._initialise(legacy_rule(present(), known))
        home = self.owner_dir(owner)
        _mkdir(home)
        write_atomically(home / BASE, encode(referenced))
        info = {
            "owner": owner,
            "label": dict(label),
            "registered_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        write_atomically(home / OWNER_FILE, (json.dumps(info, sort_keys=True) + "\n").encode())

    def _initialise(self, legacy: set[Ref]) -> None:
        """roots/ appears in one rename, with its legacy file: two first registrations at
        once agree on one."""
        _mkdir(self.store_root)
        tmp = self.store_root / f".tmp-roots-{secrets.token_hex(6)}"
        _mkdir(tmp)
        try:
            if legacy:
                write_atomically(tmp / LEGACY, encode(legacy))
            os.rename(tmp, self.dir)
            fsync_dir(self.store_root)
        except OSError:
            if not self.dir.is_dir():
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def add(self, owner: str, refs: Iterable[Ref]) -> None:
        name = f"{BASE}.{time.time_ns()}-{secrets.token_hex(6)}"
        write_atomically(self.owner_dir(owner) / name, encode(refs))

    def replace(self, owner: str, refs: Iterable[Ref], exists: Callable[[Ref], bool]) -> None:
        """The owner's roots become `refs`; its journal keeps only blobs still present."""
        home = self.owner_dir(owner)
        added = sorted(home.glob(f"{BASE}.*"))
        write_atomically(home / BASE, encode(refs))
        for path in added:
            path.unlink(missing_ok=True)
        parts = sorted(home.glob(f"{JOURNAL}.*"))
        wrote = _read(home / JOURNAL, strict=False)
        for path in parts:
            wrote |= _read(path, strict=False)
        write_atomically(home / JOURNAL, encode(r for r in wrote if exists(r)))
        for path in parts:
            path.unlink(missing_ok=True)
        for path in home.glob(".tmp-*"):  # a crashed atomic write's (no writer runs now)
            path.unlink(missing_ok=True)

    def journal(self, owner: str, ref: Ref) -> None:
        """Record, durably, that this process writes `ref` for `owner` (before it is published)."""
        home = self.owner_dir(owner)
        _mkdir(home)
        path = home / f"{JOURNAL}.{self.token}"
        try:  # never through a symbolic link planted in its place
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise StoreError(
                    f"{path} is a symbolic link, not a journal of the store: remove it"
                ) from None
            raise
        try:
            line = f"{ref.digest} {ref.codec.value}\n".encode()
            if os.write(fd, line) != len(line):
                raise OSError(errno.EIO, f"short write to {path}")
            os.fsync(fd)
        finally:
            os.close(fd)

    def roots_of(self, owner: str) -> set[Ref]:
        home = self.owner_dir(owner)
        refs = set[Ref]()
        for path in [home / BASE, *sorted(home.glob(f"{BASE}.*"))]:
            refs |= _read(path, strict=True)
        return refs

    def state(self, present: Mapping[Ref, int]) -> State:
        roots: dict[str, set[Ref]] = {}
        journals: dict[str, set[Ref]] = {}
        for home in self._owner_dirs():
            roots[home.name] = self.roots_of(home.name)
            wrote = set[Ref]()
            for path in [home / JOURNAL, *sorted(home.glob(f"{JOURNAL}.*"))]:
                wrote |= _read(path, strict=False)
            journals[home.name] = wrote
        return State(
            present=present,
            roots=roots,
            journals=journals,
            legacy=_read(self.dir / LEGACY, strict=True),
            initialised=self.initialised(),
        )

    def _owner_dirs(self) -> list[Path]:
        if not self.dir.is_dir():
            return []
        return sorted(p for p in self.dir.iterdir() if p.is_dir() and OWNER.fullmatch(p.name))

    def owners(self) -> list[OwnerInfo]:
        out = []
        for home in self._owner_dirs():
            try:
                info = json.loads((home / OWNER_FILE).read_text())
            except (OSError, ValueError):
                info = {}
            files = [p for p in home.iterdir() if p.is_file() and not p.name.startswith(".")]
            refs = self.roots_of(home.name)
            out.append(
                OwnerInfo(
                    id=home.name,
                    label={str(k): str(v) for k, v in (info.get("label") or {}).items()},
                    registered_at=info.get("registered_at"),
                    updated_at=max((p.stat().st_mtime for p in files), default=0.0),
                    refs=len(refs),
                )
            )
        return out

    def forget(self, owner: str) -> None:
        home = self.owner_dir(owner)
        # One rename takes the roots away; the files then go.
        gone = self.dir / f".forgotten-{owner}-{secrets.token_hex(4)}"
        os.rename(home, gone)
        fsync_dir(self.dir)
        shutil.rmtree(gone)

    def adopt(self, owner: str, refs: Iterable[Ref]) -> None:
        """`refs` join the owner's journal; the legacy roots go."""
        home = self.owner_dir(owner)
        write_atomically(home / f"{JOURNAL}.adopted-{secrets.token_hex(6)}", encode(refs))
        (self.dir / LEGACY).unlink(missing_ok=True)
        fsync_dir(self.dir)

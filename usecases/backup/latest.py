"""The real files under backups/database/: the newest backups' dumps, and `latest_*`.

    <newest>_full.sql.gz, <newest>_globals.sql.gz, ...   every artifact of the newest backup
    <newest auto>_full.sql.gz                           the newest automatic backup's dump
    latest_full.sql.gz, latest_auto.sql.gz              hard links to those two

They are real files (0600), so `gunzip -c latest_full.sql.gz | psql` restores with nothing
but gzip: a byte copy of the artifact's stored form, never a recompression (from packs the
backup's read-back re-hashed, or with every chunk checked as it is copied). Older backups
keep their `<name>_metadata.json`; their artifact files go when a newer backup arrives
(`dumpledger export NAME` writes one again). Symlinks a backup of the first layout left (into
store/sha256/) stay.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from store import BlobMissing, BlobStore, Codec
from store.codecs import SUFFIXES
from usecases.backup.views import artifact_filename, view_owner
from usecases.files import private_dir

LATEST = ("latest_full", "latest_auto")


@dataclass(frozen=True, slots=True, kw_only=True)
class Wanted:
    filename: str
    art: dict[str, Any]


def file_size(art: dict[str, Any]) -> int:
    """The size of an artifact's file: its stored form; a custom dump's file is the raw dump
    (chunked, its stored size is that of its compressed chunks)."""
    return int(art["raw_size"] if Codec(art["codec"]) is Codec.NONE else art["stored_size"])


def wanted_files(
    newest: dict[str, Any] | None, newest_auto: dict[str, Any] | None
) -> tuple[list[Wanted], dict[str, str]]:
    """The artifact files to keep, and latest_* name -> the artifact file it links to."""
    files: list[Wanted] = []
    links: dict[str, str] = {}
    for link, backup, kinds in (
        ("latest_full", newest, None),
        ("latest_auto", newest_auto, ("full",)),
    ):
        if backup is None:
            continue
        for art in backup["artifacts"]:
            if kinds is not None and art["kind"] not in kinds:
                continue
            name = artifact_filename(backup["name"], art["kind"], art["codec"])
            if all(w.filename != name for w in files):
                files.append(Wanted(filename=name, art=art))
            if art["kind"] == "full":
                links[f"{link}{SUFFIXES[Codec(art['codec'])]}"] = name
    return files, links


def update_latest_files(
    database_dir: Path,
    store: BlobStore,
    newest: dict[str, Any] | None,
    newest_auto: dict[str, Any] | None,
    reuse: dict[tuple[str, str], Path],
) -> None:
    """Write the files `wanted_files` names (a file already holding the same artifact is
    hard-linked, not copied again: `reuse` maps (digest, codec) to such files), link latest_*,
    then remove the artifact files and latest_* of other backups."""
    private_dir(database_dir)
    files, links = wanted_files(newest, newest_auto)
    written = set()
    for want in files:
        dest = database_dir / want.filename
        if _current(dest, want.art) or _write(store, dest, want.art, reuse):
            written.add(want.filename)
    for link, target in links.items():
        if target in written:
            _hard_link(database_dir / target, database_dir / link)
    keep = written | {link for link, target in links.items() if target in written}
    _remove_others(database_dir, keep)


def _current(dest: Path, art: dict[str, Any]) -> bool:
    """A file of this backup's artifact, complete (files are written atomically)."""
    try:
        st = dest.lstat()
    except FileNotFoundError:
        return False
    if Codec(art["codec"]).sealed:  # an age file: its size is not the stored size
        return not dest.is_symlink() and st.st_size > 0
    return not dest.is_symlink() and st.st_size == file_size(art)


def _write(
    store: BlobStore, dest: Path, art: dict[str, Any], reuse: dict[tuple[str, str], Path]
) -> bool:
    """Write one artifact's file; False when the store lacks it (after a partial recover)."""
    same = reuse.get((art["digest"], art["codec"]))
    if same is not None and same != dest and _current(same, art):
        _hard_link(same, dest)
        return True
    try:
        store.materialize(
            art["digest"],
            Codec(art["codec"]),
            dest,
            expected_stored_sha256=art["stored_sha256"],
        )
    except BlobMissing:
        return False
    return True


def _hard_link(source: Path, link: Path) -> None:
    """`link` becomes another name of `source`, in one rename (a copy where links fail)."""
    if link.exists() and not link.is_symlink() and os.path.samefile(source, link):
        return
    tmp = link.with_name(f".{link.name}.{secrets.token_hex(4)}.tmp")
    try:
        try:
            os.link(source, tmp)
        except OSError:  # a filesystem without hard links
            import shutil

            shutil.copyfile(source, tmp)
            os.chmod(tmp, 0o600)
        os.replace(tmp, link)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _remove_others(database_dir: Path, keep: set[str]) -> None:
    for path in database_dir.iterdir():
        if path.name in keep or path.name.startswith("."):
            continue
        latest = path.name.startswith(tuple(f"{n}." for n in LATEST))
        owned = view_owner(path.name) is not None and not path.name.endswith("_metadata.json")
        if latest or (owned and not path.is_symlink()):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def reusable_files(
    database_dir: Path, backups: Iterable[dict[str, Any]]
) -> dict[tuple[str, str], Path]:
    """Artifact files already under database_dir, by (digest, codec), of `backups`."""
    out: dict[tuple[str, str], Path] = {}
    for b in backups:
        for art in b["artifacts"]:
            path = database_dir / artifact_filename(b["name"], art["kind"], art["codec"])
            if path.is_file() and not path.is_symlink():
                out[(art["digest"], art["codec"])] = path
    return out

"""Any backup's dump, out of the store: `export` writes its file (what `gunzip -c FILE | psql`
restores: a byte copy of the stored chunks, each checked), `cat` its plain bytes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalog.queries import get_backup
from store import Codec
from usecases.backup.verify import naming_recipients
from usecases.backup.views import ARTIFACT_KINDS, artifact_filename
from usecases.context import App
from usecases.errors import BadInput


@dataclass(frozen=True, slots=True, kw_only=True)
class Exported:
    backup: str
    kind: str
    path: Path | None  # None: written to standard output
    size: int
    digest: str


def artifact_of(app: App, name: str, kind: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The completed backup `name` and its artifact `kind`; BadInput naming what exists."""
    if kind not in ARTIFACT_KINDS:
        raise BadInput(f"unknown artifact {kind!r}: use one of {', '.join(ARTIFACT_KINDS)}")
    backup = get_backup(app.catalog.engine, name)
    if backup["status"] != "completed":
        raise BadInput(f"backup {name} is {backup['status']}: it has no dump to export")
    for art in backup["artifacts"]:
        if art["kind"] == kind:
            return backup, art
    kinds = ", ".join(a["kind"] for a in backup["artifacts"])
    raise BadInput(f"backup {name} has no {kind} artifact (it has {kinds}); pass --artifact")


def default_filename(name: str, art: dict[str, Any]) -> str:
    return artifact_filename(name, art["kind"], art["codec"])


def export_file(app: App, name: str, kind: str, dest: Path) -> Exported:
    backup, art = artifact_of(app, name, kind)
    if dest.is_dir():
        dest = dest / default_filename(name, art)
    with app.store.protect(), naming_recipients(backup):
        size = app.store.materialize(
            art["digest"],
            Codec(art["codec"]),
            dest,
            expected_stored_sha256=art["stored_sha256"],
        )
    return Exported(backup=name, kind=kind, path=dest, size=size, digest=art["digest"])


@contextmanager
def file_stream(app: App, name: str, kind: str) -> Iterator[Iterator[bytes]]:
    """The bytes `export_file` writes, for standard output."""
    backup, art = artifact_of(app, name, kind)
    with app.store.protect(), naming_recipients(backup):
        yield app.store.file_stream(
            art["digest"], Codec(art["codec"]), expected_stored_sha256=art["stored_sha256"]
        )


@contextmanager
def plain_stream(app: App, name: str, kind: str) -> Iterator[Iterator[bytes]]:
    """The artifact's plain bytes (SQL, or a custom-format dump), each chunk checked."""
    backup, art = artifact_of(app, name, kind)
    with (
        app.store.protect(),
        naming_recipients(backup),
        app.store.open_raw(art["digest"], Codec(art["codec"])) as chunks,
    ):
        yield chunks

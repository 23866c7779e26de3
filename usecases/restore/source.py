"""What a restore restores: the request, and its source (a catalog backup's artifact, or a dump
file from outside the catalog), loaded and checked before anything is touched; the source as
pg_restore reads it (a path) and as psql reads it (a plain script).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from catalog.queries import get_backup
from pgtools.binaries import find_program
from pgtools.dump import PLAIN_TRAILERS
from pgtools.globalsql import event_trigger_owners_in, event_trigger_owners_in_listing
from pgtools.platform import custom_script
from pgtools.restore import custom_dump_listing
from store import Codec
from store.age import AGE_MAGIC, AgeKeys
from store.codecs import decompress
from store.local import read_chunks
from usecases.backup.verify import naming_recipients
from usecases.context import App
from usecases.errors import BadInput, UseCaseError
from usecases.files import private_dir
from usecases.restore.partial import artifact_for
from usecases.restore.stream import checked_chunks, meta_checked

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
CUSTOM_MAGIC = b"PGDMP"
DECRYPTED_PREFIX = "decrypted-"


class SourceDamaged(UseCaseError):
    """The backup or file failed verification; nothing was touched."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RestoreRequest:
    backup: str | None = None
    file: Path | None = None
    target_db: str | None = None
    artifact: str | None = None  # full (plain SQL, psql) or custom (pg_restore); None: pick
    schemas: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()
    jobs: int = 2
    with_globals: bool = True
    allow_meta_commands: bool = False  # --file: let psql run the file's meta-commands
    keep_platform: bool = False  # restore into a Supabase instance, leaving its platform


@dataclass(slots=True, kw_only=True)
class Source:
    """What is restored: a catalog backup's artifact, or a file from outside the catalog."""

    label: str
    backup: dict[str, Any] | None
    file: Path | None
    format: str  # plain or custom
    codec: Codec
    digest: str  # sha256 of the raw dump (catalog) or of the file as it is (file)
    artifacts: list[dict[str, Any]]
    properties: dict[str, Any] | None = None
    event_trigger_owners: set[str] = field(default_factory=set)
    extensions: list[dict[str, str]] = field(default_factory=list)  # name, owner, version, schema
    globals_sql: str | None = None
    verified: bool = False
    allow_meta_commands: bool = False


def bindir_for(app: App, major: int) -> Path:
    extra = [app.settings.pg_bindir] if app.settings.pg_bindir else []
    return find_program("psql", major, extra_dirs=extra).path.parent


# -- the source ------------------------------------------------------------------------------


def load_source(app: App, req: RestoreRequest, *, verify: bool) -> Source:
    if (req.backup is None) == (req.file is None):
        raise BadInput("name a backup to restore, or pass --file PATH (not both)")
    if req.file is not None:
        return _file_source(app, req.file, verify=verify, allow_meta=req.allow_meta_commands)
    if req.allow_meta_commands:
        raise BadInput("--allow-meta-commands is for --file: a catalog backup holds none")
    return _catalog_source(app, req, verify=verify)


def _catalog_source(app: App, req: RestoreRequest, *, verify: bool) -> Source:
    assert req.backup is not None
    backup = get_backup(app.catalog.engine, req.backup)
    if backup["status"] != "completed":
        raise BadInput(f"backup {req.backup} is {backup['status']}, not completed: cannot restore")
    arts = {a["kind"]: a for a in backup["artifacts"]}
    kind = artifact_for(
        req.artifact, partial=bool(req.schemas or req.tables), backup=req.backup, kinds=set(arts)
    )
    needed = [arts[kind]]
    if req.with_globals and "globals" in arts:
        needed.append(arts["globals"])
    meta = backup["metadata"]
    props = meta.get("database_properties")
    src = Source(
        label=req.backup,
        backup=backup,
        file=None,
        format="custom" if kind == "custom" else "plain",
        codec=Codec(arts[kind]["codec"]),
        digest=arts[kind]["digest"],
        artifacts=[{"kind": a["kind"], "digest": a["digest"]} for a in needed],
        properties=props,
        event_trigger_owners=set((props or {}).get("event_trigger_owners") or []),
        extensions=list(meta.get("extensions") or []),
    )
    if any(Codec(a["codec"]).sealed for a in needed) and not app.settings.encryption.identity_file:
        with naming_recipients(backup):  # before a verification is recorded: it cannot read
            AgeKeys().identities()  # DecryptionKeyError: no age identity file configured
    if verify:
        from usecases.backup.verify import verify_kinds  # the same check `dumpledger verify` runs

        outcome = verify_kinds(app, req.backup, [a["kind"] for a in needed], decode_custom=False)
        if not outcome.ok:
            bad = outcome.failures()[0]
            raise SourceDamaged(
                f"backup {req.backup} is damaged, nothing was touched: {bad['kind']} "
                f"({bad['file']}): {bad['error']}"
            )
        src.verified = True
    with naming_recipients(backup):
        if "globals" in arts and req.with_globals:
            glob = arts["globals"]
            with app.store.open_raw(glob["digest"], Codec(glob["codec"])) as it:
                src.globals_sql = b"".join(it).decode("utf-8")
        if props is None and src.format == "plain":  # from before properties were recorded
            with app.store.open_raw(src.digest, src.codec) as chunks:
                src.event_trigger_owners = event_trigger_owners_in(_lines(chunks))
    return src


def detect_codec(path: Path) -> tuple[str, Codec]:
    with path.open("rb") as fh:
        head = fh.read(len(AGE_MAGIC))
    if head.startswith(AGE_MAGIC):
        raise BadInput(
            f"{path} is age-encrypted: restore its backup by name, or decrypt it first "
            f"(age -d -i KEYFILE {path.name} > dump) and pass that file"
        )
    if head.startswith(CUSTOM_MAGIC):
        return "custom", Codec.NONE
    if head.startswith(GZIP_MAGIC):
        return "plain", Codec.GZIP
    if head.startswith(ZSTD_MAGIC):
        return "plain", Codec.ZSTD
    return "plain", Codec.NONE


def _file_source(app: App, path: Path, *, verify: bool, allow_meta: bool = False) -> Source:
    path = path.expanduser().resolve()
    if not path.is_file():
        raise BadInput(f"no such file: {path}")
    fmt, codec = detect_codec(path)
    src = Source(
        label=str(path),
        backup=None,
        file=path,
        format=fmt,
        codec=codec,
        digest="",
        artifacts=[],
        allow_meta_commands=allow_meta,
    )
    sha = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in read_chunks(fh):
            sha.update(chunk)
    src.digest = sha.hexdigest()
    src.artifacts = [{"kind": "file", "digest": src.digest, "path": str(path)}]
    if fmt == "custom":
        listing = custom_dump_listing(bindir_for(app, 0), path)
        src.event_trigger_owners = event_trigger_owners_in_listing(listing)
        src.verified = True
        return src
    if verify:
        tail = b""
        try:
            with path.open("rb") as fh:
                sql = meta_checked(decompress(read_chunks(fh), codec), str(path), allow=allow_meta)
                lines = _lines(sql, keep_tail=True)
                src.event_trigger_owners = event_trigger_owners_in(lines)
                tail = lines.tail
        except (EOFError, OSError, ValueError) as exc:
            raise SourceDamaged(f"{path} cannot be read, nothing was touched: {exc}") from None
        if not any(t in tail for t in PLAIN_TRAILERS):
            raise SourceDamaged(
                f"{path} ends without pg_dump's completion trailer: the dump is incomplete, "
                "nothing was touched"
            )
        src.verified = True
    return src


NEEDLE = b"ALTER EVENT TRIGGER"


class _Lines:
    """The lines of a byte stream that start with NEEDLE, remembering the stream's last bytes.

    Only chunks that contain the needle are split, so scanning a large dump stays cheap.
    """

    def __init__(self, chunks: Any, keep_tail: bool) -> None:
        self.chunks = chunks
        self.tail = b""
        self.keep_tail = keep_tail

    def __iter__(self) -> Iterator[str]:
        carry = b""
        for chunk in self.chunks:
            if self.keep_tail:
                self.tail = (self.tail + chunk[-256:])[-256:]
            data = carry + chunk
            cut = data.rfind(b"\n") + 1
            if data.find(NEEDLE, 0, cut) >= 0:
                for line in data[:cut].split(b"\n"):
                    if line.startswith(NEEDLE):
                        yield line.decode("utf-8", "replace")
            carry = data[cut:]
        if carry.startswith(NEEDLE):
            yield carry.decode("utf-8", "replace")


def _lines(chunks: Any, keep_tail: bool = False) -> _Lines:
    return _Lines(chunks, keep_tail)


@contextmanager
def script_of(app: App, src: Source, bindir: Path) -> Iterator[Iterator[bytes]]:
    """The source as a plain SQL script, whatever its format."""
    if src.format == "custom":
        with materialized(app, src) as dump:
            yield custom_script(bindir, dump)
    else:
        with checked_chunks(app, src) as chunks:
            yield chunks


@contextmanager
def materialized(app: App, src: Source) -> Iterator[Path]:
    """A path pg_restore can read (and seek, for -j): the file, or the stored blob itself;
    a chunked artifact is rebuilt, an encrypted blob decrypted, to a private temp file (0600,
    removed afterwards)."""
    blob = None if src.file is not None else app.store.blob_file(src.digest, src.codec)
    if src.file is not None:
        yield src.file
    elif blob is not None and not src.codec.sealed:
        yield blob
    else:
        tmp_dir = private_dir(app.settings.backup_dir / "tmp")
        prefix = f"{DECRYPTED_PREFIX}{os.getpid()}-"  # a dead pid's file is removed on open
        fd, name = tempfile.mkstemp(dir=tmp_dir, prefix=prefix, suffix=".dump")
        try:
            with (
                os.fdopen(fd, "wb") as fh,
                naming_recipients(src.backup or {}),
                app.store.open_raw(src.digest, src.codec) as chunks,
            ):
                for chunk in chunks:
                    fh.write(chunk)
            yield Path(name)
        finally:
            Path(name).unlink(missing_ok=True)

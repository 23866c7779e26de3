"""The bytes a plain restore feeds psql, checked while they stream.

The SHA-256 is recomputed as the bytes go by and compared after the last of them, before
psql gets COMMIT (pgtools.psqlscript): a blob or file that changed since it was verified
fails the restore and nothing commits. A dump file from outside the catalog is scanned for
psql meta-commands line by line, before each line reaches psql (pgtools.psqlscan).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from pgtools.psqlscan import MetaCommand, MetaScanner
from store.codecs import decompress
from store.local import read_chunks
from usecases.backup.verify import naming_recipients
from usecases.errors import BadInput, UseCaseError

if TYPE_CHECKING:
    from usecases.context import App
    from usecases.restore.source import Source

CONNECT = ("\\c", "\\connect")


class SourceChanged(UseCaseError):
    """The bytes read for the restore are not the ones that were verified."""


class MetaCommandRefused(BadInput):
    """A dump file holds a psql meta-command (exit 2)."""


def refusal(label: str, bad: MetaCommand) -> MetaCommandRefused:
    if bad.command in CONNECT:
        return MetaCommandRefused(
            f"{label} line {bad.line}: psql meta-command {bad.command} switches databases (as "
            "`pg_dump --create` and `pg_dumpall` write it); a restore goes into one database, "
            "inside one transaction: dump that database with pg_dump, without --create"
        )
    return MetaCommandRefused(
        f"{label} line {bad.line}: psql meta-command {bad.command}; a restore runs the file's "
        "SQL, not psql commands (`\\!` runs a shell command on this machine): remove it, or "
        "pass --allow-meta-commands if you trust the file"
    )


def meta_checked(
    chunks: Iterable[bytes], label: str, *, allow: bool = False, drop_own: bool = False
) -> Iterator[bytes]:
    """The chunks, as whole lines, each scanned before it is passed on. A meta-command other
    than pg_dump's `\\restrict`/`\\unrestrict` raises MetaCommandRefused (with `allow`, only
    `\\connect` does); `drop_own` leaves those pg_dump lines out."""
    scanner = MetaScanner()
    carry = b""
    for chunk in chunks:
        data = carry + chunk
        cut = data.rfind(b"\n") + 1
        carry = data[cut:]
        if cut:
            yield _checked(scanner, data[:cut], label, allow=allow, drop_own=drop_own)
    if carry:
        yield _checked(scanner, carry, label, allow=allow, drop_own=drop_own)


def _checked(
    scanner: MetaScanner, block: bytes, label: str, *, allow: bool, drop_own: bool
) -> bytes:
    found = scanner.feed(block)
    if not found:
        return block
    for m in found:
        if not m.allowed and (not allow or m.command in CONNECT):
            raise refusal(label, m)
    if not drop_own:
        return block
    out, pos = [], 0
    for m in found:
        if m.allowed:
            out.append(block[pos : m.start])
            pos = m.end
    out.append(block[pos:])
    return b"".join(out)


def _hashed(chunks: Iterable[bytes], expected: str, label: str) -> Iterator[bytes]:
    sha = hashlib.sha256()
    for chunk in chunks:
        sha.update(chunk)
        yield chunk
    if sha.hexdigest() != expected:
        raise SourceChanged(
            f"{label} changed since it was verified (SHA-256 {sha.hexdigest()[:12]}..., "
            f"verified {expected[:12]}...); nothing was committed: run the restore again"
        )


@contextmanager
def checked_chunks(app: App, src: Source) -> Iterator[Iterator[bytes]]:
    """The source's SQL; raises after its last byte if it is not what was verified. A file's
    own `\\restrict` lines are left out (psql runs it under a key of the restore's own),
    unless meta-commands are allowed: then it runs as it is."""
    if src.file is not None:
        with src.file.open("rb") as fh:
            raw = _hashed(read_chunks(fh), src.digest, str(src.file))
            sql = decompress(raw, src.codec)
            allow = src.allow_meta_commands
            yield meta_checked(sql, str(src.file), allow=allow, drop_own=not allow)
        return
    with naming_recipients(src.backup or {}), app.store.open_raw(src.digest, src.codec) as it:
        yield _hashed(it, src.digest, f"backup {src.label}")

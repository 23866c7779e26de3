"""What psql is fed: one explicit transaction that only the script's last statement commits,
in psql's restricted mode under a key of this restore's own.

psql takes the end of its input for the end of the script: under `--single-transaction` it
then COMMITs whatever arrived, so a restore whose feeding process died (SIGKILL, OOM, a
`timeout`) committed part of a table. Here BEGIN is the first statement and COMMIT the last,
written only after the caller's whole source was read and checked; input that ends sooner
ends psql's session inside the transaction, and PostgreSQL rolls it back. `AUTOCOMMIT=off`
keeps that true after a COMMIT of the script's own: what follows it is in a new transaction
that nothing commits.

`\\restrict KEY` (psql 13.22, 14.19, 15.14, 16.10, 17.6 and newer) makes psql refuse every
meta-command (`\\! cmd`, `\\copy`, `\\connect`, ...) until `\\unrestrict KEY`. pg_dump writes one
fixed key per backup directory into every plain dump (usecases.backup.run.restrict_key), so
whoever has read one dump knows it; a restore therefore strips the dump's own pair and runs
the whole script under a fresh random key that appears nowhere in the dump.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path

from pgtools.dump import supports_restrict_key

OWN_RESTRICT = re.compile(rb"\\restrict ([A-Za-z0-9]+)[ \t]*\r?")
HEAD_LIMIT = 64 << 10  # pg_dump's \restrict line follows a few comment lines
TAIL_HOLD = 4096  # pg_dump's \unrestrict line is among the last bytes


def new_restrict_key() -> str:
    return secrets.token_hex(24)


@lru_cache(maxsize=8)
def psql_restricts(bindir: Path) -> bool:
    """Whether this psql knows `\\restrict` (pg_dump of the same release knows --restrict-key)."""
    return (bindir / "pg_dump").is_file() and supports_restrict_key(bindir)


def transaction_script(
    chunks: Iterable[bytes],
    *,
    prelude: str = "",
    postlude: str = "",
    restrict_key: str | None = None,
) -> Iterator[bytes]:
    """BEGIN; prelude; the chunks; postlude; COMMIT. COMMIT is produced only once `chunks` is
    exhausted without an error: a source that fails its last check never commits."""
    if restrict_key:
        yield f"\\restrict {restrict_key}\n".encode()
    yield b"BEGIN;\n"
    if prelude:
        yield prelude.encode() + b"\n"
    yield from chunks
    if postlude:
        yield b"\n" + postlude.encode()
    yield b"\nCOMMIT;\n"


def without_own_restrict(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """A pg_dump/pg_restore script without its own `\\restrict KEY` line (the first line that is
    not blank or a comment) and the matching `\\unrestrict KEY` (its last line). Any other
    meta-command stays, for psql's restricted mode to refuse."""
    it = iter(chunks)
    head, key = _head(it)
    held = head
    for chunk in it:
        held += chunk
        if len(held) > 2 * TAIL_HOLD:
            cut = len(held) - TAIL_HOLD
            yield held[:cut]
            held = held[cut:]
    if key is not None:
        held = _drop_unrestrict(held, key)
    yield held


def _head(it: Iterator[bytes]) -> tuple[bytes, bytes | None]:
    data = b""
    for chunk in it:
        data += chunk
        pos = 0
        while (nl := data.find(b"\n", pos)) >= 0:
            line = data[pos:nl]
            if not line.strip() or line.startswith(b"--"):
                pos = nl + 1
                continue
            m = OWN_RESTRICT.fullmatch(line)
            if m is None:
                return data, None
            return data[:pos] + data[nl + 1 :], m.group(1)
        if len(data) > HEAD_LIMIT:
            break
    return data, None


def _drop_unrestrict(tail: bytes, key: bytes) -> bytes:
    """Without the last line that is not blank or a comment, when it is `\\unrestrict KEY`
    (pg_dump writes it after its trailer comment, pg_dumpall before)."""
    end = len(tail)
    while end > 0:
        start = tail.rfind(b"\n", 0, end - 1) + 1
        line = tail[start:end].strip()
        if line and not line.startswith(b"--"):
            if line == b"\\unrestrict " + key:
                return tail[:start] + tail[end:].lstrip(b"\n")
            return tail
        end = start
    return tail

"""A plain pg_dump script, read as the archive entries it was written from.

pg_dump (and `pg_restore -f -`) writes every archive entry under a header comment:

    --
    -- Name: users; Type: TABLE; Schema: auth; Owner: supabase_auth_admin
    --

`ScriptSplitter` streams a script and tags every piece of it with the entry it belongs to, so
a restore can keep, drop or rewrite entries by type, schema and name. A header only counts at
the top level of the script: never inside a COPY block, a string, a quoted identifier, a
dollar-quoted body or a block comment, so a row or a function body that looks like a header is
not one. COPY data is passed through with `bytes.find`, not line by line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

HEADER = re.compile(
    rb"^-- (Data for )?Name: (.*); Type: ([A-Z][A-Z ]*); Schema: (.*); Owner: (.*)$"
)
COPY_START = re.compile(rb"^COPY .* FROM stdin;$")
# What pg_dump writes between entries, before the header of the entry it is for: session
# state, and psql's \restrict/\unrestrict. Such lines belong to no entry (entry None).
STATE_LINE = re.compile(
    rb"^(SET (default_tablespace|default_table_access_method|default_with_oids|"
    rb"SESSION AUTHORIZATION) |RESET SESSION AUTHORIZATION;|\\(un)?restrict |"
    rb"SELECT pg_catalog\.set_config\('search_path')"
)
TOKEN = re.compile(rb"'|\"|--|/\*|\$(?:[A-Za-z_\x80-\xff][A-Za-z0-9_\x80-\xff]*)?\$")
IDENT_CHAR = re.compile(rb"[A-Za-z0-9_$\x80-\xff]")
COPY_END = b"\\.\n"
BLOCK_TOKEN = re.compile(rb"/\*|\*/")
E_STRING_TOKEN = re.compile(rb"\\.|'")
QUOTE_TOKEN = {"'": re.compile(rb"'"), '"': re.compile(rb'"')}


@dataclass(frozen=True, slots=True)
class Entry:
    """One archive entry's header. `schema` and `owner` are None where pg_dump writes `-`."""

    name: str
    type: str
    schema: str | None
    owner: str | None

    @property
    def key(self) -> tuple[str, str | None, str]:
        return (self.type, self.schema, self.name)


def parse_header(line: bytes) -> Entry | None:
    m = HEADER.match(line)
    if not m:
        return None
    name, kind, schema, owner = (g.decode("utf-8", "replace") for g in m.groups()[1:])
    return Entry(
        name=name,
        type=kind.strip(),
        schema=None if schema == "-" else schema,
        owner=None if owner in ("", "-") else owner,
    )


class _Lexer:
    """Where a line of SQL ends: at the top level, or inside a string, quoted identifier,
    dollar-quoted body or block comment that goes on on the next line."""

    def __init__(self) -> None:
        self.state: tuple[str, bytes | int | bool] | None = None

    @property
    def top(self) -> bool:
        return self.state is None

    def scan(self, line: bytes) -> None:
        pos = 0
        while pos <= len(line):
            if self.state is None:
                m = TOKEN.search(line, pos)
                if not m:
                    return
                tok, pos = m.group(), m.end()
                if tok == b"--":
                    return
                if tok == b"'":
                    self.state = ("'", _escape_string(line, m.start()))
                elif tok == b'"':
                    self.state = ('"', False)
                elif tok == b"/*":
                    self.state = ("/*", 1)
                elif m.start() and IDENT_CHAR.match(line, m.start() - 1):
                    pos = m.start() + 1  # `a$b$`: part of an identifier, not a quote
                else:
                    self.state = ("$", tok)
            else:
                pos = self._inside(line, pos)
                if pos < 0:
                    return

    def _inside(self, line: bytes, pos: int) -> int:
        """Scan inside the current quote from pos; the position after it ends, or -1."""
        assert self.state is not None
        kind, extra = self.state
        if kind == "$":
            assert isinstance(extra, bytes)
            end = line.find(extra, pos)
            if end < 0:
                return -1
            self.state = None
            return end + len(extra)
        if kind == "/*":
            assert isinstance(extra, int)
            m = BLOCK_TOKEN.search(line, pos)
            if not m:
                return -1
            depth = extra + (1 if m.group() == b"/*" else -1)
            self.state = None if depth == 0 else ("/*", depth)
            return m.end()
        quote = kind.encode()
        pattern = E_STRING_TOKEN if extra is True else QUOTE_TOKEN[kind]
        while True:
            m = pattern.search(line, pos)
            if not m:
                return -1
            if m.group() != quote:  # a backslash escape of an E'' string
                pos = m.end()
                continue
            if line[m.end() : m.end() + 1] == quote:  # a doubled quote: still inside
                pos = m.end() + 1
                continue
            self.state = None
            return m.end()


def _escape_string(line: bytes, quote_at: int) -> bool:
    """Is the string starting at quote_at an E'...' string (backslash escapes)?"""
    if quote_at == 0 or line[quote_at - 1 : quote_at] not in (b"E", b"e"):
        return False
    return quote_at < 2 or not IDENT_CHAR.match(line, quote_at - 2)


class ScriptSplitter:
    """Feed a script's bytes in; get (entry, bytes) pieces out, in order. Pieces before the
    first header, and the session-state lines between entries, have entry None. Every piece
    ends at a line end; a header's `--` line above it goes with the entry it announces."""

    def __init__(self) -> None:
        self.buf = b""
        self.entry: Entry | None = None
        self.copying = False
        self.lexer = _Lexer()
        self.pending_dashes = False  # a top-level `--` line not yet given to an entry

    def feed(self, chunk: bytes) -> list[tuple[Entry | None, bytes]]:
        self.buf += chunk
        out: list[tuple[Entry | None, bytes]] = []
        pos, more = 0, True
        while more and pos < len(self.buf):
            pos, more = self._copy(pos, out) if self.copying else self._line(pos, out)
        self.buf = self.buf[pos:]
        return out

    def finish(self) -> list[tuple[Entry | None, bytes]]:
        """What is left at the end of the script (a last line without a newline)."""
        held = self.rest()
        return [(self.entry, held)] if held else []

    def rest(self) -> bytes:
        """Give up splitting: the bytes held back, to be passed on as they are."""
        held = (b"--\n" if self.pending_dashes else b"") + self.buf
        self.buf, self.pending_dashes = b"", False
        return held

    def _copy(self, pos: int, out: list[tuple[Entry | None, bytes]]) -> tuple[int, bool]:
        """COPY rows up to and including the `\\.` line; (next position, go on)."""
        buf = self.buf
        if buf.startswith(COPY_END, pos):
            end = pos + len(COPY_END)
        else:
            found = buf.find(b"\n" + COPY_END, pos)
            if found < 0:  # pass on the whole lines; the rest may be the start of the end
                cut = buf.rfind(b"\n", pos)
                if cut < 0:
                    return pos, False
                out.append((self.entry, buf[pos : cut + 1]))
                return cut + 1, False
            end = found + 1 + len(COPY_END)
        out.append((self.entry, buf[pos:end]))
        self.copying = False
        return end, True

    def _line(self, pos: int, out: list[tuple[Entry | None, bytes]]) -> tuple[int, bool]:
        nl = self.buf.find(b"\n", pos)
        if nl < 0:
            return pos, False
        line = self.buf[pos:nl]
        top = self.lexer.top
        entry = parse_header(line) if top and self.pending_dashes else None
        if entry is not None:
            self.entry = entry
        if self.pending_dashes:
            out.append((self.entry, b"--\n"))
            self.pending_dashes = False
        if top and line == b"--":
            self.pending_dashes = True
            return nl + 1, True
        state = top and STATE_LINE.match(line) is not None
        out.append((None if state else self.entry, self.buf[pos : nl + 1]))
        self.lexer.scan(line)
        if top and self.lexer.top and COPY_START.match(line):
            self.copying = True
        return nl + 1, True


def split(chunks: Iterable[bytes]) -> Iterator[tuple[Entry | None, bytes]]:
    splitter = ScriptSplitter()
    for chunk in chunks:
        yield from splitter.feed(chunk)
    yield from splitter.finish()

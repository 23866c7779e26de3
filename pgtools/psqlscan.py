"""Find psql meta-commands (`\\! cmd`, `\\copy`, `\\connect`, ...) in a SQL script the way psql's
own lexer finds them: a backslash outside quotes, comments and COPY data starts one, anywhere
in a line. pg_dump's own `\\restrict KEY` / `\\unrestrict KEY` lines are told apart.

The scan streams over complete lines (`MetaScanner.feed`), so a dump of any size is checked
without holding it: COPY data blocks (from `COPY ... FROM stdin;` to the `\\.` line) are skipped
with bytes.find, and only the SQL between them is walked. psql reads a COPY's data from the
lines after the one that holds the statement, and lexes the rest of that line after the data;
the scan follows the same order, so a backslash in COPY data is data, not a command.

This is the early, line-numbered refusal. The restore itself runs psql in restricted mode
(pgtools.psqlscript), which refuses every meta-command even where this scan and psql's lexer
might disagree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

IDENT = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_$") | frozenset(
    range(0x80, 0x100)
)
NORMAL_TOKEN = re.compile(rb"--|/\*|['\"$\\;()]")
DOLLAR_TAG = re.compile(rb"\$([A-Za-z\x80-\xff_][A-Za-z0-9\x80-\xff_]*)?\$")
SPACE = re.compile(rb"\s*")
COMMENTS = re.compile(rb"--[^\n]*|/\*.*?\*/", re.S)
FROM_STDIN = re.compile(rb"\bfrom\s+stdin\b", re.I)
STD_STRINGS = re.compile(
    rb"^set\s+(?:session\s+|local\s+)?standard_conforming_strings\s*(?:=|to)\s*'?(\w+)'?",
    re.I,
)
RESTRICT = re.compile(rb"\\(?:un)?restrict[ \t]+[A-Za-z0-9]+[ \t]*\r?$")
RESET_STD = re.compile(rb"^reset\s+(?:standard_conforming_strings|all)\b", re.I)
QUOTED = re.compile(rb"'[^']*'")
INTERESTING = re.compile(rb"(?:^|;)\s*(?:copy|set|reset)\b")  # over lower-cased text
FLAT = re.compile(rb"[^();]*(?:\([^();]*\)[^();]*)*(?:;[^();]*(?:\([^();]*\)[^();]*)*)*")
OFF_WORDS = (b"off", b"false", b"no", b"0")

NORMAL, SQUOTE, ESTRING, DQUOTE, DOLLAR, COMMENT, COPY = range(7)


@dataclass(frozen=True, slots=True)
class MetaCommand:
    line: int  # 1-based
    command: str  # the backslash and the command's name: \!, \copy, \connect
    allowed: bool  # pg_dump's own \restrict / \unrestrict line
    start: int  # offset of the line in the block passed to feed()
    end: int  # offset just past the line's newline


class MetaScanner:
    """psql's view of a script, one block of complete lines at a time."""

    def __init__(self) -> None:
        self.mode = NORMAL
        self.saved_mode = NORMAL  # the mode to go back to after COPY data
        self.tag = b""  # the dollar-quote delimiter
        self.depth = 0  # comment nesting (COMMENT) or parentheses (NORMAL)
        self.parens = 0
        self.std_strings = True
        self.pending_copies = 0  # COPY ... FROM stdin statements on the current line
        self.copies_left = 0  # data blocks still to skip (COPY mode)
        self.stmt: bytearray | None = None  # text of a COPY/SET statement being read
        self.stmt_started = False
        self.stmt_from = 0
        self.buf = b""
        self.line = 1  # line number of the next block's first line
        self.found: list[MetaCommand] = []

    def feed(self, buf: bytes) -> list[MetaCommand]:
        """Scan `buf`: whole lines (each ending in a newline), or the script's last bytes."""
        self.found = []
        self.buf = buf
        i, n = 0, len(buf)
        if self._plain_statements(buf):
            i = n
        while i < n:
            if self.mode == COPY:
                i = self._copy(i, n)
            elif self.pending_copies and (nl := buf.find(b"\n", i)) >= 0:
                i = self._step(i, nl + 1)  # psql reads the data from the next line on
                if i > nl:
                    self._enter_copy()
            else:
                i = self._step(i, n)
        if self.stmt is not None:
            self.stmt += buf[self.stmt_from :]
        self.stmt_from = 0
        self.line += buf.count(b"\n")
        return self.found

    def _plain_statements(self, buf: bytes) -> bool:
        """The fast way through blocks of plain statements (a --column-inserts dump): no
        backslash, dollar, double quote or comment anywhere, only complete '...' strings, flat
        and closed parentheses, no COPY/SET/RESET. Such a block holds no meta-command and
        leaves the state as it found it, except whether a statement is still open."""
        if self.mode != NORMAL or self.parens or self.pending_copies or self.stmt is not None:
            return False
        if any(x in buf for x in (b"\\", b"$", b'"', b"--", b"/*")):
            return False
        bare = QUOTED.sub(b"", buf)
        if b"'" in bare or INTERESTING.search(bare.lower()) or not FLAT.fullmatch(bare):
            return False
        end = bare.rfind(b";")
        rest = bare[end + 1 :].strip()
        self.stmt_started = bool(rest) or (end < 0 and self.stmt_started)
        return True

    # -- modes ---------------------------------------------------------------------------

    def _step(self, i: int, end: int) -> int:
        if self.mode == NORMAL:
            return self._normal(i, end)
        if self.mode == SQUOTE:
            return self._squote(i, end, escapes=not self.std_strings)
        if self.mode == ESTRING:
            return self._squote(i, end, escapes=True)
        if self.mode == DQUOTE:
            j = self.buf.find(b'"', i, end)
            return self._leave(j, 1, end)
        if self.mode == DOLLAR:
            j = self.buf.find(self.tag, i, end)
            return self._leave(j, len(self.tag), end)
        return self._comment(i, end)

    def _leave(self, j: int, width: int, end: int) -> int:
        if j < 0:
            return end
        self.mode = NORMAL
        return j + width

    def _squote(self, i: int, end: int, *, escapes: bool) -> int:
        buf = self.buf
        while i < end:
            q = buf.find(b"'", i, end)
            b = buf.find(b"\\", i, q if q >= 0 else end) if escapes else -1
            if b >= 0:
                i = b + 2
                continue
            if q < 0:
                return end
            if q + 1 < len(buf) and buf[q + 1 : q + 2] == b"'":
                i = q + 2
                continue
            self.mode = NORMAL
            return q + 1
        return end

    def _comment(self, i: int, end: int) -> int:
        buf = self.buf
        while i < end:
            o = buf.find(b"/*", i, end)
            c = buf.find(b"*/", i, end)
            if c < 0 and o < 0:
                return end
            if o >= 0 and (c < 0 or o < c):
                self.depth += 1
                i = o + 2
                continue
            self.depth -= 1
            i = c + 2
            if self.depth == 0:
                self.mode = NORMAL
                return i
        return end

    def _normal(self, i: int, end: int) -> int:
        buf = self.buf
        while i < end:
            if not self.stmt_started:
                i = SPACE.match(buf, i, end).end()  # type: ignore[union-attr]
                if i >= end:
                    return end
                if not buf.startswith((b"--", b"/*", b"\\"), i):
                    self._start_statement(i)
            m = NORMAL_TOKEN.search(buf, i, end)
            if m is None:
                return end
            tok, k = m.group(), m.start()
            if tok == b"--":
                nl = buf.find(b"\n", k, end)
                i = end if nl < 0 else nl
                continue
            if tok == b"/*":
                self.mode, self.depth = COMMENT, 1
                return k + 2
            if tok == b"'":
                self.mode = ESTRING if self._e_prefix(k) else SQUOTE
                return k + 1
            if tok == b'"':
                self.mode = DQUOTE
                return k + 1
            if tok == b"$":
                d = DOLLAR_TAG.match(buf, k, end)
                if d is None or self._in_identifier(k):
                    i = k + 1
                    continue
                self.mode, self.tag = DOLLAR, d.group()
                return d.end()
            if tok == b"\\":
                return self._meta(k, end)
            if tok == b"(":
                self.parens += 1
            elif tok == b")":
                self.parens = max(self.parens - 1, 0)
            elif self.parens == 0:  # ";" ends the statement
                self._end_statement(k)
                if self.pending_copies:
                    return k + 1  # COPY data follows this line: feed() bounds the rest
            i = k + 1
        return end

    def _in_identifier(self, k: int) -> bool:
        """Whether the `$` at k continues an identifier (`a$b$`), unlike `$$` or `1 $x$`."""
        buf, j = self.buf, k
        while j > 0 and buf[j - 1] in IDENT:
            j -= 1
        return j < k and not buf[j:k].isdigit()

    def _e_prefix(self, k: int) -> bool:
        buf = self.buf
        return k > 0 and buf[k - 1] in b"eE" and (k < 2 or buf[k - 2] not in IDENT)

    def _meta(self, k: int, end: int) -> int:
        buf = self.buf
        nl = buf.find(b"\n", k)
        stop = len(buf) if nl < 0 else nl
        name = re.match(rb"\\[^\s\\]*", buf[k:stop])
        command = (name.group() if name else b"\\").decode("utf-8", "replace")
        start = buf.rfind(b"\n", 0, k) + 1
        alone = buf[start:k].strip() == b"" and RESTRICT.match(buf, k, stop) is not None
        self.found.append(
            MetaCommand(
                line=self.line + buf.count(b"\n", 0, k),
                command=command,
                allowed=alone,
                start=start,
                end=stop + 1 if nl >= 0 else stop,
            )
        )
        return min(stop, end)  # psql takes the rest of the line as the command's arguments

    def _copy(self, i: int, n: int) -> int:
        buf = self.buf
        while i < n:
            if buf.startswith((b"\\.\n", b"\\.\r\n"), i) or (
                n - i <= 3 and buf[i:] in (b"\\.", b"\\.\r")
            ):
                i = buf.find(b"\n", i) + 1 or n
                self.copies_left -= 1
                if self.copies_left == 0:
                    self.mode = self.saved_mode
                    return i
                continue
            nl = buf.find(b"\n", i)
            if nl < 0:
                return n
            j = buf.find(b"\n\\.", nl)
            if j < 0:
                return n
            i = j + 1
        return n

    # -- statements ----------------------------------------------------------------------

    def _start_statement(self, i: int) -> None:
        self.stmt_started = True
        head = self.buf[i : i + 5].lower()
        wanted = head[:4] == b"copy" or head[:3] == b"set" or head == b"reset"
        self.stmt = bytearray() if wanted else None
        self.stmt_from = i

    def _end_statement(self, k: int) -> None:
        if self.stmt is not None:
            text = COMMENTS.sub(b" ", bytes(self.stmt) + self.buf[self.stmt_from : k]).strip()
            if text[:4].lower() == b"copy" and FROM_STDIN.search(text):
                self.pending_copies += 1
            elif m := STD_STRINGS.match(text):
                self.std_strings = m.group(1).lower() not in OFF_WORDS
            elif RESET_STD.match(text):
                self.std_strings = True
        self.stmt = None
        self.stmt_started = False

    def _enter_copy(self) -> None:
        self.saved_mode = self.mode
        self.copies_left = self.pending_copies
        self.pending_copies = 0
        self.mode = COPY

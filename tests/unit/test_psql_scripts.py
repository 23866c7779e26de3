"""What psql is fed: the transaction frame, pg_dump's own \\restrict pair taken out, and the
meta-command scan, whatever the chunk boundaries (real psql: tests/integration/
test_psql_meta_commands.py)."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from pgtools.psqlscan import MetaScanner
from pgtools.psqlscript import transaction_script, without_own_restrict
from usecases.restore.stream import MetaCommandRefused, meta_checked

DUMP = (
    b"--\n-- PostgreSQL database dump\n--\n\n\\restrict KEY1\n\nSET a = 1;\n"
    b"COPY t (x) FROM stdin;\n\\\\! data\n\\.\n"
    b"CREATE FUNCTION f() RETURNS int AS $$ SELECT 1 $$ LANGUAGE sql;\n"
    b"--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict KEY1\n\n"
)


def test_commit_comes_last_and_only_after_the_whole_source() -> None:
    def source() -> Iterator[bytes]:
        yield b"INSERT 1;\n"
        raise OSError("disk read failed")

    script = transaction_script(source(), prelude="TRUNCATE t;", restrict_key="K")
    seen = []
    try:
        for chunk in script:
            seen.append(chunk)
    except OSError:
        pass
    assert seen == [b"\\restrict K\n", b"BEGIN;\n", b"TRUNCATE t;\n", b"INSERT 1;\n"]
    whole = b"".join(transaction_script([b"INSERT 1;"], postlude="CHECK;"))
    assert whole == b"BEGIN;\nINSERT 1;\nCHECK;\nCOMMIT;\n"


@given(st.lists(st.integers(min_value=1, max_value=len(DUMP) - 1), max_size=6))
def test_own_restrict_lines_are_taken_out_at_any_chunking(cuts: list[int]) -> None:
    points = [0, *sorted(set(cuts)), len(DUMP)]
    chunks = [DUMP[a:b] for a, b in pairwise(points)]
    out = b"".join(without_own_restrict(chunks))
    assert b"restrict" not in out
    assert out.replace(b"\n", b"") == DUMP.replace(b"\\restrict KEY1", b"").replace(
        b"\\unrestrict KEY1", b""
    ).replace(b"\n", b"")


def test_other_restrict_lines_stay_for_psql_to_refuse() -> None:
    planted = b"\\restrict K\nSELECT 1;\n\\unrestrict K\n\\! rm -rf /\nSELECT 2;\n"
    out = b"".join(without_own_restrict([planted]))
    assert out == b"SELECT 1;\n\\unrestrict K\n\\! rm -rf /\nSELECT 2;\n"
    other_key = b"\\restrict A\nSELECT 1;\n\\unrestrict B\n"
    assert b"\\unrestrict B" in b"".join(without_own_restrict([other_key]))


@given(st.lists(st.integers(min_value=1, max_value=len(DUMP) - 1), max_size=6))
def test_the_scan_is_the_same_at_any_chunking(cuts: list[int]) -> None:
    evil = DUMP + b"SELECT 'x'; \\! touch /tmp/x\n"
    points = [0, *sorted(set(cuts)), len(evil)]
    chunks = [evil[a:b] for a, b in pairwise(points)]
    try:
        b"".join(meta_checked(chunks, "dump.sql"))
    except MetaCommandRefused as exc:
        assert str(exc).startswith("dump.sql line 18: psql meta-command \\!;")
    else:
        raise AssertionError("not refused")
    clean = b"".join(meta_checked([DUMP[:50], DUMP[50:]], "dump.sql", drop_own=True))
    assert b"restrict" not in clean and b"\\\\! data" in clean


def test_line_numbers_and_commands() -> None:
    found = MetaScanner().feed(b"SELECT 1;\n\n  \\copy t from x\n\\set a 1 \\\\ \\echo\n")
    assert [(m.line, m.command, m.allowed) for m in found] == [
        (3, "\\copy", False),
        (4, "\\set", False),
    ]


def test_blocks_of_plain_statements_keep_the_state_for_the_next_block() -> None:
    """Blocks that hold only plain statements (an INSERT dump) are taken in one go; what
    follows them is scanned as if every byte had been walked."""
    inserts = b"".join(b"INSERT INTO t (a, b) VALUES (%d, 'it''s; (x)');\n" % i for i in range(500))
    scanner = MetaScanner()
    blocks = [
        inserts,
        b"INSERT INTO t (a, b) VALUES (1, 'open')\n",  # the statement goes on in the next block
        b";\nCOPY t (b) FROM stdin;\n\\\\! data\n\\.\n",
        inserts,
        b"SELECT 1; \\! real\n",
    ]
    found = [(m.line, m.command) for block in blocks for m in scanner.feed(block)]
    assert found == [(1006, "\\!")]

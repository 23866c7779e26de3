"""A plain dump read as its archive entries; extensions rewritten to run as their owners; the
role-password helpers. Pure functions over bytes and text: no server needed."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from pgtools.dumpscript import Entry, split
from pgtools.extensions import as_owners, listing_phases
from pgtools.roles import passwordless_logins, without_passwords

SCRIPT = b"""--
-- PostgreSQL database dump
--

SET statement_timeout = 0;

--
-- Name: extensions; Type: SCHEMA; Schema: -; Owner: postgres
--

CREATE SCHEMA extensions;

--
-- Name: pgcrypto; Type: EXTENSION; Schema: -; Owner: -
--

CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA extensions;


--
-- Name: f(); Type: FUNCTION; Schema: public; Owner: postgres
--

CREATE FUNCTION public.f() RETURNS text LANGUAGE sql AS $_$
select '
--
-- Name: fake; Type: TABLE; Schema: auth; Owner: x
--
'$_$;

--
-- Data for Name: t; Type: TABLE DATA; Schema: public; Owner: postgres
--

COPY public.t (a) FROM stdin;
--
-- Name: fake2; Type: TABLE; Schema: auth; Owner: x
--
CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA extensions;
\\.


--
-- Name: TABLE t; Type: COMMENT; Schema: public; Owner: postgres
--

COMMENT ON TABLE public.t IS E'it\\'s /* not a comment
--
-- Name: fake3; Type: TABLE; Schema: auth; Owner: x
--
';

--
-- PostgreSQL database dump complete
--
"""


def entries(pieces: list[tuple[Entry | None, bytes]]) -> list[Entry]:
    out: list[Entry] = []
    for entry, _ in pieces:
        if entry is not None and (not out or out[-1] is not entry):
            out.append(entry)
    return out


def test_headers_count_only_at_the_top_level() -> None:
    pieces = list(split([SCRIPT]))
    assert b"".join(data for _, data in pieces) == SCRIPT
    assert [(e.type, e.schema, e.name, e.owner) for e in entries(pieces)] == [
        ("SCHEMA", None, "extensions", "postgres"),
        ("EXTENSION", None, "pgcrypto", None),
        ("FUNCTION", "public", "f()", "postgres"),
        ("TABLE DATA", "public", "t", "postgres"),
        ("COMMENT", "public", "TABLE t", "postgres"),
    ]
    rows = b"".join(d for e, d in pieces if e is not None and e.type == "TABLE DATA")
    assert rows.count(b"fake2") == 1 and rows.endswith(b"\\.\n\n\n")


@given(st.lists(st.integers(min_value=1, max_value=len(SCRIPT)), max_size=12))
def test_the_same_pieces_whatever_the_chunks(cuts: list[int]) -> None:
    bounds = [0, *sorted(set(cuts)), len(SCRIPT)]
    chunks = [SCRIPT[a:b] for a, b in itertools.pairwise(bounds)]
    pieces = list(split(chunks))
    assert b"".join(data for _, data in pieces) == SCRIPT
    assert entries(pieces) == entries(list(split([SCRIPT])))


def test_extensions_are_created_by_their_owners_and_nothing_else_changes() -> None:
    out = b"".join(as_owners([SCRIPT[:300], SCRIPT[300:]], {"pgcrypto": "postgres"}))
    assert out.count(b'SET ROLE "postgres";') == 1
    wrapped = (
        b'SET ROLE "postgres";\n'
        b"CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA extensions;\n"
        b"RESET ROLE;\n"
    )
    assert wrapped in out
    assert out.replace(b'SET ROLE "postgres";\n', b"").replace(b"RESET ROLE;\n", b"") == SCRIPT


def test_a_custom_dumps_listing_in_two_phases() -> None:
    listing = [
        ";",
        "9; 2615 16476 SCHEMA - auth supabase_auth_admin",
        "3542; 0 0 ACL - SCHEMA auth supabase_auth_admin",
        "2; 3079 16394 EXTENSION - pgcrypto ",
        "3547; 0 0 COMMENT - EXTENSION pgcrypto ",
        "300; 1255 16521 FUNCTION auth uid() supabase_auth_admin",
    ]
    first, rest = listing_phases(listing)
    assert [ln for ln in first if not ln.startswith(";")] == [listing[1], listing[3]]
    assert [ln for ln in rest if not ln.startswith(";")] == [listing[2], listing[4], listing[5]]


GLOBALS = """CREATE ROLE anon;
ALTER ROLE anon WITH NOSUPERUSER NOINHERIT NOLOGIN NOREPLICATION NOBYPASSRLS;
CREATE ROLE authenticator;
ALTER ROLE authenticator WITH NOSUPERUSER NOINHERIT LOGIN NOREPLICATION NOBYPASSRLS;
CREATE ROLE "app user";
ALTER ROLE "app user" WITH NOSUPERUSER INHERIT LOGIN PASSWORD 'SCRAM-SHA-256$4096:abc=';
CREATE ROLE odd;
ALTER ROLE odd WITH LOGIN PASSWORD 'it''s NOLOGIN';
"""


def test_login_roles_the_globals_give_no_password() -> None:
    assert passwordless_logins(GLOBALS) == {"authenticator"}


def test_hashes_are_masked_in_messages() -> None:
    masked = without_passwords(GLOBALS)
    assert "SCRAM" not in masked and "it''s" not in masked
    assert "PASSWORD '***'" in masked


def test_splitting_stops_where_the_rows_begin() -> None:
    """plpgsql is recorded but never dumped: the rows after the pre-data pass unsplit."""
    owners = {"pgcrypto": "postgres", "plpgsql": "supabase_admin"}
    chunks = [SCRIPT[:700], SCRIPT[700:900], b"not split: no line end", b" here\n"]
    out = list(as_owners(chunks, owners))
    assert out[-2:] == [b"not split: no line end", b" here\n"]
    assert b"".join(out).count(b"RESET ROLE;") == 1

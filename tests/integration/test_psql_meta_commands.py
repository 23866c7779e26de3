"""The meta-command scan against psql itself: for every script, the scan finds a meta-command
exactly when the real psql runs one (`\\! touch FILE` leaves a file). And the restore's psql
refuses every meta-command, whatever the scan says: restricted mode under a key of its own."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pgtools.errors import RestoreError
from pgtools.psqlscan import MetaScanner
from pgtools.restore import run_psql
from pgtools.target import DbTarget
from tests.conftest import SupabaseDb

# name -> script; {T} is `touch <marker>`. The last field says whether psql runs a command.
SCRIPTS: dict[str, tuple[str, bool]] = {
    "line start": ("SELECT 1;\n\\! {T}\n", True),
    "mid line": ("SELECT 1; \\! {T}\n", True),
    "in a string": ("SELECT 'a \\! {T}';\n", False),
    "E-string escape": ("SELECT E'a\\' \\! {T} #';\n", False),
    "plain string, backslash at the end": ("SELECT 'a\\' \\! {T} #';\n", True),
    "identifier ending in e": ("SELECT somee'a\\' \\! {T} #';\n", True),
    "dollar quote": ("DO $x$ BEGIN PERFORM 1; END\n\\! {T}\n$x$;\n", False),
    "dollar inside an identifier": ("SELECT a$b$ \\! {T}\n", True),
    "quoted identifier": ('SELECT "a\\" \\! {T}\n', True),
    "nested comment": ("/* a /* b */ \\! {T} */ SELECT 1;\n", False),
    "line comment": ("SELECT 1; -- \\! {T}\n", False),
    "COPY data": (
        "CREATE TEMP TABLE c (t text);\nCOPY c FROM stdin;\n\\\\! {T}\n\\! {T}\n\\.\n",
        False,
    ),
    "after COPY data": (
        "CREATE TEMP TABLE c (t text);\ncopy c from STDIN;\nx\n\\.\n\\! {T}\n",
        True,
    ),
    "rest of the COPY line": (
        "CREATE TEMP TABLE c (t text);\nCOPY c FROM stdin; \\! {T}\nx\n\\.\n",
        True,
    ),
    "COPY TO stdout has no data": (
        "CREATE TEMP TABLE c (t text);\nCOPY c TO stdout;\n\\! {T}\n",
        True,
    ),
    "standard_conforming_strings off": (
        "SET standard_conforming_strings = off;\nSELECT 'a\\' \\! {T} #';\n",
        False,
    ),
}


def scan_finds(script: str) -> bool:
    return any(not m.allowed for m in MetaScanner().feed(script.encode()))


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_the_scan_agrees_with_psql(tmp_path: Path, supabase_db: SupabaseDb, name: str) -> None:
    template, runs = SCRIPTS[name]
    marker = tmp_path / "ran"
    script = template.replace("{T}", f"touch {marker}")
    cluster = supabase_db.cluster
    subprocess.run(
        [str(cluster.bindir / "psql"), "-X", "-q", "-o", "/dev/null", "-f", "-"],
        input=script.encode(),
        env=cluster.env(),
        capture_output=True,
        check=False,
    )
    assert marker.exists() is runs, "psql"
    assert scan_finds(script) is runs, "the scan"


def test_the_restores_psql_refuses_any_meta_command(
    tmp_path: Path, supabase_db: SupabaseDb
) -> None:
    """Whatever reaches psql in a restore runs in restricted mode: a meta-command stops it, an
    `\\unrestrict` with a key read from some dump too, and nothing commits."""
    cluster = supabase_db.cluster
    cluster.psql("DROP DATABASE IF EXISTS meta; CREATE DATABASE meta")
    target = DbTarget(
        host=str(cluster.socket_dir), port=cluster.port, user="supabase_admin", dbname="meta"
    )
    marker = tmp_path / "ran"
    for body in (
        f"CREATE TABLE t (id int);\n\\! touch {marker}\n",
        f"\\restrict k1\nCREATE TABLE t (id int);\n\\unrestrict k1\n\\! touch {marker}\n",
    ):
        with pytest.raises(RestoreError, match=r"restricted|wrong key"):
            run_psql(cluster.bindir, target, [body.encode()])
        assert not marker.exists()
        assert cluster.psql("SELECT to_regclass('t') IS NULL", dbname="meta").strip() == "t"

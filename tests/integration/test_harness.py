"""The throwaway-cluster harness and the Supabase-like fixture model what they claim to."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pgtools.cluster import INSTALL_HINT, PgBinariesMissing, find_server_bindir


def test_missing_server_binaries_fail_with_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(PgBinariesMissing) as caught:
        find_server_bindir([tmp_path, tmp_path / "nowhere"])
    assert str(caught.value) == INSTALL_HINT
    assert "apt-get install postgresql" in INSTALL_HINT


def test_supabase_role_layout(supabase_db: Any) -> None:
    c = supabase_db.cluster
    roles = dict(
        line.split("|", 1)
        for line in c.psql(
            "SELECT rolname, rolsuper || ',' || rolbypassrls FROM pg_roles "
            "WHERE rolname IN ('supabase_admin', 'postgres', 'anon', 'service_role')"
        ).split()
    )
    assert roles == {
        "supabase_admin": "true,true",
        "postgres": "false,true",
        "anon": "false,false",
        "service_role": "false,true",
    }
    assert c.psql("SELECT evtowner::regrole FROM pg_event_trigger").strip() == "postgres"
    assert (
        c.psql(
            "SELECT extnamespace::regnamespace FROM pg_extension WHERE extname = 'pgcrypto'"
        ).strip()
        == "extensions"
    )
    owner = c.psql("SELECT relowner::regrole FROM pg_class WHERE oid = 'auth.users'::regclass")
    assert owner.strip() == "supabase_auth_admin"


def test_auth_uid_and_rls_policy(supabase_db: Any) -> None:
    c = supabase_db.cluster
    uid = c.psql(
        "SELECT set_config('request.jwt.claim.sub', "
        "'00000000-0000-4000-8000-000000000001', false); SELECT auth.uid()"
    )
    assert uid.split()[-1] == "00000000-0000-4000-8000-000000000001"
    policies = c.psql("SELECT polname FROM pg_policy ORDER BY 1").splitlines()
    assert "Users can update own profile" in policies


def test_second_cluster_is_independent(make_cluster: Any, supabase_db: Any) -> None:
    other = make_cluster("supabase_admin")
    assert other.port != supabase_db.cluster.port
    assert other.psql("SELECT count(*) FROM pg_roles WHERE rolname = 'anon'").strip() == "0"

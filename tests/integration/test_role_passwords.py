"""Role passwords, "auto" by default: a superuser's backup keeps the hashes (as pg_dumpall
does), so a restore onto a bare server gives the service roles their passwords back; a backup
by a role that cannot read them says so, in one line and in its metadata, and `restore --plan`
names the roles a restore would create without a password."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from catalog.queries import get_backup
from pgtools.cluster import Cluster
from store import Codec
from tests.support import app_for, cluster_env, run_cli, settings_for
from usecases.backup.run import BackupRequest, run_backup
from usecases.config.settings import load_settings
from usecases.context import App
from usecases.errors import BadInput
from usecases.restore.run import RestoreRequest, plan_restore

SERVICE_LOGINS = [
    "authenticator",
    "postgres",
    "supabase_auth_admin",
    "supabase_read_only_user",
    "supabase_storage_admin",
]


def globals_sql(app: App, result: Any) -> str:
    art = next(a for a in result.artifacts if a["kind"] == "globals")
    with app.store.open_raw(art["digest"], Codec.GZIP) as chunks:
        return b"".join(chunks).decode()


def test_a_superusers_backup_keeps_the_hashes(tmp_path: Path, supabase_db: Any) -> None:
    with app_for(settings_for(tmp_path, supabase_db.cluster, user="supabase_admin")) as app:
        result = run_backup(app, BackupRequest(backup_type="nightly"))
        assert result.metadata["role_passwords"] == {
            "included": True,
            "setting": "auto",
            "login_roles_without_password": ["supabase_admin"],  # trust auth, as bootstrapped
        }
        sql = globals_sql(app, result)
    assert "--no-role-passwords" not in result.metadata["dump_options"]["globals"]
    for role in SERVICE_LOGINS:
        assert f"CREATE ROLE {role};" in sql
        line = next(ln for ln in sql.splitlines() if ln.startswith(f"ALTER ROLE {role} WITH"))
        assert "PASSWORD 'SCRAM-SHA-256$" in line


def test_a_backup_that_cannot_read_them_says_so(
    tmp_path: Path, supabase_db: Any, make_cluster: Callable[..., Cluster]
) -> None:
    env = cluster_env(supabase_db.cluster, tmp_path / "backups")  # as postgres: no superuser
    done = run_cli(env, "backup", "--type", "nightly", "--json")
    name = json.loads(done.stdout)["name"]
    notes = [ln for ln in done.stderr.splitlines() if "role passwords" in ln]
    assert len(notes) == 1 and "6 login role(s) without a password" in notes[0], done.stderr
    assert "cannot read them" in notes[0]
    with app_for(settings_for(tmp_path, supabase_db.cluster)) as app:
        backup = get_backup(app.catalog.engine, name)
        meta = backup["metadata"]["role_passwords"]
        assert meta == {
            "included": False,
            "setting": "auto",
            "login_roles_without_password": sorted([*SERVICE_LOGINS, "supabase_admin"]),
        }
        log = (app.settings.backup_dir / backup["metadata"]["log_file"]).read_text()
        assert "role passwords left out" in log
    info = run_cli(env, "info", name).stdout
    assert "role passwords:   left out; login roles without one: authenticator, " in info
    assert "pgcrypto 1.3 (postgres)" in info
    # A restore onto a bare server would create the service roles without a password.
    fresh = make_cluster("supabase_admin")
    with app_for(settings_for(tmp_path, fresh, user="supabase_admin")) as app:
        plan = plan_restore(app, RestoreRequest(backup=name))
        assert plan.roles_without_password == SERVICE_LOGINS
        assert plan.to_json()["roles_created_without_password"] == SERVICE_LOGINS
    env.update(SUPABASE_DB_HOST=str(fresh.socket_dir), SUPABASE_DB_PORT=str(fresh.port))
    env["SUPABASE_DB_USER"] = "supabase_admin"
    shown = run_cli(env, "restore", name, "--plan").stdout
    assert f"no password:   {', '.join(SERVICE_LOGINS)}" in shown


def test_false_leaves_them_out_even_for_a_superuser(tmp_path: Path, supabase_db: Any) -> None:
    settings = settings_for(tmp_path, supabase_db.cluster, user="supabase_admin")
    with app_for(dataclasses.replace(settings, role_passwords=False)) as app:
        result = run_backup(app, BackupRequest(backup_type="nightly"))
        assert "PASSWORD" not in globals_sql(app, result)
    facts = result.metadata["role_passwords"]
    assert facts["included"] is False and facts["setting"] is False
    assert "postgres" in facts["login_roles_without_password"]


@pytest.mark.parametrize(
    ("value", "expected"), [(None, None), ("auto", None), (True, True), (False, False)]
)
def test_the_setting_is_auto_true_or_false(tmp_path: Path, value: Any, expected: Any) -> None:
    (tmp_path / "backups").mkdir()
    doc = {} if value is None else {"database": {"include_role_passwords": value}}
    (tmp_path / "backups" / "backup-config.json").write_text(json.dumps(doc))
    assert load_settings(environ={}, cwd=tmp_path).role_passwords is expected


def test_anything_else_is_refused(tmp_path: Path) -> None:
    (tmp_path / "backups").mkdir()
    doc = {"database": {"include_role_passwords": "sometimes"}}
    (tmp_path / "backups" / "backup-config.json").write_text(json.dumps(doc))
    with pytest.raises(BadInput, match="include_role_passwords"):
        load_settings(environ={}, cwd=tmp_path)

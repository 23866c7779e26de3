"""Restores of a Supabase-bootstrapped database come out identical to the source, section by
section (tests/compare.py): roles and their passwords, memberships and their grantors,
extensions and their owners, owners and ACLs of every object, default privileges, event
triggers, policies, publications, the schema-only dump and every table's rows.

One source and one backup (all formats, taken as supabase_admin) serve the whole module; each
test restores it into a target of its own:
(a) a fresh cluster bootstrapped with supabase_admin, (b) an existing Supabase-like database
with data of its own, both as a superuser, on the plain and the custom path; a drill of the
same backup; and (c) a fresh Supabase-like instance, restored into as `postgres`.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pgtools.cluster import Cluster, supabase_fixture_sql, supabase_platform_sql
from pgtools.platform import restore_script
from pgtools.psqlscript import transaction_script
from tests.compare import UNGRANT_REPLICATION_ROLE, differences, state
from tests.support import app_for, cluster_env, run_cli, settings_for
from usecases.backup.run import BackupRequest, run_backup
from usecases.restore.drill import run_drill
from usecases.restore.platform import script_head
from usecases.restore.run import (
    RestoreRequest,
    bindir_for,
    execute_restore,
    plan_restore,
    script_of,
)

OWN_DATA = """
SET ROLE supabase_auth_admin;
INSERT INTO auth.users (id, email) VALUES ('00000000-0000-4000-8000-0000000000aa', 'new@x.org');
RESET ROLE;
DELETE FROM public.todos WHERE id % 2 = 0;
UPDATE public.profiles SET bio = 'the target''s own';
DELETE FROM storage.objects;
SELECT setval('public.invoice_number_seq', 7000);
SET ROLE postgres;
CREATE TABLE public.target_only (id int);
CREATE SCHEMA target_own;
CREATE FUNCTION target_own.f() RETURNS int LANGUAGE sql AS 'SELECT 1';
RESET ROLE;
"""


@dataclass(frozen=True)
class Source:
    cluster: Cluster
    backup_dir: Path
    name: str
    state: dict[str, Any]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Source]:
    """The Supabase-like project and one backup of it, taken as the superuser."""
    cluster = Cluster.create("supabase_admin").start()
    try:
        cluster.psql(supabase_fixture_sql())
        backup_dir = tmp_path_factory.mktemp("supabase-restore")
        with app_for(settings_for(backup_dir, cluster, user="supabase_admin")) as app:
            name = run_backup(app, BackupRequest(name="source")).name  # manual: all formats
        yield Source(cluster, backup_dir, name, state(cluster))
    finally:
        cluster.destroy()


def restore_into(src: Source, target: Cluster, *, user: str, artifact: str = "full") -> None:
    req = RestoreRequest(backup=src.name, artifact=artifact)
    with app_for(settings_for(src.backup_dir, target, user=user)) as app:
        execute_restore(app, plan_restore(app, req), req, terminate=True)


def assert_identical(src: Source, target: Cluster) -> None:
    diff = differences(src.state, state(target))
    assert not diff, diff


@pytest.mark.parametrize("artifact", ["full", "custom"])
def test_a_fresh_cluster_bootstrapped_with_supabase_admin(
    source: Source, make_cluster: Callable[..., Cluster], artifact: str
) -> None:
    target = make_cluster("supabase_admin")
    restore_into(source, target, user="supabase_admin", artifact=artifact)
    assert_identical(source, target)


@pytest.mark.parametrize("artifact", ["full", "custom"])
def test_an_existing_supabase_database_with_data_of_its_own(
    source: Source, make_cluster: Callable[..., Cluster], artifact: str
) -> None:
    target = make_cluster("supabase_admin")
    target.psql(supabase_fixture_sql())
    target.psql(OWN_DATA)
    assert differences(source.state, state(target))
    restore_into(source, target, user="supabase_admin", artifact=artifact)
    assert_identical(source, target)


def test_a_drill_of_the_same_backup_passes(
    source: Source, make_cluster: Callable[..., Cluster]
) -> None:
    target = make_cluster("supabase_admin")
    with app_for(settings_for(source.backup_dir, target, user="supabase_admin")) as app:
        outcome = run_drill(app, source.name)
    assert outcome.ok, outcome.reason or outcome.mismatches
    assert outcome.tables_checked == len(source.state["checksums"])


@pytest.mark.parametrize("artifact", ["full", "custom"])
def test_as_postgres_into_a_fresh_supabase_instance(
    source: Source, make_cluster: Callable[..., Cluster], artifact: str
) -> None:
    target = make_cluster("supabase_admin")
    target.psql(supabase_platform_sql())
    restore_into(source, target, user="postgres", artifact=artifact)
    assert_identical(source, target)


def test_as_postgres_over_a_restarted_instance_with_the_projects_migrations(
    source: Source, make_cluster: Callable[..., Cluster]
) -> None:
    """The old guide's `supabase stop && supabase start`: the platform comes back, the project's
    migrations run again (its schema, the sign-up trigger on auth.users, the storage policy),
    with other rows. The restore replaces the project's schemas and every table's rows."""
    target = make_cluster("supabase_admin")
    target.psql(supabase_fixture_sql())
    target.psql(OWN_DATA)
    restore_into(source, target, user="postgres")
    assert_identical(source, target)


def test_the_plan_says_what_is_restored_and_what_the_platform_keeps(
    source: Source, make_cluster: Callable[..., Cluster]
) -> None:
    target = make_cluster("supabase_admin")
    target.psql(supabase_platform_sql())
    target.psql(
        "SET ROLE supabase_auth_admin; ALTER TABLE auth.users ADD COLUMN phone text; RESET ROLE;"
        "DROP EVENT TRIGGER log_ddl;"
    )
    env = cluster_env(target, source.backup_dir / "backups")
    shown = run_cli(env, "restore", source.name, "--plan").stdout
    for line in (
        "into a Supabase instance as postgres: its platform stays; one transaction",
        "restored whole:     public (3 tables), supabase_migrations (1 tables)",
        "only their rows:    auth.identities (2), auth.refresh_tokens (5)",
        "left to platform:   auth, extensions, storage; roles; database settings",
        "created:            TRIGGER auth.users on_auth_user_created, "
        "POLICY storage.objects Owners read their objects",
        "platform differs:   differs on the target, kept: TABLE auth.users",
        "platform differs:   not on the target, not restored: EVENT TRIGGER log_ddl",
    ):
        assert line in shown, shown
    assert "REFUSED" not in shown
    doc = json.loads(run_cli(env, "restore", source.name, "--plan", "--json").stdout)
    assert doc["method"] == "platform" and doc["roles_to_create"] == []
    assert doc["platform"]["rows_only"]["auth.users"] == 3
    # The restore goes on: the backup's rows fit the target's newer auth.users.
    run_cli(env, "restore", source.name, "--yes")
    assert target.psql("SELECT count(*) FROM auth.users WHERE phone IS NULL").strip() == "3"
    assert differences(source.state, state(target))  # the platform differs, as the plan said
    # A platform table postgres may not read: its definitions cannot be dumped and compared;
    # the plan says so and goes on.
    target.psql("CREATE TABLE storage.internal (id int)")
    shown = run_cli(env, "restore", source.name, "--plan").stdout
    assert "platform differs:   not compared with the target's definitions: " in shown
    assert "permission denied for table internal" in shown
    assert "created:            TRIGGER auth.users on_auth_user_created (if missing)" in shown


def test_missing_roles_and_no_session_replication_role_refuse_the_restore(
    source: Source, make_cluster: Callable[..., Cluster]
) -> None:
    target = make_cluster("supabase_admin")
    target.psql(supabase_platform_sql())
    target.psql("DROP ROLE supabase_read_only_user;" + UNGRANT_REPLICATION_ROLE)
    before = state(target)
    env = cluster_env(target, source.backup_dir / "backups")
    shown = run_cli(env, "restore", source.name, "--plan").stdout
    assert "REFUSED:            roles the backup has are missing on the target: " in shown
    assert "supabase_read_only_user (a restore as a non-superuser creates no role" in shown
    assert "may not set session_replication_role" in shown
    done = run_cli(env, "restore", source.name, "--yes", check=False)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "nothing was changed" in done.stderr
    assert "supabase_read_only_user" in done.stderr
    assert not differences(before, state(target))


def test_a_failure_midway_leaves_the_instance_as_it_was(
    source: Source, make_cluster: Callable[..., Cluster]
) -> None:
    target = make_cluster("supabase_admin")
    target.psql(supabase_fixture_sql())
    target.psql(OWN_DATA)
    # The backup's rows no longer fit the target's storage.objects: its COPY fails.
    target.psql("ALTER TABLE storage.objects DROP COLUMN metadata", user="supabase_storage_admin")
    before = state(target)
    done = run_cli(
        cluster_env(target, source.backup_dir / "backups"),
        "restore",
        source.name,
        "--yes",
        check=False,
    )
    assert done.returncode == 1
    assert 'column "metadata" of relation "objects" does not exist' in done.stderr
    assert "postgres was left as it was" in done.stderr
    assert not differences(before, state(target))


def test_keep_platform_chooses_it_for_a_superuser_too(
    source: Source, make_cluster: Callable[..., Cluster]
) -> None:
    target = make_cluster("supabase_admin")
    target.psql(supabase_platform_sql())
    req = RestoreRequest(backup=source.name, keep_platform=True)
    with app_for(settings_for(source.backup_dir, target, user="supabase_admin")) as app:
        plan = plan_restore(app, req)
        assert plan.method == "platform" and plan.roles_to_create == []
        execute_restore(app, plan, req, terminate=True)
    assert_identical(source, target)


def test_an_early_end_of_its_input_rolls_the_restore_back(
    source: Source, make_cluster: Callable[..., Cluster]
) -> None:
    """The script is one transaction that only its end commits: when its input ends before the
    COMMIT (the restore was killed), psql's session ends with the transaction, which rolls
    back."""
    target = make_cluster("supabase_admin")
    target.psql(supabase_fixture_sql())
    target.psql(OWN_DATA)
    before = state(target)
    req = RestoreRequest(backup=source.name)
    with app_for(settings_for(source.backup_dir, target, user="postgres")) as app:
        plan = plan_restore(app, req)
        assert plan.platform is not None
        bindir = bindir_for(app, plan.facts.server_major)
        with script_of(app, plan.source, bindir) as chunks:
            head = script_head(plan.platform)
            body = restore_script(chunks, head, plan.platform.target)
            script = list(transaction_script(body))  # as run_psql frames it
    assert script[0] == b"BEGIN;\n" and script[-1] == b"\nCOMMIT;\n"
    psql = [str(bindir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-v", "AUTOCOMMIT=off"]
    done = subprocess.run(
        [*psql, "-f", "-"],
        input=b"".join(script[:-1]),
        env=plan.target.env(dict(os.environ)),
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr  # psql took the end of input as the end
    assert not differences(before, state(target))

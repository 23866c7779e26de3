"""`restore NAME --schema S` on the Supabase-like project, as a superuser: afterwards S is as
the backup had it (owners, privileges, the objects its extensions created and who owns them,
policies, triggers, constraints, rows), and everything outside S is as the target had it,
the objects of other schemas that depend on S's included (the event trigger on a function of
`extensions`, the sign-up trigger on auth.users calling a function of `public`, the foreign
keys and policies into `auth`). What cannot be restored alone is refused up front.

One cluster serves the module: the project in `postgres`, one backup of it, and a copy of the
project (`project`) that each test copies into a target database of its own and changes.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pgtools.cluster import Cluster, supabase_fixture_sql
from tests.compare import checksums, differences
from tests.compare_schema import scoped_state
from tests.support import app_for, cluster_env, run_cli, settings_for
from usecases.backup.run import BackupRequest, run_backup
from usecases.restore.run import RestoreFailedError, RestoreRequest, execute_restore, plan_restore


@dataclass(frozen=True)
class Source:
    cluster: Cluster
    backup_dir: Path
    name: str


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Source]:
    cluster = Cluster.create("supabase_admin").start()
    try:
        cluster.psql(supabase_fixture_sql())
        cluster.psql("CREATE DATABASE project TEMPLATE postgres")
        backup_dir = tmp_path_factory.mktemp("schema-restore")
        with app_for(settings_for(backup_dir, cluster, user="supabase_admin")) as app:
            name = run_backup(app, BackupRequest(name="source")).name
        yield Source(cluster, backup_dir, name)
    finally:
        cluster.destroy()


def target(source: Source, dbname: str, changes: str = "") -> str:
    """A database of its own: the project, then `changes`."""
    source.cluster.psql(f'CREATE DATABASE "{dbname}" TEMPLATE project')
    if changes:
        source.cluster.psql(changes, dbname=dbname)
    return dbname


def restore(
    source: Source, dbname: str, *, schemas: tuple[str, ...] = (), tables: tuple[str, ...] = ()
) -> None:
    req = RestoreRequest(backup=source.name, target_db=dbname, schemas=schemas, tables=tables)
    with app_for(settings_for(source.backup_dir, source.cluster, user="supabase_admin")) as app:
        execute_restore(app, plan_restore(app, req), req, terminate=True)


def cli_env(source: Source) -> dict[str, str]:
    env = cluster_env(source.cluster, source.backup_dir / "backups")
    env["SUPABASE_DB_USER"] = "supabase_admin"
    return env


# What each test changes inside the schema it restores, and outside it (which must stay).
CHANGES = {
    "public": """
        DELETE FROM public.todos WHERE id % 2 = 0;
        UPDATE public.profiles SET bio = 'changed';
        CREATE OR REPLACE FUNCTION public.handle_new_user() RETURNS trigger LANGUAGE plpgsql
        SECURITY DEFINER SET search_path = '' AS $$ BEGIN RETURN NEW; END $$;
        DROP POLICY "Profiles are viewable by everyone" ON public.profiles;
        REVOKE ALL ON public.signups FROM anon;
        GRANT CREATE ON SCHEMA public TO anon;
        ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public
            GRANT SELECT ON TABLES TO supabase_read_only_user;
        -- outside public: the sign-up trigger on auth.users, disabled here, stays so
        ALTER TABLE auth.users DISABLE TRIGGER on_auth_user_created;
        UPDATE auth.refresh_tokens SET revoked = true;
    """,
    "auth": """
        DELETE FROM auth.refresh_tokens WHERE id > 3;
        UPDATE auth.users SET email = 'changed-' || email;
        CREATE OR REPLACE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE
            AS $$ SELECT NULL::uuid $$;
        GRANT SELECT ON auth.users TO anon;
        REVOKE USAGE ON SCHEMA auth FROM supabase_storage_admin;
        DROP TRIGGER on_auth_user_created ON auth.users;
        -- outside auth: foreign keys and policies into it, one of them changed here
        UPDATE public.todos SET is_complete = NOT is_complete WHERE id < 10;
        ALTER POLICY "Owners read their objects" ON storage.objects TO authenticated;
        COMMENT ON CONSTRAINT todos_user_id_fkey ON public.todos IS 'the owner';
    """,
    "storage": """
        DELETE FROM storage.objects WHERE name = 'kenji.png';
        DROP POLICY "Owners read their objects" ON storage.objects;
        GRANT CREATE ON SCHEMA storage TO anon;
        UPDATE public.profiles SET bio = 'outside storage' WHERE username = 'kenji';
    """,
    "extensions": """
        -- uuid-ossp created again by supabase_admin (as a restore by dumpledger 0.x left it)
        DROP EXTENSION "uuid-ossp";
        CREATE EXTENSION "uuid-ossp" WITH SCHEMA extensions;
        DROP EXTENSION pg_stat_statements;
        GRANT EXECUTE ON FUNCTION extensions.gen_random_bytes(integer) TO anon;
        REVOKE EXECUTE ON FUNCTION extensions.gen_random_bytes(integer) FROM authenticated;
        CREATE OR REPLACE FUNCTION extensions.log_ddl() RETURNS event_trigger
            LANGUAGE plpgsql AS $$ BEGIN RAISE NOTICE 'changed'; END $$;
        -- outside extensions: the event trigger on its function, disabled here, stays so
        ALTER EVENT TRIGGER log_ddl DISABLE;
        COMMENT ON EVENT TRIGGER log_ddl IS 'logs DDL';
    """,
}


@pytest.mark.parametrize("schema", list(CHANGES))
def test_a_schema_comes_back_as_the_backup_had_it(source: Source, schema: str) -> None:
    """Before: public and extensions failed ("cannot drop function ... because other objects
    depend on it"), auth was refused (foreign keys from public), and every schema kept the
    target's own schema privileges and extension privileges."""
    db = target(source, f"t_{schema}", CHANGES[schema])
    want = scoped_state(source.cluster, [schema], inside=True)
    outside = scoped_state(source.cluster, [schema], inside=False, dbname=db)
    assert differences(want, scoped_state(source.cluster, [schema], inside=True, dbname=db))
    restore(source, db, schemas=(schema,))
    inside_diff = differences(want, scoped_state(source.cluster, [schema], inside=True, dbname=db))
    assert not inside_diff, inside_diff
    outside_diff = differences(
        outside, scoped_state(source.cluster, [schema], inside=False, dbname=db)
    )
    assert not outside_diff, outside_diff


def test_the_plan_says_what_is_set_aside_and_what_becomes_of_the_extensions(
    source: Source,
) -> None:
    db = target(source, "t_plan", CHANGES["extensions"])
    env = cli_env(source)
    args = ("restore", source.name, "--target-db", db, "--plan")
    doc = json.loads(run_cli(env, *args, "--schema", "extensions", "--json").stdout)
    part = doc["objects_replaced"]
    assert part["extensions"] == {
        "pg_stat_statements": "created by postgres",
        "pgcrypto": "kept; the privileges on its objects set as in the backup",
        "uuid-ossp": "dropped and created again by postgres (owned by supabase_admin here)",
    }
    assert part["set_aside_and_recreated"] == ["event trigger log_ddl"]
    shown = run_cli(env, *args, "--schema", "auth").stdout
    assert (
        "  set aside:     dropped, then recreated as they are: "
        "foreign key public.profiles (profiles_id_fkey) -> auth.users; "
        "foreign key public.todos (todos_user_id_fkey) -> auth.users; "
        "policy Owners read their objects on table storage.objects; "
        "policy Users can update own profile on table public.profiles"
    ) in shown, shown
    shown = run_cli(env, *args, "--schema", "public").stdout
    assert "trigger on_auth_user_created on table auth.users" in shown, shown


def test_an_extension_that_other_schemas_need_is_refused_up_front(source: Source) -> None:
    """pgcrypto owned by supabase_admin (as a restore by dumpledger 0.x left it) must be
    dropped to be created again by postgres, and auth.users's default needs it. Before: the
    plan said nothing of it, and the restore went ahead."""
    db = target(
        source,
        "t_refused",
        """
        DROP EXTENSION pgcrypto CASCADE;
        CREATE EXTENSION pgcrypto WITH SCHEMA extensions;
        ALTER TABLE auth.users ALTER COLUMN id SET DEFAULT extensions.gen_random_uuid();
        """,
    )
    before = scoped_state(source.cluster, [], inside=False, dbname=db)
    env = cli_env(source)
    for extra in (("--plan",), ("--yes",)):
        done = run_cli(
            env,
            "restore",
            source.name,
            "--target-db",
            db,
            "--schema",
            "extensions",
            *extra,
            check=False,
        )
        assert done.returncode == 2, done.stdout + done.stderr
        assert done.stderr.count("\n") == 1, done.stderr
        assert (
            "--schema extensions: extension pgcrypto is owned by supabase_admin here and by "
            "postgres in the backup, so it would be dropped and created again, and "
            "default value for column id of table auth.users depends on it"
        ) in done.stderr
        assert "restore the whole database" in done.stderr
    assert not differences(before, scoped_state(source.cluster, [], inside=False, dbname=db))


def test_rows_that_would_break_a_foreign_key_into_the_schema_fail_the_restore(
    source: Source,
) -> None:
    db = target(
        source,
        "t_fk",
        """
        INSERT INTO auth.users (id, email) VALUES ('00000000-0000-4000-8000-0000000000aa', 'n@x');
        INSERT INTO public.todos (user_id, task)
            VALUES ('00000000-0000-4000-8000-0000000000aa', 'a todo of the new user');
        """,
    )
    before = scoped_state(source.cluster, [], inside=False, dbname=db)
    with pytest.raises(RestoreFailedError) as failed:
        restore(source, db, schemas=("auth",))
    assert (
        "1 row(s) of public.todos would point at no row of auth.users (todos_user_id_fkey)"
        in str(failed.value)
    )
    assert not differences(before, scoped_state(source.cluster, [], inside=False, dbname=db))


def test_table_that_tables_of_another_schema_reference(source: Source) -> None:
    """--table auth.users, which public.profiles and public.todos reference: its rows come
    back; the referencing rows stay (no ON DELETE CASCADE), the sign-up trigger does not fire."""
    db = target(source, "t_table", "UPDATE auth.users SET email = 'changed-' || email;")
    before = checksums(source.cluster, db)
    restore(source, db, tables=("auth.users",))
    after = checksums(source.cluster, db)
    assert after["auth.users"] == checksums(source.cluster)["auth.users"] != before["auth.users"]
    assert {k: v for k, v in after.items() if k != "auth.users"} == {
        k: v for k, v in before.items() if k != "auth.users"
    }
    source.cluster.psql(
        "INSERT INTO auth.users (id, email) VALUES ('00000000-0000-4000-8000-0000000000bb', 'b');"
        "INSERT INTO public.profiles (id) VALUES ('00000000-0000-4000-8000-0000000000bb');",
        dbname=db,
    )
    before = checksums(source.cluster, db)
    with pytest.raises(RestoreFailedError) as failed:
        restore(source, db, tables=("auth.users",))
    assert (
        "1 row(s) of public.profiles would point at no row of auth.users (profiles_id_fkey)"
        in str(failed.value)
    )
    assert checksums(source.cluster, db) == before


def test_a_dump_file_without_recorded_owners(source: Source, tmp_path: Path) -> None:
    """A custom dump from outside the catalog records no extension owners: its extensions are
    read from its entries, and one the target lacks is created by the restoring role."""
    dump = tmp_path / "project.dump"
    subprocess.run(
        [str(source.cluster.bindir / "pg_dump"), "-Fc", f"--file={dump}"],
        env=source.cluster.env(dbname="project"),
        check=True,
    )
    db = target(source, "t_file", "DROP EXTENSION pg_stat_statements;")
    env = cli_env(source)
    args = ("restore", "--file", str(dump), "--target-db", db, "--schema", "extensions")
    doc = json.loads(run_cli(env, *args, "--plan", "--json").stdout)
    assert doc["objects_replaced"]["extensions"]["pg_stat_statements"] == (
        "created by the restoring role"
    )
    run_cli(env, *args, "--yes")
    assert (
        source.cluster.psql(
            "SELECT extowner::regrole FROM pg_extension WHERE extname = 'pg_stat_statements'",
            dbname=db,
        ).strip()
        == "supabase_admin"
    )

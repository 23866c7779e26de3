"""Restore through the use case on the Supabase-like fixture: back into the same database after
changes, into a fresh cluster without the roles, failures that must leave the target as it was,
damaged backups, dump files from outside the catalog, custom format and partial restores."""

from __future__ import annotations

import gzip
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from catalog.queries import get_backup, list_backups
from pgtools.cluster import Cluster
from store import Codec
from tests.compare import roles, state
from tests.support import app_for, fabricate_backup, settings_for
from usecases.backup.run import BackupRequest, run_backup
from usecases.config.settings import Settings
from usecases.context import App
from usecases.restore.run import (
    RestoreFailedError,
    RestoreRequest,
    execute_restore,
    plan_restore,
)
from usecases.restore.source import SourceDamaged

CHANGES = """
DELETE FROM public.todos WHERE id % 3 = 0;
UPDATE public.profiles SET bio = 'changed';
SELECT setval('public.invoice_number_seq', 5000);
DROP POLICY "Users can update own profile" ON public.profiles;
CREATE TABLE public.added_later (id int);
COMMENT ON DATABASE postgres IS 'changed';
REVOKE CONNECT ON DATABASE postgres FROM anon;
ALTER DATABASE postgres SET "app.settings.jwt_exp" TO '60';
"""


def admin_settings(tmp_path: Path, cluster: Cluster) -> Settings:
    """Restores replace whole databases: they connect as the bootstrap superuser."""
    return settings_for(tmp_path, cluster, user="supabase_admin")


def restore(app: App, req: RestoreRequest) -> tuple[str | None, str | None]:
    plan = plan_restore(app, req)
    outcome = execute_restore(app, plan, req, terminate=True)
    return outcome.safety_backup, outcome.replaced_database


def databases(cluster: Cluster) -> list[str]:
    return cluster.psql("SELECT datname FROM pg_database ORDER BY 1").split()


def event_types(app: App) -> list[str]:
    return [r.type for r in app.catalog.events()]


def test_restore_into_the_same_database_after_changes(
    tmp_path: Path, supabase_cluster: Cluster
) -> None:
    cluster = supabase_cluster
    before = state(cluster)
    with app_for(admin_settings(tmp_path, cluster)) as app:
        name = run_backup(app, BackupRequest(backup_type="nightly")).name
        cluster.psql(CHANGES)
        changed = state(cluster)
        assert changed != before
        safety, replaced = restore(app, RestoreRequest(backup=name))

        assert state(cluster) == before
        # The replaced database is kept, as it was just before the restore.
        assert replaced in databases(cluster)
        assert state(cluster, replaced)["checksums"] == changed["checksums"]
        # The safety backup is a completed, verified backup of the changed database.
        assert safety is not None and safety.startswith("pre-restore_postgres_")
        sb = get_backup(app.catalog.engine, safety)
        assert sb["status"] == "completed" and sb["backup_type"] == "pre"
        assert "public.added_later" in sb["metadata"]["row_counts"]
        types = event_types(app)
        assert types[-1] == "RestoreCompleted"
        done = app.catalog.events(types=["RestoreCompleted"])[-1].payload
        assert done["backup"] == name and done["safety_backup"] == safety
        assert done["target"]["name"] == "postgres" and "password" not in done["target"]
    assert not [d for d in databases(cluster) if "_dlrestore_" in d]


def test_restore_into_a_fresh_cluster_where_the_roles_do_not_exist(
    tmp_path: Path, supabase_cluster: Cluster, make_cluster: Callable[..., Cluster]
) -> None:
    source = supabase_cluster
    fresh = make_cluster("supabase_admin")
    assert "anon" not in roles(fresh)
    with app_for(admin_settings(tmp_path, source)) as app:
        name = run_backup(app, BackupRequest(backup_type="nightly")).name
    with app_for(admin_settings(tmp_path, fresh)) as app:
        plan = plan_restore(app, RestoreRequest(backup=name))
        assert {"anon", "authenticated", "postgres", "service_role"} <= set(plan.roles_to_create)
        assert "supabase_admin" not in plan.roles_to_create
        execute_restore(app, plan, RestoreRequest(backup=name), terminate=True)

    assert roles(fresh) == roles(source)
    assert state(fresh) == state(source)
    # postgres owns the event trigger yet is no superuser, as on Supabase.
    assert fresh.psql("SELECT rolsuper FROM pg_roles WHERE rolname = 'postgres'").strip() == "f"
    assert fresh.psql("SELECT evtname FROM pg_event_trigger").strip() == "log_ddl"


def test_a_restore_that_fails_midway_leaves_the_target_as_it_was(
    tmp_path: Path, supabase_cluster: Cluster
) -> None:
    cluster = supabase_cluster
    before = state(cluster)
    broken = (
        b"CREATE TABLE public.half (id int);\n"
        b"INSERT INTO public.half SELECT generate_series(1, 1000);\n"
        b"SELECT 1 / 0;\n"
        b"CREATE TABLE public.never (id int);\n"
        b"--\n-- PostgreSQL database dump complete\n--\n"
    )
    with app_for(admin_settings(tmp_path, cluster)) as app:
        fabricate_backup(app, "broken_20261124_120000", broken, row_counts={"public.half": 1000})
        with pytest.raises(RestoreFailedError) as failed:
            restore(app, RestoreRequest(backup="broken_20261124_120000"))
        message = str(failed.value)
        assert "division by zero" in message
        assert "postgres was left as it was" in message
        safety = next(
            b["name"] for b in list_backups(app.catalog.engine) if b["name"].startswith("pre-")
        )
        assert f"restore {safety} --target-db postgres --yes" in message

        assert state(cluster) == before
        assert not [d for d in databases(cluster) if "_dlrestore_" in d or "_replaced_" in d]
        failed_ev = app.catalog.events(types=["RestoreFailed"])[-1].payload
        assert failed_ev["stage"] == "restore" and "division by zero" in failed_ev["reason"]
        assert failed_ev["safety_backup"] == safety

        # The safety backup exists and restores to the same state.
        cluster.psql("DELETE FROM public.todos")
        restore(app, RestoreRequest(backup=safety))
    assert state(cluster) == before


def test_a_damaged_backup_is_refused_before_anything_is_touched(
    tmp_path: Path, supabase_cluster: Cluster
) -> None:
    with app_for(admin_settings(tmp_path, supabase_cluster)) as app:
        result = run_backup(app, BackupRequest(backup_type="nightly"))
        full = next(a for a in result.artifacts if a["kind"] == "full")
        path = app.store.path_for(full["digest"], Codec.GZIP)
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
        with pytest.raises(SourceDamaged) as damaged:
            plan_restore(app, RestoreRequest(backup=result.name))
        assert str(path) in str(damaged.value)
        assert "nothing was touched" in str(damaged.value)
        types = event_types(app)
        assert "RestoreStarted" not in types
        assert types[-1] == "BackupVerified"
        assert [b["name"] for b in list_backups(app.catalog.engine)] == [result.name]


def _pg_dump_file(cluster: Cluster, path: Path, *args: str) -> None:
    subprocess.run(
        [str(cluster.bindir / "pg_dump"), *args, "-f", str(path)],
        env=cluster.env(),
        check=True,
        capture_output=True,
    )


@pytest.mark.parametrize("kind", ["plain", "gzip", "custom"])
def test_restore_from_a_dump_file_outside_the_catalog(
    tmp_path: Path, supabase_cluster: Cluster, kind: str
) -> None:
    cluster = supabase_cluster
    plain = tmp_path / "old_full.sql"
    if kind == "custom":
        dump = tmp_path / "old.dump"
        _pg_dump_file(cluster, dump, "--format=custom")
    else:
        _pg_dump_file(cluster, plain)
        dump = plain
        if kind == "gzip":
            dump = tmp_path / "old_full.sql.gz"
            dump.write_bytes(gzip.compress(plain.read_bytes(), 9))
    target = f"from_{kind}"
    with app_for(admin_settings(tmp_path, cluster)) as app:
        plan = plan_restore(app, RestoreRequest(file=dump, target_db=target))
        assert plan.safety_backup is None  # the database does not exist yet
        assert plan.source.format == ("custom" if kind == "custom" else "plain")
        restore(app, RestoreRequest(file=dump, target_db=target))
        started = app.catalog.events(types=["RestoreStarted"])[-1]
        assert started.payload["source_file"] == str(dump.resolve())
        assert started.subject == f"file:{dump.resolve()}"
    assert state(cluster, target)["checksums"] == state(cluster)["checksums"]
    assert state(cluster, target)["policies"] == state(cluster)["policies"]


def test_an_incomplete_dump_file_is_refused(tmp_path: Path, supabase_cluster: Cluster) -> None:
    dump = tmp_path / "cut.sql"
    _pg_dump_file(supabase_cluster, dump)
    dump.write_bytes(dump.read_bytes()[:-300])
    with (
        app_for(admin_settings(tmp_path, supabase_cluster)) as app,
        pytest.raises(SourceDamaged, match="completion trailer"),
    ):
        plan_restore(app, RestoreRequest(file=dump, target_db="never"))
    assert "never" not in databases(supabase_cluster)


def test_custom_format_restore_with_parallel_jobs_and_a_partial_restore(
    tmp_path: Path, supabase_cluster: Cluster
) -> None:
    cluster = supabase_cluster
    before = state(cluster)
    with app_for(admin_settings(tmp_path, cluster)) as app:
        name = run_backup(app, BackupRequest(name="deploy")).name  # manual: all formats
        restore(app, RestoreRequest(backup=name, artifact="custom", jobs=2, target_db="copy"))
        assert state(cluster, "copy") == {**before, "database": state(cluster, "copy")["database"]}
        assert state(cluster, "copy")["checksums"] == before["checksums"]
        # After a custom restore, postgres is demoted again.
        assert cluster.psql("SELECT rolsuper FROM pg_roles WHERE rolname='postgres'").strip() == "f"

        # Partial: only the named table's rows come back; other changes stay.
        cluster.psql(
            "DELETE FROM supabase_migrations.schema_migrations; DELETE FROM public.profiles; "
            'DROP POLICY "Owners read their objects" ON storage.objects'
        )
        req = RestoreRequest(
            backup=name, artifact="custom", tables=("supabase_migrations.schema_migrations",)
        )
        plan = plan_restore(app, req)
        assert plan.method == "partial" and plan.safety_backup
        execute_restore(app, plan, req, terminate=True)
        after = state(cluster)["checksums"]
        key = "supabase_migrations.schema_migrations"
        assert after[key] == before["checksums"][key]
        assert after["public.profiles"].startswith("0:")

        # --schema storage: the schema's objects, policies included, come back.
        restore(app, RestoreRequest(backup=name, artifact="custom", schemas=("storage",)))
    assert state(cluster)["policies"] == before["policies"]
    assert state(cluster)["checksums"]["storage.objects"] == before["checksums"]["storage.objects"]


def test_restore_plan_changes_nothing(tmp_path: Path, supabase_cluster: Cluster) -> None:
    cluster = supabase_cluster
    with app_for(admin_settings(tmp_path, cluster)) as app:
        name = run_backup(app, BackupRequest(backup_type="nightly")).name
        n_events = app.catalog.count()
        cluster.psql("DELETE FROM public.todos")
        before = state(cluster)
        plan = plan_restore(app, RestoreRequest(backup=name), verify=False)
        doc = plan.to_json()
        assert doc["safety_backup"].startswith("pre-restore_postgres_")
        assert doc["objects_replaced"]["public"] == 3
        assert doc["roles_to_create"] == []
        assert doc["last_drill"] is None
        assert app.catalog.count() == n_events
    assert state(cluster) == before


def test_restore_refuses_template_databases_and_unknown_artifacts(
    tmp_path: Path, supabase_cluster: Cluster
) -> None:
    from usecases.errors import BadInput

    with app_for(admin_settings(tmp_path, supabase_cluster)) as app:
        name = run_backup(app, BackupRequest(backup_type="nightly")).name
        with pytest.raises(BadInput, match="template"):
            plan_restore(app, RestoreRequest(backup=name, target_db="template1"))
        with pytest.raises(BadInput, match="no custom artifact"):
            plan_restore(app, RestoreRequest(backup=name, artifact="custom"))
        # --table/--schema take the custom-format dump by themselves; an automatic backup
        # has none, and says so.
        with pytest.raises(BadInput, match=f"need a custom-format dump, and backup {name} has"):
            plan_restore(app, RestoreRequest(backup=name, tables=("public.todos",)))
        with pytest.raises(BadInput, match="leave out --artifact full"):
            plan_restore(app, RestoreRequest(backup=name, artifact="full", schemas=("public",)))

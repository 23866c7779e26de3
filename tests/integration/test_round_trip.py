"""Round trip: restore `globals` and `full` with plain psql into a fresh cluster; compare."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pgtools.cluster import Cluster
from tests.compare import checksums, roles, schema_dump
from tests.support import app_for, settings_for
from usecases.backup.run import BackupRequest, run_backup


def test_globals_and_full_restore_into_a_fresh_cluster(
    tmp_path: Path, supabase_db: Any, make_cluster: Callable[..., Cluster]
) -> None:
    source = supabase_db.cluster
    # As the superuser, so the globals keep the role passwords, as pg_dumpall does.
    with app_for(settings_for(tmp_path, source, user="supabase_admin")) as app:
        result = run_backup(app, BackupRequest(backup_type="nightly"))
        files = app.settings.database_dir  # what a person restores from: gunzip -c FILE
        sql = {
            kind: gzip.decompress((files / f"{result.name}_{kind}.sql.gz").read_bytes()).decode()
            for kind in ("globals", "full")
        }
    target = make_cluster("supabase_admin")
    # supabase_admin already exists in the target (its bootstrap superuser): that one
    # CREATE ROLE fails and psql goes on, as it would for a person restoring by hand.
    target.psql(sql["globals"], on_error_stop=False)
    # By hand, as on Supabase: postgres owns the extensions and an event trigger, which only a
    # superuser may own: it is promoted while the dump replays, as itself, so the extensions
    # it creates are its own, and demoted again afterwards (the restore command does this).
    target.psql("ALTER ROLE postgres SUPERUSER")
    target.psql(sql["full"], user="postgres", on_error_stop=True)
    target.psql("ALTER ROLE postgres NOSUPERUSER")

    assert roles(target) == roles(source)
    assert schema_dump(target) == schema_dump(source)
    source_sums = checksums(source)
    assert checksums(target) == source_sums
    assert source_sums["public.todos"].startswith("200:")
    assert target.psql("SELECT last_value FROM public.invoice_number_seq").strip() == "1041"

"""--table and --schema into the live database: a table other tables reference, partitioned
tables, foreign keys that the restored rows would break, and a plan that says exactly what
is touched. Real clusters, real pg_dump/pg_restore/psql."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pgtools.cluster import Cluster
from tests.compare import checksums
from tests.support import app_for, settings_for
from usecases.backup.run import BackupRequest, run_backup
from usecases.context import App
from usecases.errors import BadInput
from usecases.restore.run import (
    RestoreFailedError,
    RestoreRequest,
    execute_restore,
    plan_restore,
)

SHOP = """
CREATE TABLE public.users (id serial PRIMARY KEY, name text NOT NULL);
CREATE TABLE public.orders (
    id serial PRIMARY KEY, user_id int NOT NULL REFERENCES public.users (id), total int);
INSERT INTO public.users (name) SELECT 'user ' || g FROM generate_series(1, 20) g;
INSERT INTO public.orders (user_id, total) SELECT 1 + g % 20, g FROM generate_series(1, 200) g;
CREATE TABLE public.events (id int, at date NOT NULL, user_id int REFERENCES public.users (id),
    PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE public.events_2025 PARTITION OF public.events
    FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE public.events_2026 PARTITION OF public.events
    FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE INDEX ON public.events (user_id);
INSERT INTO public.events
    SELECT g, date '2025-07-01' + g, 1 + g % 20 FROM generate_series(1, 300) g;
CREATE TABLE public.event_notes (id int, at date, note text,
    FOREIGN KEY (id, at) REFERENCES public.events (id, at));
INSERT INTO public.event_notes VALUES (1, date '2025-07-02', 'first');
"""


@pytest.fixture
def shop(make_cluster: Callable[..., Cluster]) -> Cluster:
    cluster = make_cluster("supabase_admin")
    cluster.psql(SHOP)
    return cluster


def restore(app: App, req: RestoreRequest) -> None:
    plan = plan_restore(app, req)
    execute_restore(app, plan, req, terminate=True)


def test_table_that_other_tables_reference_is_restored(tmp_path: Path, shop: Cluster) -> None:
    """Before: TRUNCATE refused it ("cannot truncate a table referenced in a foreign key
    constraint"), so --table failed on any referenced table."""
    before = checksums(shop)
    with app_for(settings_for(tmp_path, shop, user="supabase_admin")) as app:
        name = run_backup(app, BackupRequest(name="shop")).name
        shop.psql("UPDATE public.users SET name = 'changed'; UPDATE public.orders SET total = 0")
        restore(app, RestoreRequest(backup=name, artifact="custom", tables=("public.users",)))
    after = checksums(shop)
    assert after["public.users"] == before["public.users"]
    assert after["public.orders"] != before["public.orders"]  # untouched: still changed
    assert shop.psql("SELECT count(*) FROM public.orders WHERE total = 0").strip() == "200"


def test_rows_that_would_break_a_foreign_key_fail_the_restore(
    tmp_path: Path, shop: Cluster
) -> None:
    with app_for(settings_for(tmp_path, shop, user="supabase_admin")) as app:
        name = run_backup(app, BackupRequest(name="shop")).name
        shop.psql(
            "INSERT INTO public.users (id, name) VALUES (99, 'new');"
            "INSERT INTO public.orders (user_id, total) VALUES (99, 1);"
            "UPDATE public.users SET name = 'changed' WHERE id = 1"
        )
        before = checksums(shop)
        with pytest.raises(RestoreFailedError) as failed:
            restore(app, RestoreRequest(backup=name, artifact="custom", tables=("public.users",)))
    assert (
        "1 row(s) of public.orders would point at no row of public.users (orders_user_id_fkey)"
        in str(failed.value)
    )
    assert checksums(shop) == before


def test_partitioned_table_rows_come_back(tmp_path: Path, shop: Cluster) -> None:
    """Before: pg_restore --table of a partitioned table carries no rows (they belong to its
    partitions), so the table was emptied and stayed empty."""
    before = checksums(shop)
    with app_for(settings_for(tmp_path, shop, user="supabase_admin")) as app:
        name = run_backup(app, BackupRequest(name="shop")).name
        shop.psql("DELETE FROM public.event_notes; DELETE FROM public.events WHERE id > 10")
        tables = ("public.events", "public.event_notes")
        restore(app, RestoreRequest(backup=name, artifact="custom", tables=tables))
    after = checksums(shop)
    for table in ("public.events_2025", "public.events_2026", "public.event_notes"):
        assert after[table] == before[table]


def test_schema_with_partitioned_tables_is_restored(tmp_path: Path, shop: Cluster) -> None:
    """Before: pg_restore --clean stopped at "cannot drop inherited constraint" of a partition."""
    before = checksums(shop)
    with app_for(settings_for(tmp_path, shop, user="supabase_admin")) as app:
        name = run_backup(app, BackupRequest(name="shop")).name
        shop.psql("DELETE FROM public.event_notes; DELETE FROM public.events; DROP TABLE orders")
        restore(app, RestoreRequest(backup=name, artifact="custom", schemas=("public",)))
    assert checksums(shop) == before
    assert (
        shop.psql(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'public.events'::regclass"
        ).strip()
        == "2"
    )


def test_the_plan_says_exactly_what_is_touched(tmp_path: Path, shop: Cluster) -> None:
    """Before: --plan for --table said "replaced: public (N tables)", and --table/--schema
    needed --artifact custom."""
    with app_for(settings_for(tmp_path, shop, user="supabase_admin")) as app:
        name = run_backup(app, BackupRequest(name="shop")).name
        part = plan_restore(app, RestoreRequest(backup=name, tables=("public.users",))).to_json()[
            "objects_replaced"
        ]
        assert part["rows_replaced"] == ["public.users"]
        assert part["emptied_with"] == "DELETE, triggers suspended"
        assert part["foreign_keys_checked"] == [
            "public.events (events_user_id_fkey) -> public.users",
            "public.orders (orders_user_id_fkey) -> public.users",
        ]
        assert part["sequences_left_as_they_are"] == ["public.users_id_seq"]
        assert part["row_counts_checked"] == {"public.users": 20}
        part = plan_restore(app, RestoreRequest(backup=name, tables=("public.events",))).to_json()[
            "objects_replaced"
        ]
        assert part["emptied_with"] == "DELETE, triggers suspended"  # event_notes refers to it
        assert part["partitions"] == {"public.events": ["public.events_2025", "public.events_2026"]}
        shop.psql("DROP TABLE public.orders")
        part = plan_restore(app, RestoreRequest(backup=name, schemas=("public",))).to_json()[
            "objects_replaced"
        ]
        assert part["schemas_replaced"] == {"public": {"tables_now": 5, "tables_in_backup": 6}}
        assert part["partitions_detached_and_reattached"] == [
            "public.events_2025",
            "public.events_2026",
        ]
        assert part["foreign_keys_dropped_and_recreated"] == [
            "public.event_notes (event_notes_id_at_fkey) -> public.events",
            "public.events (events_user_id_fkey) -> public.users",
        ]


def test_refused_up_front_with_the_reason(tmp_path: Path, shop: Cluster) -> None:
    shop.psql("CREATE SCHEMA reports; CREATE VIEW reports.totals AS SELECT sum(total) FROM orders")
    with app_for(settings_for(tmp_path, shop, user="supabase_admin")) as app:
        name = run_backup(app, BackupRequest(name="shop")).name
        with pytest.raises(BadInput, match=r"view reports\.totals depends on public\.orders"):
            plan_restore(app, RestoreRequest(backup=name, schemas=("public",)))
        with pytest.raises(BadInput, match=r"--table public\.nope: no such table in postgres"):
            plan_restore(app, RestoreRequest(backup=name, tables=("public.nope",)))
        shop.psql("CREATE TABLE public.later (id int)")
        with pytest.raises(BadInput, match="the backup holds no such table"):
            plan_restore(app, RestoreRequest(backup=name, tables=("public.later",)))
        with pytest.raises(BadInput, match="no such schema in postgres"):
            plan_restore(app, RestoreRequest(backup=name, schemas=("nope",)))
    shop.psql(
        "CREATE ROLE clerk LOGIN; GRANT ALL ON ALL TABLES IN SCHEMA public TO clerk;"
        "GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO clerk"
    )
    with (
        app_for(settings_for(tmp_path, shop, user="clerk")) as app,
        pytest.raises(BadInput, match="needs a superuser connection; clerk is not one"),
    ):
        plan_restore(app, RestoreRequest(backup=name, tables=("public.users",)))

"""Blob collection in a store shared by catalogs: what a cleanup removes, and that its dry run
says exactly that (issue 15, item 1)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from store import Codec, LocalStore, Ref
from tests.support import fabricate_backup, settings_for
from usecases.backup.run import refresh_views
from usecases.context import App
from usecases.retention.cleanup import cleanup
from usecases.storage.roots import attach

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_a_dry_run_frees_exactly_what_the_real_run_frees(tmp_path: Path, supabase_db: Any) -> None:
    clock = {"now": NOW - timedelta(days=90)}
    settings = settings_for(tmp_path, supabase_db.cluster)
    with App.open(settings, clock=lambda: clock["now"]) as app:
        for i in range(4):
            clock["now"] = NOW - timedelta(days=90 - 20 * i)
            name = f"auto_nightly_{i}"
            fabricate_backup(
                app, name, f"-- dump {i}\n".encode(), row_counts={}, backup_type="nightly"
            )
            refresh_views(app, name)
        owner = attach(app)
        # A killed backup's blob: written (journaled) by this catalog, never referenced.
        orphan = app.store.put([b"-- half a backup, killed\n"], Codec.GZIP)
        # Another catalog registered in the same store: its orphan and its roots are its own.
        other = LocalStore(settings.store_dir)
        other.register(
            "other-catalog", label={"backup_dir": "/elsewhere"}, known=set(), referenced=[]
        )
        other.write_as("other-catalog")
        theirs = other.put([b"-- the other catalog's failed backup\n"], Codec.GZIP)
        held = other.put([b"-- dump 0\n"], Codec.GZIP)  # same content as our oldest backup
        other.add_roots("other-catalog", [Ref(held.digest, held.codec)])
        # A blob nobody wrote: from an older version, say.
        nobody = LocalStore(settings.store_dir).put([b"-- from before roots\n"], Codec.GZIP)
        clock["now"] = NOW

        dry = cleanup(app, days=30, dry_run=True)
        real = cleanup(app, days=30)
        assert sorted(real.deleted) == ["auto_nightly_0", "auto_nightly_1", "auto_nightly_2"]
        gone = {c.digest for c in real.collect.collected}
        assert {c.digest for c in dry.forecast.collected} == gone
        assert dry.would_free_bytes == real.collect.freed_bytes > 0
        assert orphan.digest in gone  # this catalog's own orphan
        assert held.digest not in gone  # the other catalog references it
        assert theirs.digest not in gone and nobody.digest not in gone
        for info in (held, theirs, nobody):
            assert app.store.exists(info.digest, info.codec)
        assert not app.store.exists(orphan.digest, orphan.codec)
        assert real.collect.kept_for_others == 1
        assert owner in [o.id for o in app.store.owners()]
        assert cleanup(app, days=30, dry_run=True).would_free_bytes == 0


def test_a_lost_catalog_is_rebuilt_into_an_empty_one(tmp_path: Path, supabase_db: Any) -> None:
    from usecases.backup.run import BackupRequest, run_backup
    from usecases.backup.verify import verify_one
    from usecases.storage.rebuild import rebuild_from_store

    settings = settings_for(tmp_path, supabase_db.cluster)
    with App.open(settings) as app:
        done = run_backup(app, BackupRequest(name="before-the-loss", all_formats=False))
        name, lost = done.name, str(app.catalog.identity())
        held = {Ref(a["digest"], Codec(a["codec"])) for a in done.artifacts}
        assert held <= app.store.roots_of(lost)  # added before BackupCompleted
    for suffix in ("", "-wal", "-shm"):
        (settings.backup_dir / f"catalog.db{suffix}").unlink(missing_ok=True)
    with App.open(settings) as app:
        assert cleanup(app, dry_run=True).would_free_bytes == 0
        assert cleanup(app).collect.freed_bytes == 0  # an empty catalog removes nothing
        report = rebuild_from_store(app)
        assert [(o.backup, o.status) for o in report.outcomes] == [(name, "recovered")]
        assert [(o.id, o.fully_covered) for o in report.others] == [(lost, True)]
        assert verify_one(app, name).ok
        ident = app.catalog.identity()
        assert ident != lost and app.store.registered(str(ident))
        old_scripts = settings.database_dir / "backup_20250101_000000_metadata.json"
        old_scripts.write_text('{"backup_name": "backup_20250101_000000", "verified": true}')
        again = rebuild_from_store(app)
        assert [(o.backup, o.status) for o in again.outcomes] == [
            ("backup_20250101_000000", "skipped"),
            (name, "skipped"),
        ]
        assert "import-legacy" in again.outcomes[0].reason and not again.failed

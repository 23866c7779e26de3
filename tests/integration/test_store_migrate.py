"""`dumpledger store migrate`: whole blobs of backups taken before chunking become chunked
artifacts (issue 17, item 4): same dumps, verified, smaller store, a catalog that folds
the same; left whole: damaged, encrypted, and another catalog's blobs."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from catalog.events import BlobMigrated
from catalog.queries import get_backup
from pgtools.cluster import Cluster
from store import Codec, LocalStore, Ref
from tests.age_keys import age_keys
from tests.integration.test_encryption import encrypted_settings, with_identity
from tests.support import app_for, settings_for
from usecases.backup.export import plain_stream
from usecases.backup.run import BackupRequest, run_backup
from usecases.backup.verify import verify_one
from usecases.context import App
from usecases.integrity import verify_catalog
from usecases.restore.drill import run_drill
from usecases.storage.migrate import migrate

BULK = """CREATE TABLE public.bulk AS
SELECT g AS id, md5(g::text) || repeat(md5((g * 7)::text), 3) AS pad
FROM generate_series(1, 30000) g"""


@pytest.fixture
def app(tmp_path: Path, supabase_cluster: Cluster) -> Iterator[App]:
    supabase_cluster.psql(BULK)
    with app_for(settings_for(tmp_path, supabase_cluster, user="supabase_admin")) as a:
        yield a


def whole_backup(app: App, name: str, *, all_formats: bool = True) -> str:
    """A backup stored as the first layout stored them: one whole blob per artifact."""
    chunked = app.store
    assert isinstance(chunked, LocalStore)
    app.store = LocalStore(app.settings.store_dir, chunked.keys, chunked=False)
    try:
        return run_backup(app, BackupRequest(name=name, all_formats=all_formats)).name
    finally:
        app.store = chunked


def plain(app: App, name: str, kind: str) -> bytes:
    with plain_stream(app, name, kind) as chunks:
        return b"".join(chunks)


def dumps(app: App, names: list[str]) -> dict[tuple[str, str], str]:
    out = {}
    for name in names:
        for art in get_backup(app.catalog.engine, name)["artifacts"]:
            out[(name, art["kind"])] = hashlib.sha256(plain(app, name, art["kind"])).hexdigest()
    return out


def whole_blobs(app: App) -> list[Path]:
    return sorted(p for p in (app.settings.store_dir / "sha256").rglob("*") if p.is_file())


def test_migrated_backups_restore_the_same_dumps_from_a_smaller_store(
    app: App, supabase_cluster: Cluster
) -> None:
    one = whole_backup(app, "one")
    supabase_cluster.psql("UPDATE public.bulk SET pad = 'changed' WHERE id = 15000")
    two = whole_backup(app, "two")
    before = dumps(app, [one, two])
    blobs_before = whole_blobs(app)
    sizes_before = sum(p.stat().st_size for p in blobs_before)
    assert len(blobs_before) >= 8  # two backups of five artifacts, globals shared
    bytes_before = app.store.disk_usage()
    # A symlink into the store, as backups of the first dumpledger left under database/.
    full_one = next(a for a in artifacts_of(app, one) if a["kind"] == "full")
    link = app.settings.database_dir / f"{one}_full.sql.gz"
    link.unlink(missing_ok=True)
    link.symlink_to(app.store.path_for(full_one["digest"], Codec(full_one["codec"])))

    dry = migrate(app, dry_run=True)
    assert whole_blobs(app) == blobs_before  # a dry run changes nothing
    done = migrate(app)
    # The dry run counted exactly what the real run converted.
    assert [o.digest for o in dry.of("todo")] == [o.digest for o in done.of("converted")]
    assert dry.whole_bytes == done.whole_bytes == sizes_before
    assert not done.of("damaged") and not done.of("skipped")
    assert whole_blobs(app) == []
    assert done.links_removed == [link.name] and not link.is_symlink()  # never left dangling
    # The two backups share their chunks now: the store is smaller than the blobs were.
    assert app.store.disk_usage() < bytes_before * 0.75
    assert done.freed_bytes > 0

    assert dumps(app, [one, two]) == before  # every artifact, byte for byte
    for name in (one, two):
        assert verify_one(app, name, read_data=True).ok
        for art in get_backup(app.catalog.engine, name)["artifacts"]:
            manifest = app.store.path_for(art["digest"], Codec(art["codec"]))
            assert manifest.name.endswith(".manifest")
    assert run_drill(app, one).ok
    latest = app.settings.database_dir / "latest_full.sql.gz"
    assert gzip.decompress(latest.read_bytes()) == plain(app, two, "full")

    report = verify_catalog(app)
    assert report.ok, report.problems
    snapshot = app.catalog.snapshot()
    app.catalog.rebuild()
    assert app.catalog.snapshot() == snapshot
    events = app.catalog.events(types=["BlobMigrated"])
    assert len(events) == len(done.of("converted"))

    again = migrate(app)  # a second run: nothing left to do
    assert again.outcomes == [] and len(app.catalog.events(types=["BlobMigrated"])) == len(events)


def test_a_named_backup_only_and_a_damaged_blob_is_left_and_reported(
    app: App, supabase_cluster: Cluster
) -> None:
    one = whole_backup(app, "one", all_formats=False)
    supabase_cluster.psql("UPDATE public.bulk SET pad = 'changed' WHERE id = 15000")
    two = whole_backup(app, "two", all_formats=False)
    full_one = next(a for a in artifacts_of(app, one) if a["kind"] == "full")
    path = app.store.path_for(full_one["digest"], Codec(full_one["codec"]))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))

    done = migrate(app, [one])
    assert [o.digest for o in done.of("damaged")] == [full_one["digest"]]
    assert "dumpledger verify" in done.of("damaged")[0].reason
    assert path.read_bytes() == bytes(data)  # left as it was
    assert app.store.path_for(full_one["digest"], Codec("gzip")) == path
    converted = {b for o in done.of("converted") for b in o.backups}
    assert converted == {one}  # its globals (shared with `two`): `two` was not named
    full_two = get_backup(app.catalog.engine, two)["artifacts"][0]
    assert app.store.blob_file(full_two["digest"], Codec(full_two["codec"])) is not None
    assert verify_one(app, two, read_data=True).ok
    assert verify_catalog(app).ok


def test_an_encrypted_blob_becomes_sealed_packs(tmp_path: Path, supabase_cluster: Cluster) -> None:
    """With the identity, an encrypted whole blob is decrypted, chunked into sealed packs
    (age files: nothing of the dump readable in the store), and reads back the same."""
    settings = encrypted_settings(tmp_path, supabase_cluster, age_keys(tmp_path / "keys"))
    with app_for(settings) as app:
        name = whole_backup(app, "sealed", all_formats=False)  # encrypted, as stored before
        assert {a["codec"] for a in artifacts_of(app, name)} == {"gzip+age"}
        before = dumps(app, [name])
        blobs = whole_blobs(app)
        dry = migrate(app, dry_run=True)
        done = migrate(app)
        assert [o.digest for o in dry.of("todo")] == [o.digest for o in done.of("converted")]
        assert len(done.of("converted")) == len(blobs) and whole_blobs(app) == []
        packs = sorted((app.settings.store_dir / "packs").rglob("*.pack"))
        assert packs and all(p.read_bytes().startswith(b"age-encryption.org/v1") for p in packs)
        marker = b"CREATE TABLE public.todos"
        assert marker in plain(app, name, "full")  # the dump has it ...
        assert not any(marker in p.read_bytes() for p in packs)  # ... the packs do not show it
        assert dumps(app, [name]) == before
        assert verify_one(app, name, read_data=True).ok
        assert verify_catalog(app).ok


def test_after_a_key_change_migrated_backups_name_the_key_that_reads_them(
    tmp_path: Path, supabase_cluster: Cluster
) -> None:
    """Whole blobs encrypted to the old key, migrated after the recipients changed to a new
    one (the identity file holding both, as the guide says): their chunks are sealed to the
    new key, and their backups' metadata (info, the metadata file, a wrong key's message) now
    names the new key, which alone reads them. Before: still the old key, which no longer
    reads them, while the new one, not named, did."""
    old = age_keys(tmp_path / "keys")
    settings = encrypted_settings(tmp_path, supabase_cluster, old)
    with app_for(settings) as app:
        name = whole_backup(app, "sealed", all_formats=False)
        before = dumps(app, [name])
    new = age_keys(tmp_path / "keys", "new.key")
    both = tmp_path / "keys" / "both.key"
    assert old.identity_file is not None and new.identity_file is not None
    both.write_text(old.identity_file.read_text() + new.identity_file.read_text())
    both.chmod(0o600)
    changed = encrypted_settings(
        tmp_path, supabase_cluster, dataclasses.replace(new, identity_file=both)
    )
    with app_for(changed) as app:
        done = migrate(app)
        assert len(done.of("converted")) == 2 and whole_blobs(app) == []
        backup = get_backup(app.catalog.engine, name)
        assert backup["metadata"]["encryption"]["recipients"] == list(new.recipients)
        meta_file = app.settings.database_dir / f"{name}_metadata.json"
        on_disk = json.loads(meta_file.read_text())
        assert on_disk["encryption"]["recipients"] == list(new.recipients)
        events = app.catalog.events(types=["BlobMigrated"])
        recorded = [r.event() for r in events]
        assert [e.recipients for e in recorded if isinstance(e, BlobMigrated)] == [
            list(new.recipients)
        ] * 2
        report = verify_catalog(app)  # the projection is what the fold of the log gives
        assert report.ok, report.problems
    with app_for(with_identity(changed, new.identity_file)) as app:  # the new key alone
        assert dumps(app, [name]) == before
        assert verify_one(app, name, read_data=True).ok


def test_an_upgraded_catalog_knows_who_decrypts_each_artifact(
    tmp_path: Path, supabase_cluster: Cluster
) -> None:
    """A catalog from before artifacts.recipients (revision 0005) is upgraded with the
    column filled from its backups' events, as the fold of the log fills it."""
    from alembic import command
    from sqlalchemy import select

    from catalog.db import alembic_config
    from catalog.schema import artifacts

    keys = age_keys(tmp_path / "keys")
    settings = encrypted_settings(tmp_path, supabase_cluster, keys)
    with app_for(settings) as app:
        name = run_backup(app, BackupRequest(name="sealed")).name
        with app.catalog.engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0005")
        with app.catalog.engine.begin() as conn:
            command.upgrade(alembic_config(conn), "head")
            rows = conn.execute(
                select(artifacts.c.kind, artifacts.c.recipients).where(
                    artifacts.c.backup_name == name
                )
            ).all()
        assert rows and all(json.loads(r.recipients) == list(keys.recipients) for r in rows)
        report = verify_catalog(app)
        assert report.ok, report.problems


def test_an_encrypted_blob_stays_whole_where_it_could_not_be_read_back(
    tmp_path: Path, supabase_cluster: Cluster
) -> None:
    """Without the identity (a backup host with the recipients only), or with an identity
    that is not one of the recipients (sealed packs it could not open), each blob is left
    whole with the reason; nothing is written."""
    keys = age_keys(tmp_path / "keys")
    settings = encrypted_settings(tmp_path, supabase_cluster, keys)
    with app_for(settings) as app:
        name = whole_backup(app, "sealed", all_formats=False)
    before = whole_blobs(app)
    other = age_keys(tmp_path / "other")
    hosts = {
        "identity": with_identity(settings, None),
        "recipients": encrypted_settings(
            tmp_path, supabase_cluster, dataclasses.replace(keys, recipients=other.recipients)
        ),
        "does not hold": encrypted_settings(
            tmp_path,
            supabase_cluster,
            dataclasses.replace(other, recipients=keys.recipients + other.recipients),
        ),
    }
    for says, host in hosts.items():
        with app_for(host) as app:
            dry = migrate(app, dry_run=True)
            done = migrate(app)
            assert done.of("converted") == [] and len(done.of("skipped")) == len(before)
            assert [o.reason for o in dry.of("skipped")] == [o.reason for o in done.of("skipped")]
            assert all(says in o.reason for o in done.of("skipped")), (says, done.outcomes)
            assert whole_blobs(app) == before
            assert not list((host.store_dir / "packs").rglob("*.pack"))
    with app_for(settings) as app:
        assert verify_one(app, name, read_data=True).ok


def test_a_blob_another_catalog_references_stays_whole(
    tmp_path: Path, supabase_cluster: Cluster
) -> None:
    """Catalog b shares the store and references a's first backup's blobs (as its own backup
    of the same dump would: published in its roots); a's migrate leaves them whole."""
    shared = tmp_path / "shared-store"
    mine = dataclasses.replace(
        settings_for(tmp_path / "a", supabase_cluster, user="supabase_admin"), store_path=shared
    )
    theirs = dataclasses.replace(mine, backup_dir=tmp_path / "b" / "backups")
    with app_for(mine) as a, app_for(theirs) as b:
        whole_backup(b, "theirs", all_formats=False)
        ours = whole_backup(a, "same", all_formats=False)
        refs = [Ref(x["digest"], Codec(x["codec"])) for x in artifacts_of(a, ours)]
        owner = b.catalog.identity()
        assert owner is not None
        b.store.add_roots(owner, refs)
        supabase_cluster.psql("UPDATE public.todos SET task = 'xxxx' WHERE id = 3")
        own = whole_backup(a, "own", all_formats=False)
        done = migrate(a)
        own_full = next(x for x in artifacts_of(a, own) if x["kind"] == "full")
        assert own_full["digest"] not in {r.digest for r in refs}
        assert own_full["digest"] in [o.digest for o in done.of("converted")]
        skipped = done.of("skipped")
        assert {o.digest for o in skipped} == {r.digest for r in refs}
        assert all("another catalog" in o.reason for o in skipped)
        for ref in refs:
            assert a.store.blob_file(ref.digest, ref.codec) is not None
        assert verify_one(a, ours, read_data=True).ok and verify_one(a, own).ok


def artifacts_of(app: App, name: str) -> list[dict[str, Any]]:
    return list(get_backup(app.catalog.engine, name)["artifacts"])


def test_blobs_from_before_roots_wait_for_store_adopt(app: App) -> None:
    """A store upgraded from before roots keeps its blobs under the legacy roots (a catalog
    not registered yet may use them): left whole, saying so, until `store adopt`."""
    from store.roots import LEGACY, encode
    from usecases.storage.admin import adopt

    one = whole_backup(app, "one", all_formats=False)
    refs = [Ref(a["digest"], Codec(a["codec"])) for a in artifacts_of(app, one)]
    assert isinstance(app.store, LocalStore)
    (app.store.roots.dir / LEGACY).write_bytes(encode(refs))  # as an upgrade registers them
    held = migrate(app)
    assert len(held.of("skipped")) == len(refs) and held.of("converted") == []
    assert all("dumpledger store adopt" in o.reason for o in held.of("skipped"))
    assert len(whole_blobs(app)) == len(refs)
    adopt(app)
    done = migrate(app)
    assert len(done.of("converted")) == len(refs) and whole_blobs(app) == []
    assert verify_one(app, one, read_data=True).ok


def test_a_dry_run_before_registration_predicts_the_legacy_roots(app: App) -> None:
    """A store from before roots holding a blob this catalog has no record of (another
    catalog's, not registered yet): the first registration keeps every blob as legacy, so
    the real run converts nothing. The dry run, which registers nothing, says the same."""
    one = whole_backup(app, "one", all_formats=False)
    assert isinstance(app.store, LocalStore)
    stranger = LocalStore(app.settings.store_dir, chunked=False)
    stranger.put([b"-- another catalog's dump\n" * 100], Codec.GZIP)
    shutil.rmtree(app.store.roots.dir)  # as a store from before roots
    blobs = whole_blobs(app)

    dry = migrate(app, dry_run=True)
    assert not app.store.roots.dir.exists()  # registered nothing
    done = migrate(app)
    assert dry.of("todo") == [] and done.of("converted") == []
    assert [(o.digest, o.reason) for o in dry.outcomes] == [
        (o.digest, o.reason) for o in done.outcomes
    ]
    assert len(done.of("skipped")) == len(artifacts_of(app, one))
    assert all("dumpledger store adopt" in o.reason for o in done.of("skipped"))
    assert whole_blobs(app) == blobs

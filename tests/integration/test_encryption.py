"""Encryption at rest with age against real PostgreSQL: an encrypted backup holds no plaintext
byte of a marker row, verifies, drills and restores with the identity file; a wrong or missing
key is one clear error and changes nothing."""

from __future__ import annotations

import dataclasses
import gzip
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from catalog.queries import get_backup
from pgtools.cluster import Cluster
from store import AgeKeys, DecryptionKeyError
from store.age import AGE_MAGIC
from tests.age_keys import age_keys, write_identity
from tests.support import app_for, settings_for
from usecases.backup.run import BackupRequest, run_backup
from usecases.backup.verify import verify_one
from usecases.config.sections import Encryption
from usecases.config.settings import Settings
from usecases.context import App
from usecases.errors import BackupFailedError
from usecases.integrity import verify_catalog
from usecases.restore.drill import run_drill
from usecases.restore.run import RestoreRequest, execute_restore, plan_restore


def encrypted_settings(tmp_path: Path, cluster: Cluster, keys: AgeKeys) -> Settings:
    base = settings_for(tmp_path, cluster, user="supabase_admin")
    enc = Encryption(recipients=keys.recipients, identity_file=keys.identity_file)
    return dataclasses.replace(base, encryption=enc)


def with_identity(settings: Settings, identity_file: Path | None) -> Settings:
    enc = dataclasses.replace(settings.encryption, identity_file=identity_file)
    return dataclasses.replace(settings, encryption=enc)


def add_marker(cluster: Cluster) -> str:
    marker = f"dl-marker-{uuid.uuid4()}"
    cluster.psql(
        f"CREATE TABLE public.markers (v text); INSERT INTO public.markers VALUES ('{marker}')"
    )
    return marker


def event_types(app: App) -> list[str]:
    return [r.type for r in app.catalog.events()]


def databases(cluster: Cluster) -> list[str]:
    return cluster.psql("SELECT datname FROM pg_database ORDER BY 1").split()


def test_encrypted_backup_holds_no_plaintext_and_round_trips(
    tmp_path: Path, supabase_cluster: Cluster
) -> None:
    cluster = supabase_cluster
    marker = add_marker(cluster)
    keys = age_keys(tmp_path / "keys")
    settings = encrypted_settings(tmp_path, cluster, keys)
    with app_for(settings) as app:
        name = run_backup(app, BackupRequest(name="secret")).name  # manual: every format
        backup = get_backup(app.catalog.engine, name)
        assert {a["codec"] for a in backup["artifacts"]} == {"gzip+age", "none+age"}
        packs = sorted(settings.store_dir.glob("packs/??/*.pack"))
        assert packs  # chunked, into sealed packs: each one age file, nothing readable
        for path in packs:
            stored = path.read_bytes()
            assert stored.startswith(AGE_MAGIC + b"\n")
            assert marker.encode() not in stored and b"dl-marker-" not in stored
            assert path.stat().st_mode & 0o777 == 0o600
            with pytest.raises(OSError):
                gzip.decompress(stored)
        for art in backup["artifacts"]:  # a manifest: chunk digests and sizes, no data
            manifest = app.store.path_for(art["digest"], art["codec"]).read_bytes()
            assert manifest.startswith(b"DLMANIFEST1\n") and b"dl-marker-" not in manifest
        # The view a person looks for names the encryption; it points at the blob.
        view = settings.database_dir / f"{name}_full.sql.gz.age"
        assert view.read_bytes().startswith(AGE_MAGIC)
        # The catalog records who can decrypt: in the event and in the backup's metadata.
        recipients = list(keys.recipients)
        assert backup["metadata"]["encryption"] == {"scheme": "age", "recipients": recipients}
        for art in completed_artifacts(app, name):
            assert art["encryption"] == {"scheme": "age", "recipients": recipients}
        doc = json.loads((settings.database_dir / f"{name}_metadata.json").read_text())
        assert doc["encryption"]["recipients"] == recipients
        assert doc["files"]["full"] == view.name

        outcome = verify_one(app, name)
        assert outcome.ok and all(a["note"] is None for a in outcome.artifacts)
        drill = run_drill(app, name)
        assert drill.ok, drill.reason
        assert drill.tables_checked > 0 and not drill.mismatches

        req = RestoreRequest(backup=name, artifact="custom", target_db="copy")
        execute_restore(app, plan_restore(app, req), req, terminate=True)
        assert cluster.psql("SELECT v FROM public.markers", "copy").strip() == marker
        leftovers = list((settings.backup_dir / "tmp").iterdir())
        assert leftovers == []  # the decrypted custom dump is removed after pg_restore
        cluster.psql("DROP TABLE public.markers")
        req = RestoreRequest(backup=name)  # plain SQL, streamed through age and gunzip
        execute_restore(app, plan_restore(app, req), req, terminate=True)
        assert cluster.psql("SELECT v FROM public.markers").strip() == marker


def test_a_wrong_key_is_one_clear_error_and_changes_nothing(
    tmp_path: Path, supabase_cluster: Cluster
) -> None:
    cluster = supabase_cluster
    marker = add_marker(cluster)
    keys = age_keys(tmp_path / "keys")
    settings = encrypted_settings(tmp_path, cluster, keys)
    with app_for(settings) as app:
        name = run_backup(app, BackupRequest(backup_type="nightly")).name
    other = tmp_path / "other" / "age.key"
    write_identity(other)
    cluster.psql("UPDATE public.markers SET v = 'changed'")
    dbs = databases(cluster)
    with app_for(with_identity(settings, other)) as app:
        before = event_types(app)
        for attempt in (
            lambda: verify_one(app, name),
            lambda: plan_restore(app, RestoreRequest(backup=name)),
            lambda: run_drill(app, name),
        ):
            with pytest.raises(DecryptionKeyError) as err:
                attempt()
            message = str(err.value)
            assert f"age identity file {other} holds no key" in message
            assert f"backup {name} is encrypted to {keys.recipients[0]}" in message
            assert "\n" not in message and err.value.exit_code == 2
        assert event_types(app) == before  # no verification, restore or drill recorded
    assert databases(cluster) == dbs  # no scratch, safety or drill database left behind
    assert cluster.psql("SELECT v FROM public.markers").strip() == "changed"
    assert marker != "changed"


def test_missing_identity_file_and_no_identity_configured(
    tmp_path: Path, supabase_cluster: Cluster
) -> None:
    cluster = supabase_cluster
    keys = age_keys(tmp_path / "keys")
    settings = encrypted_settings(tmp_path, cluster, keys)
    with app_for(with_identity(settings, None)) as app:  # a backup host without the key
        name = run_backup(app, BackupRequest(name="keyless")).name
        outcome = verify_one(app, name)  # still checks the stored bytes' digests
        assert outcome.ok
        assert all("stored digest checked only" in (a["note"] or "") for a in outcome.artifacts)
        with pytest.raises(DecryptionKeyError, match="no age identity file configured"):
            plan_restore(app, RestoreRequest(backup=name))
    gone = tmp_path / "keys" / "moved-away.key"
    with app_for(with_identity(settings, gone)) as app:
        before = event_types(app)
        with pytest.raises(DecryptionKeyError, match=f"age identity file {gone} does not exist"):
            verify_one(app, name)
        assert event_types(app) == before
    with app_for(settings) as app:  # the right key decrypts what the keyless host wrote
        assert verify_one(app, name).ok
        assert run_drill(app, name).ok


def test_recipients_change_but_a_stored_blob_keeps_its_own(
    tmp_path: Path, supabase_cluster: Cluster
) -> None:
    cluster = supabase_cluster
    first = age_keys(tmp_path / "first")
    second = age_keys(tmp_path / "second")
    assert first.identity_file is not None and second.identity_file is not None
    with app_for(encrypted_settings(tmp_path, cluster, first)) as app:
        one = run_backup(app, BackupRequest(backup_type="nightly")).name
    # Key rotation: new recipient; the identity file keeps the old key too (age reads every
    # identity in the file), as the guide says to, until the old backups are gone.
    both = tmp_path / "both.key"
    both.write_text(second.identity_file.read_text() + first.identity_file.read_text())
    both.chmod(0o600)
    rotated = with_identity(encrypted_settings(tmp_path, cluster, second), both)
    with app_for(rotated) as app:
        two = run_backup(app, BackupRequest(backup_type="nightly")).name
        arts = {str(a["kind"]): a for a in completed_artifacts(app, two)}
        # The unchanged database dumps to the same bytes, listed by the same manifest; but
        # none of its chunks is taken from the packs sealed to the first key: all are stored
        # again, sealed to the second, and the catalog says so.
        assert arts["full"]["created"] is False and arts["full"]["new_chunks"] > 0
        assert arts["full"]["encryption"] == {"scheme": "age", "recipients": [*second.recipients]}
        meta = get_backup(app.catalog.engine, two)["metadata"]
        assert meta["encryption"]["recipients"] == sorted(second.recipients)
        assert verify_one(app, one, read_data=True).ok and verify_one(app, two, read_data=True).ok
        assert verify_catalog(app).ok
    # The first key gone (its backups expired): the backup taken after the change is read
    # with the second alone (before: it was the first key's, and lost with it).
    with app_for(encrypted_settings(tmp_path, cluster, second)) as app:
        assert verify_one(app, two, read_data=True).ok


def completed_artifacts(app: App, name: str) -> list[dict[str, Any]]:
    """The artifacts as BackupCompleted recorded them (with their encryption entries)."""
    done = [r for r in app.catalog.events(subject=name) if r.type == "BackupCompleted"]
    arts: list[dict[str, Any]] = done[0].payload["artifacts"]
    return arts


def test_a_backup_whose_key_does_not_fit_its_recipients_fails(
    tmp_path: Path, pg_cluster: Cluster
) -> None:
    keys = age_keys(tmp_path / "keys")
    other = tmp_path / "other.key"
    write_identity(other)
    settings = with_identity(encrypted_settings(tmp_path, pg_cluster, keys), other)
    settings = dataclasses.replace(settings, database=settings_for(tmp_path, pg_cluster).database)
    with app_for(settings) as app:
        with pytest.raises(BackupFailedError, match=f"age identity file {other} holds no key"):
            run_backup(app, BackupRequest(backup_type="nightly"))
        assert event_types(app) == ["BackupStarted", "BackupFailed"]

"""`push`, `verify --target` and `catalog export|import` as run by a person or a script: to a
directory and to an S3-compatible server (moto's, on 127.0.0.1, standing in for real S3)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.s3server import S3_ENV, corrupt_file, corrupt_object, make_bucket, moto_server
from tests.support import catalog_of, cluster_env
from tests.support import run_cli as run


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def env(tmp_path: Path, supabase_db: Any) -> dict[str, str]:
    e = cluster_env(supabase_db.cluster, tmp_path / "backups")
    e.pop("AWS_ENDPOINT_URL", None)
    return {**e, **S3_ENV}


def backup(env: dict[str, str]) -> str:
    return str(json.loads(run(env, "backup", "--type", "nightly", "--json").stdout)["name"])


def push(env: dict[str, str], *args: str) -> dict[str, Any]:
    return dict(json.loads(run(env, "push", *args, "--json").stdout))


def manifest_key(digest: str) -> str:
    return f"store/manifests/{digest[:2]}/{digest}.gzip.manifest"


def artifact_digests(env: dict[str, str], name: str) -> dict[str, str]:
    from catalog.queries import get_backup

    with catalog_of(env) as cat:
        return {a["kind"]: a["digest"] for a in get_backup(cat.engine, name)["artifacts"]}


def configure(env: dict[str, str], offsite: dict[str, Any]) -> None:
    root = Path(env["DUMPLEDGER_BACKUP_DIR"])
    root.mkdir(parents=True, exist_ok=True)
    (root / "backup-config.json").write_text(json.dumps({"offsite": offsite}))


def test_push_to_a_directory_sends_only_what_it_lacks(env: dict[str, str], tmp_path: Path) -> None:
    drive = tmp_path / "drive" / "dumpledger"
    configure(env, {"drive": {"url": str(drive)}})
    name = backup(env)
    first = push(env)
    assert first["target"] == "drive" and first["backups"] == [name]
    assert len(first["digests_sent"]) == 2 and first["bytes_sent"] > 0
    on_drive = sorted(p.relative_to(drive).as_posix() for p in drive.rglob("*") if p.is_file())
    store = Path(env["DUMPLEDGER_BACKUP_DIR"]) / "store"
    packs = [p.relative_to(store.parent).as_posix() for p in store.glob("packs/*/*.pack")]
    assert on_drive == sorted(
        ["catalog/events.jsonl", *packs] + [manifest_key(d) for d in first["digests_sent"]]
    )
    # The export on the drive is this catalog's log, line for line.
    exported = run(env, "catalog", "export").stdout.splitlines()
    assert (drive / "catalog/events.jsonl").read_text().splitlines() == exported[: first["log_seq"]]

    again = push(env, "drive")
    assert (again["digests_sent"], again["bytes_sent"], again["blobs_present"]) == ([], 0, 2)
    assert again["events_sent"] == 1  # the first push's OffsitePushed, and nothing else
    assert run(env, "verify", "--target", "drive").returncode == 0
    done = run(env, "verify", name, "--target", "drive", check=False)
    assert done.returncode == 2 and "name no backup" in done.stderr

    listed = json.loads(run(env, "list", "--json").stdout)
    assert listed[0]["offsite"] == ["drive"]
    assert "drive" in run(env, "list").stdout.splitlines()[1]
    assert "offsite:          drive" in run(env, "info", name).stdout
    with catalog_of(env) as cat:
        pushed = [e for e in cat.events() if e.type == "OffsitePushed"]
    assert [p.payload["bytes_sent"] for p in pushed] == [first["bytes_sent"], 0]
    assert pushed[0].subject == "offsite:drive" and pushed[0].payload["location"] == str(drive)


def test_verify_target_finds_a_corrupted_and_a_missing_blob(
    env: dict[str, str], tmp_path: Path
) -> None:
    drive = tmp_path / "usb"
    name = backup(env)
    first = push(env, str(drive))
    kinds = artifact_digests(env, name)
    full, globals_ = (drive / manifest_key(kinds[k]) for k in ("full", "globals"))
    corrupt_file(full)
    done = run(env, "verify", "--target", str(drive), check=False)
    assert done.returncode == 1
    assert done.stdout.startswith("FAILED") and "1 of 2 blob(s) intact" in done.stdout
    assert f"{full.relative_to(drive).as_posix()} is corrupt" in done.stderr and name in done.stderr
    globals_.unlink()
    report = json.loads(run(env, "verify", "--target", str(drive), "--json", check=False).stdout)
    assert report["ok"] is False and report["export_ok"] is True
    assert sorted(b["error"].split(" is ")[1][:7] for b in report["blobs"]) == [
        "corrupt",
        "missing",
    ]
    # push re-sends what the listing shows missing or of another size; --rehash the rest.
    assert push(env, str(drive))["digests_sent"] == [
        d for d in first["digests_sent"] if d in globals_.name
    ]
    assert push(env, str(drive), "--rehash")["digests_sent"] == [
        d for d in first["digests_sent"] if d in full.name
    ]
    assert run(env, "verify", "--target", str(drive)).returncode == 0


def test_push_to_s3_sends_only_what_it_lacks_and_verify_finds_corruption(
    env: dict[str, str], endpoint: str
) -> None:
    make_bucket(endpoint, "offsite-test")
    configure(env, {"bucket": {"url": "s3://offsite-test/prod/db", "endpoint_url": endpoint}})
    name = backup(env)
    first = push(env, "bucket")
    assert first["location"] == "s3://offsite-test/prod/db" and first["backups"] == [name]
    assert len(first["digests_sent"]) == 2
    again = push(env, "bucket")
    assert (again["digests_sent"], again["bytes_sent"]) == ([], 0)
    assert run(env, "verify", "--target", "bucket").returncode == 0

    digest = first["digests_sent"][0]
    corrupt_object(endpoint, "offsite-test", f"prod/db/{manifest_key(digest)}")
    done = run(env, "verify", "--target", "bucket", check=False)
    assert done.returncode == 1 and digest in done.stderr and "is corrupt" in done.stderr
    # Credentials never reach the catalog or the output.
    with catalog_of(env) as cat:
        assert all("testing" not in json.dumps(e.payload) for e in cat.events())
    assert "testing" not in done.stdout + done.stderr


def test_a_target_with_another_history_is_refused(env: dict[str, str], tmp_path: Path) -> None:
    drive = tmp_path / "drive"
    backup(env)
    push(env, str(drive))
    other = {**env, "DUMPLEDGER_BACKUP_DIR": str(tmp_path / "other-backups")}
    backup(other)
    done = run(other, "push", str(drive), check=False)
    assert done.returncode == 1 and "holds another history" in done.stderr
    assert done.stderr.count("\n") == 1
    with catalog_of(other) as cat:
        assert "OffsitePushed" not in [e.type for e in cat.events()]


def test_missing_s3_bucket_is_one_clear_error(env: dict[str, str], endpoint: str) -> None:
    backup(env)
    done = run(env, "push", "s3://no-such-bucket/x", "--endpoint-url", endpoint, check=False)
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert "s3://no-such-bucket/x" in done.stderr and "NoSuchBucket" in done.stderr


def test_catalog_export_and_import(env: dict[str, str], tmp_path: Path) -> None:
    backup(env)
    export = tmp_path / "events.jsonl"
    run(env, "catalog", "export", "--output", str(export))
    lines = export.read_text().splitlines()
    assert [json.loads(line)["type"] for line in lines] == ["BackupStarted", "BackupCompleted"]

    fresh = {**env, "DUMPLEDGER_BACKUP_DIR": str(tmp_path / "fresh")}
    done = run(fresh, "catalog", "import", str(export))
    assert "imported 2 events" in done.stdout and "hash chain intact" in done.stdout
    assert run(fresh, "catalog", "export").stdout == export.read_text()
    assert json.loads(run(fresh, "list", "--json").stdout) == json.loads(
        run(env, "list", "--json").stdout
    )

    done = run(fresh, "catalog", "import", str(export), check=False)
    assert done.returncode == 2 and "already holds 2 events" in done.stderr

    edited = tmp_path / "edited.jsonl"
    edited.write_text(export.read_text().replace('"backup_type":"nightly"', '"backup_type":"x"', 1))
    empty = {**env, "DUMPLEDGER_BACKUP_DIR": str(tmp_path / "empty")}
    done = run(empty, "catalog", "import", str(edited), check=False)
    assert done.returncode == 1 and "was edited" in done.stderr
    with catalog_of(empty) as cat:
        assert cat.count() == 0

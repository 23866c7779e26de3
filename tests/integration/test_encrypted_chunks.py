"""Encrypted chunked backups of a real database with the real CLI (age per pack): they dedup
from one backup to the next, no pack holds a byte of the data, every command reads them with
the identity and refuses in one line without it, repacking keeps them restorable, push and
recover carry them, and the standard-library script reads them through the age program."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pyrage
import pytest

from catalog import Catalog
from pgtools.cluster import Cluster
from store.age import AGE_MAGIC
from tests.age_keys import write_identity
from tests.support import DUMPLEDGER, cluster_env
from tests.support import run_cli as run


@pytest.fixture
def key(tmp_path: Path) -> tuple[str, Path]:
    """(recipient, identity file), kept outside backups/ as a user keeps a key."""
    path = tmp_path / "keys" / "age.key"
    return write_identity(path), path


@pytest.fixture
def env(tmp_path: Path, supabase_cluster: Cluster) -> dict[str, str]:
    env = cluster_env(supabase_cluster, tmp_path / "backups")
    env["SUPABASE_DB_USER"] = "supabase_admin"
    return env


def configure(backups: Path, recipient: str, identity: Path | None, **more: Any) -> None:
    backups.mkdir(parents=True, exist_ok=True)
    enc: dict[str, Any] = {"recipients": [recipient]}
    if identity is not None:
        enc["identity_file"] = str(identity)
    (backups / "backup-config.json").write_text(json.dumps({"encryption": enc, **more}))


def add_marker(cluster: Cluster) -> str:
    marker = f"dl-marker-{uuid.uuid4()}"
    cluster.psql(
        "CREATE TABLE public.markers (id int PRIMARY KEY, v text); "
        f"INSERT INTO public.markers SELECT g, '{marker}' || g || ' ' || md5(g::text) "
        "FROM generate_series(1, 20000) g"
    )
    return marker


def backup(env: dict[str, str], *args: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(run(env, "backup", *args, "--json").stdout)
    return out


def event_types(backups: Path) -> list[str]:
    with Catalog.open(f"sqlite:///{backups}/catalog.db") as cat:
        return [e.type for e in cat.events()]


def packs(backups: Path) -> list[Path]:
    return sorted((backups / "store").glob("packs/??/*.pack"))


def opened(path: Path, identity: Path) -> bytes:
    """`age -d -i KEY FILE | gunzip`."""
    identities = [pyrage.x25519.Identity.from_str(identity.read_text().split()[-1])]
    return gzip.decompress(pyrage.decrypt(path.read_bytes(), identities))


def test_encrypted_backups_dedup_round_trip_and_hide_the_data(
    env: dict[str, str], tmp_path: Path, supabase_cluster: Cluster, key: tuple[str, Path]
) -> None:
    cluster, backups = supabase_cluster, tmp_path / "backups"
    marker = add_marker(cluster)
    configure(backups, key[0], key[1])
    first = backup(env, "first")  # manual: every format, custom too
    cluster.psql("UPDATE public.markers SET v = v || ' (changed)' WHERE id = 7")
    second = backup(env, "second")
    assert {a["codec"] for a in second["artifacts"]} == {"gzip+age", "none+age"}
    full = {a["kind"]: a for a in second["artifacts"]}["full"]
    assert full["created"] and full["new_chunks"] <= 4 < full["chunks"]
    added = [
        sum(int(a["added_bytes"]) for a in b["artifacts"]) for b in (first, second)
    ]  # dedup works encrypted: the second backup stores a small fraction of the first
    assert 0 < added[1] < added[0] // 5
    found = packs(backups)
    assert found
    for pack in found:  # nothing of the data, not even the pack format, is readable
        data = pack.read_bytes()
        assert data.startswith(AGE_MAGIC) and b"dl-marker-" not in data and b"DLPACK" not in data
    # The round trip is byte for byte: `cat` hashes to the artifact's digest.
    sql = subprocess.run(
        [*DUMPLEDGER, "cat", second["name"]], env=env, capture_output=True, check=True
    ).stdout
    assert hashlib.sha256(sql).hexdigest() == full["digest"].removeprefix("sha256:")
    assert b" (changed)" in sql
    # The newest backup's file: age -d -i KEY FILE | gunzip | psql
    newest = backups / "database" / f"{second['name']}_full.sql.gz.age"
    assert opened(newest, key[1]) == sql
    # An older backup's file: exported, the same way.
    run(env, "export", first["name"], "-o", str(tmp_path / "first.sql.gz.age"))
    old = opened(tmp_path / "first.sql.gz.age", key[1])
    assert b" (changed)" not in old and f"{marker}7 ".encode() in old
    assert json.loads(run(env, "verify", "--all", "--read-data", "--json").stdout)
    assert run(env, "drill", second["name"]).returncode == 0
    cluster.psql("DELETE FROM public.markers")
    run(env, "restore", first["name"], "--artifact", "custom", "--table", "public.markers", "-y")
    assert cluster.psql("SELECT v FROM public.markers WHERE id = 7").startswith(f"{marker}7 ")
    run(env, "restore", second["name"], "--yes")  # plain SQL through psql
    assert "(changed)" in cluster.psql("SELECT v FROM public.markers WHERE id = 7")


def test_without_the_identity_reading_fails_in_one_line_and_nothing_is_recorded(
    env: dict[str, str], tmp_path: Path, supabase_cluster: Cluster, key: tuple[str, Path]
) -> None:
    backups = tmp_path / "backups"
    add_marker(supabase_cluster)
    configure(backups, key[0], None)  # a backup host with the public key only
    name = backup(env, "--type", "nightly")["name"]
    second = backup(env, "--type", "nightly")  # dedups without the key
    assert second["artifacts"][0]["new_chunks"] == 0
    assert opened(backups / "database" / f"{second['name']}_full.sql.gz.age", key[1])
    done = run(env, "verify", name, "--read-data")
    assert "stored digest checked only (no identity_file" in done.stdout
    events = event_types(backups)
    out = str(tmp_path / "x.sql.gz.age")
    for args in (
        ("restore", name, "--yes"),
        ("cat", name),
        ("drill", name),
        ("export", name, "-o", out),
    ):
        done = run(env, *args, check=False)
        lines = [x for x in done.stderr.splitlines() if x.strip()]
        assert done.returncode == 2, done.stderr
        assert len(lines) == 1 and "no age identity file configured" in lines[0]
        assert event_types(backups) == events, args  # nothing recorded
    assert not Path(out).exists() and not list(tmp_path.glob(".x.sql.gz.age*"))
    other = tmp_path / "other.key"
    write_identity(other)
    configure(backups, key[0], other)
    done = run(env, "verify", name, check=False)
    assert done.returncode == 2 and f"age identity file {other} holds no key" in done.stderr
    assert event_types(backups) == events


def test_repacking_encrypted_packs_keeps_every_backup_restorable(
    env: dict[str, str], tmp_path: Path, supabase_cluster: Cluster, key: tuple[str, Path]
) -> None:
    cluster, backups = supabase_cluster, tmp_path / "backups"
    add_marker(cluster)
    configure(backups, key[0], key[1], store={"repack_threshold": 0.0})
    names = []
    for i in range(4):
        cluster.psql(f"UPDATE public.markers SET v = v || '{i}' WHERE id % 3 = {i % 3}")
        names.append(backup(env, "--type", "nightly")["name"])
    run(env, "delete", names[1], "--yes")
    run(env, "delete", names[2], "--yes")
    configure(backups, key[0], None, store={"repack_threshold": 0.0})
    done = run(env, "cleanup")  # without the identity: dead packs go, the rest is kept
    assert "encrypted pack(s) worth repacking kept as they are" in done.stdout + done.stderr
    configure(backups, key[0], key[1], store={"repack_threshold": 0.0})
    before = set(packs(backups))
    out = json.loads(run(env, "cleanup", "--json").stdout)
    assert out["freed"]["packs_repacked"], out
    after = set(packs(backups))
    assert after - before and all(p.read_bytes().startswith(AGE_MAGIC) for p in after)
    for name in (names[0], names[3]):
        assert run(env, "verify", name, "--read-data").returncode == 0
        assert run(env, "drill", name).returncode == 0


def test_push_recover_and_the_standalone_script_read_encrypted_packs(
    env: dict[str, str], tmp_path: Path, supabase_cluster: Cluster, key: tuple[str, Path]
) -> None:
    backups = tmp_path / "backups"
    marker = add_marker(supabase_cluster)
    configure(backups, key[0], key[1])
    name = backup(env, "kept")["name"]
    sql = subprocess.run(
        [*DUMPLEDGER, "cat", name], env=env, capture_output=True, check=True
    ).stdout
    script = backups / "restore-without-dumpledger.py"
    plain_env = {"PATH": os.environ["PATH"]}
    base = [sys.executable, "-I", str(script), name]
    done = subprocess.run([*base, "--plain"], capture_output=True, env=plain_env, check=False)
    assert done.returncode == 1 and b"pass -i KEY" in done.stderr
    # With the identity, the script decrypts each pack with the age program (Debian's `age`,
    # found on PATH as a user has it: the README's packages), one pack at a time.
    program = shutil.which("age")
    assert program is not None, "the age program is missing: install the README's packages"
    age = ["-i", str(key[1])]
    done = subprocess.run([*base, *age, "--plain"], capture_output=True, env=plain_env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == sql and marker.encode() in sql
    out = tmp_path / "kept_full.sql.gz"
    subprocess.run([*base, *age, "-o", str(out)], env=plain_env, check=True)
    assert gzip.decompress(out.read_bytes()) == sql
    # By hand: age -d -i KEY PACK gives the plain pack format.
    pack = packs(backups)[0]
    by_hand = subprocess.run(
        [program, "-d", "-i", str(key[1]), str(pack)], capture_output=True, check=True
    ).stdout
    assert by_hand.startswith(b"DLPACK1\n") and by_hand.endswith(b"DLPACKT1")

    drive = tmp_path / "drive"
    run(env, "push", str(drive))
    shutil.rmtree(backups)
    configure(backups, key[0], key[1])  # recover rebuilds the index: it needs the identity
    run(env, "recover", "--from", str(drive))
    assert run(env, "verify", name, "--read-data").returncode == 0
    recovered = subprocess.run([*DUMPLEDGER, "cat", name], env=env, capture_output=True, check=True)
    assert recovered.stdout == sql


def test_recover_of_sealed_packs_without_the_identity_is_one_line_and_keeps_the_target(
    env: dict[str, str], tmp_path: Path, supabase_cluster: Cluster, key: tuple[str, Path]
) -> None:
    """recover rebuilds the chunk index from the packs' trailers, inside the sealed packs: a
    host with the recipients only is told what it needs, and the offsite copy is untouched."""
    backups = tmp_path / "backups"
    add_marker(supabase_cluster)
    configure(backups, key[0], key[1])
    name = backup(env, "kept")["name"]
    drive = tmp_path / "drive"
    run(env, "push", str(drive))
    before = sorted((p.relative_to(drive), p.stat().st_size) for p in drive.rglob("*"))
    shutil.rmtree(backups)
    configure(backups, key[0], None)  # the public key only
    done = run(env, "recover", "--from", str(drive), check=False)
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "identity" in done.stderr
    assert sorted((p.relative_to(drive), p.stat().st_size) for p in drive.rglob("*")) == before
    configure(backups, key[0], key[1])  # with the identity, the same recover works
    run(env, "recover", "--from", str(drive))
    assert run(env, "verify", name, "--read-data").returncode == 0


def test_after_a_key_change_new_backups_need_the_new_key_only(
    env: dict[str, str], tmp_path: Path, supabase_cluster: Cluster, key: tuple[str, Path]
) -> None:
    """The recipients change from the old key to a new one, the identity file holding both
    (as the guide says). The next backup stores its chunks again, sealed to the new key,
    instead of using the packs sealed to the old one: it is read with the new key alone, by
    dumpledger and by the standalone script.
    Before: the new backup was built of the old key's packs, and removing the old key once
    the old backups had expired lost the new ones. (The backups of before, during the
    change, are read with both keys in the identity file.)"""
    cluster, backups = supabase_cluster, tmp_path / "backups"
    add_marker(cluster)
    configure(backups, key[0], key[1])
    old = backup(env, "before-the-change")
    new_key = tmp_path / "keys" / "new.key"
    new_recipient = write_identity(new_key)
    both = tmp_path / "keys" / "both.key"
    both.write_text(key[1].read_text() + new_key.read_text())
    both.chmod(0o600)
    configure(backups, new_recipient, both)
    new = backup(env, "after-the-change")
    for kind in ("full", "custom"):
        was = {a["kind"]: a for a in old["artifacts"]}[kind]
        now = {a["kind"]: a for a in new["artifacts"]}[kind]
        # The same database: every chunk stored again, sealed to the new key (before: the
        # few that changed, the rest taken from the old key's packs).
        assert now["new_chunks"] >= 0.9 * was["new_chunks"] > 0, (kind, now, was)
    third = backup(env, "after-that")  # and deduplicated again from then on
    assert all(a["new_chunks"] <= 4 for a in third["artifacts"]), third

    configure(backups, new_recipient, new_key)  # the old key gone
    full = {a["kind"]: a for a in new["artifacts"]}["full"]
    sql = subprocess.run(
        [*DUMPLEDGER, "cat", new["name"]], env=env, capture_output=True, check=True
    ).stdout
    assert hashlib.sha256(sql).hexdigest() == full["digest"].removeprefix("sha256:")
    for name in (new["name"], third["name"]):
        assert run(env, "verify", name, "--read-data").returncode == 0
    script = [sys.executable, "-I", str(backups / "restore-without-dumpledger.py")]
    rebuilt = subprocess.run(
        [*script, new["name"], "-i", str(new_key), "--plain"],
        capture_output=True,
        env={"PATH": os.environ["PATH"]},
    )
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert rebuilt.stdout == sql
    configure(backups, new_recipient, both)  # the backup of before: with both keys
    assert run(env, "verify", old["name"], "--read-data").returncode == 0

"""`dumpledger` with encryption configured in backup-config.json: encrypted backups, `info`
naming the recipients, `verify` with and without the key, and a wrong key as one line, exit 2,
with nothing recorded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from catalog import Catalog
from store.age import AGE_MAGIC
from tests.age_keys import write_identity
from tests.support import cluster_env
from tests.support import run_cli as run


def write_config(backup_dir: Path, encryption: dict[str, Any]) -> None:
    backup_dir.mkdir(parents=True, exist_ok=True)
    doc = {"encryption": encryption}
    (backup_dir / "backup-config.json").write_text(json.dumps(doc))


def event_types(backup_dir: Path) -> list[str]:
    with Catalog.open(f"sqlite:///{backup_dir}/catalog.db") as cat:
        return [e.type for e in cat.events()]


@pytest.fixture
def backup_dir(tmp_path: Path) -> Path:
    return tmp_path / "backups"


@pytest.fixture
def env(backup_dir: Path, supabase_db: Any) -> dict[str, str]:
    return cluster_env(supabase_db.cluster, backup_dir)


def test_encrypted_backup_info_and_verify(backup_dir: Path, env: dict[str, str]) -> None:
    recipient = write_identity(backup_dir / "keys" / "age.key")
    write_config(backup_dir, {"recipients": [recipient], "identity_file": "keys/age.key"})
    out = json.loads(run(env, "backup", "--type", "nightly", "--json").stdout)
    name = out["name"]
    assert {a["codec"] for a in out["artifacts"]} == {"gzip+age"}
    full = backup_dir / "database" / f"{name}_full.sql.gz.age"
    assert full.read_bytes().startswith(AGE_MAGIC)
    shown = run(env, "info", name).stdout
    assert f"encrypted:        age to {recipient}" in shown and "gzip+age" in shown
    info = json.loads(run(env, "info", name, "--json").stdout)
    assert info["metadata"]["encryption"] == {"scheme": "age", "recipients": [recipient]}
    done = run(env, "verify", name)
    assert done.stdout.startswith(f"ok     {name}") and "stored digest" not in done.stdout

    # A host that holds only the public key: verify checks what it can, and says so.
    write_config(backup_dir, {"recipients": [recipient]})
    done = run(env, "verify", name)
    assert done.returncode == 0
    assert "encrypted; stored digest checked only (no identity_file" in done.stdout
    verified = json.loads(run(env, "verify", name, "--json").stdout)
    assert verified[0]["ok"] and verified[0]["artifacts"][0]["note"]


def test_wrong_or_missing_key_is_one_line_exit_2(backup_dir: Path, env: dict[str, str]) -> None:
    recipient = write_identity(backup_dir / "keys" / "age.key")
    write_config(backup_dir, {"recipients": [recipient], "identity_file": "keys/age.key"})
    name = json.loads(run(env, "backup", "--type", "nightly", "--json").stdout)["name"]
    before = event_types(backup_dir)

    other = backup_dir / "keys" / "other.key"
    write_identity(other)
    write_config(backup_dir, {"recipients": [recipient], "identity_file": "keys/other.key"})
    for command in (["verify", name], ["restore", name, "--plan"]):
        done = run(env, *command, check=False)
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1
        assert f"age identity file {other} holds no key" in done.stderr
        assert f"encrypted to {recipient}" in done.stderr
        assert "AGE-SECRET-KEY" not in done.stderr + done.stdout

    write_config(backup_dir, {"recipients": [recipient], "identity_file": "keys/gone.key"})
    done = run(env, "drill", name, check=False)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert f"age identity file {backup_dir / 'keys' / 'gone.key'} does not exist" in done.stderr
    assert event_types(backup_dir) == before  # nothing verified, restored or drilled

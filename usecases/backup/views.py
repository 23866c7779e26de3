"""The files users know, derived from the catalog: backups/database/<name>_*.

`<name>_metadata.json` is a projection in the old scripts' format plus digests, for every
backup; the newest backups' artifact files and `latest_*` are usecases/backup/latest.py's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from catalog.retention import Policy
from store import Codec
from store.codecs import SUFFIXES
from usecases.backup.names import classify
from usecases.files import atomic_write, private_dir

METADATA_SUFFIX = "_metadata.json"
LATEST_LINKS = ("latest_full", "latest_auto")
ARTIFACT_KINDS = ("full", "globals", "schema", "data", "custom")
_ARTIFACT_SUFFIXES = sorted(set(SUFFIXES.values()), key=len, reverse=True)  # .sql.gz.age first


def artifact_filename(name: str, kind: str, codec: str) -> str:
    return f"{name}_{kind}{SUFFIXES[Codec(codec)]}"


def view_owner(filename: str) -> str | None:
    """The backup a file of backups/database/ belongs to (the inverse of artifact_filename and
    of the metadata file's name); None for anything else (latest_* links, a user's files)."""
    if filename.endswith(METADATA_SUFFIX):
        return filename.removesuffix(METADATA_SUFFIX) or None
    for suffix in _ARTIFACT_SUFFIXES:
        if filename.endswith(suffix):
            name, _, kind = filename.removesuffix(suffix).rpartition("_")
            known = name and name != "latest" and kind in ARTIFACT_KINDS  # latest_full.*: a link
            return name if known else None
    return None


def retention_days(policy: Policy, name: str) -> float | None:
    """What the old scripts wrote as retention_days: the age limit of the backup's class
    (60 for automatic backups by default), None for a class kept until a person deletes it."""
    rules = policy.for_class(classify(name))
    return None if rules.forever else rules.keep_within_days


def metadata_document(backup: dict[str, Any], policy: Policy) -> dict[str, Any]:
    """The old `<name>_metadata.json` fields, plus digests, versions and row counts."""
    meta = backup.get("metadata") or {}
    git = meta.get("git") or {}
    arts = backup.get("artifacts", [])
    return {
        "backup_name": backup["name"],
        "backup_type": backup["backup_type"],
        "timestamp": backup["started_at"],
        "completed_at": backup.get("finished_at"),
        "database": meta.get("database", {}),
        "files": {
            a["kind"]: artifact_filename(backup["name"], a["kind"], a["codec"]) for a in arts
        },
        "sizes": {a["kind"]: {"raw": a["raw_size"], "stored": a["stored_size"]} for a in arts},
        "digests": {a["kind"]: f"sha256:{a['digest']}" for a in arts},
        "compression": sorted({a["codec"] for a in arts}),
        "encryption": meta.get("encryption"),
        "retention_days": retention_days(policy, backup["name"]),
        "created_by": backup["actor"],
        "git_commit": git.get("commit"),
        "git_branch": git.get("branch"),
        "git_dirty": git.get("dirty"),
        "verified": backup["verified"],
        "versions": meta.get("versions", {}),
        "latest_migration": meta.get("latest_migration"),
        "row_counts": meta.get("row_counts", {}),
        "durations": meta.get("durations", {}),
        "status": backup["status"],
        # The seq and hash of the event that completed it: an anchor of the catalog's hash
        # chain outside the catalog, which `dumpledger catalog verify` checks.
        "catalog_anchor": backup.get("anchor"),
    }


def write_backup_views(database_dir: Path, backup: dict[str, Any], policy: Policy) -> None:
    """`<name>_metadata.json`; the artifact files are the newest backups' only
    (usecases/backup/latest.py)."""
    private_dir(database_dir)
    doc = json.dumps(
        metadata_document(backup, policy), indent=2, sort_keys=True, ensure_ascii=False
    )
    atomic_write(database_dir / f"{backup['name']}{METADATA_SUFFIX}", (doc + "\n").encode())

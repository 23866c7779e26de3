"""The files users know, derived from the catalog: backups/database/<name>_*.

`<name>_full.sql.gz` and friends are symlinks to the blobs; `<name>_metadata.json` is a
projection in the old scripts' format plus digests; `latest_*` links follow the newest backups.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

from catalog.retention import Policy
from store import Codec
from store.codecs import SUFFIXES
from usecases.backup.names import classify
from usecases.files import atomic_symlink, atomic_write, private_dir


class BlobPaths(Protocol):
    def path_for(self, digest: str, codec: Codec) -> Path: ...


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


def write_backup_views(
    database_dir: Path, store: BlobPaths, backup: dict[str, Any], policy: Policy
) -> None:
    private_dir(database_dir)
    for art in backup.get("artifacts", []):
        link = database_dir / artifact_filename(backup["name"], art["kind"], art["codec"])
        atomic_symlink(link, store.path_for(art["digest"], Codec(art["codec"])))
    doc = json.dumps(
        metadata_document(backup, policy), indent=2, sort_keys=True, ensure_ascii=False
    )
    atomic_write(database_dir / f"{backup['name']}{METADATA_SUFFIX}", (doc + "\n").encode())


def update_latest_links(
    database_dir: Path, store: BlobPaths, backups: list[dict[str, Any]]
) -> None:
    """latest_full.<ext>: newest full artifact; latest_auto.<ext>: newest automatic one.

    `backups` are completed backups, newest first, each with its artifacts.
    """
    wanted_links: dict[str, Path] = {}
    for link_name, wanted in zip(LATEST_LINKS, (None, "auto"), strict=True):
        for b in backups:
            if wanted and classify(b["name"]) != wanted:
                continue
            full = next((a for a in b.get("artifacts", []) if a["kind"] == "full"), None)
            if full is not None:
                suffix = SUFFIXES[Codec(full["codec"])]
                wanted_links[f"{link_name}{suffix}"] = store.path_for(
                    full["digest"], Codec(full["codec"])
                )
                break
    for name, target in wanted_links.items():
        atomic_symlink(database_dir / name, target)
    if database_dir.is_dir():  # links of deleted backups, or of another codec, go
        ours = {f"{link}{suffix}" for link in LATEST_LINKS for suffix in SUFFIXES.values()}
        for stale in sorted(ours - set(wanted_links)):  # only names this function makes
            if (database_dir / stale).is_symlink():
                (database_dir / stale).unlink(missing_ok=True)

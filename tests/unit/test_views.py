"""<name>_metadata.json: the old scripts' fields, with retention_days from the policy in force."""

from __future__ import annotations

from typing import Any

import pytest

from catalog.retention import FOREVER, ClassPolicy, Policy
from store.codecs import Codec
from usecases.backup.views import ARTIFACT_KINDS, artifact_filename, metadata_document, view_owner


def backup(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "backup_type": "nightly" if name.startswith("auto_") else "manual",
        "started_at": "2026-11-24T12:00:00.000000Z",
        "actor": "alice@laptop via cli",
        "verified": True,
        "status": "completed",
        "metadata": {},
        "artifacts": [],
    }


@pytest.mark.parametrize(
    ("policy", "auto_days", "manual_days"),
    [
        (Policy(), 60, None),  # the old scripts' constant
        (Policy(classes={"auto": ClassPolicy(keep_within_days=14)}), 14, None),
        (Policy(classes={"auto": FOREVER, "manual": ClassPolicy(keep_within_days=90)}), None, 90),
        (Policy(classes={"auto": ClassPolicy(keep_last=5)}), None, None),  # no age limit
    ],
)
def test_retention_days_follow_the_policy(
    policy: Policy, auto_days: float | None, manual_days: float | None
) -> None:
    assert metadata_document(backup("auto_nightly_20261124_120000"), policy)["retention_days"] == (
        auto_days
    )
    assert metadata_document(backup("backup_20261124_120000"), policy)["retention_days"] == (
        manual_days
    )


@pytest.mark.parametrize("name", ["auto_nightly_20261124_120000", "pre-deploy_x_20261124_120000"])
def test_view_owner_inverts_the_view_file_names(name: str) -> None:
    for kind in ARTIFACT_KINDS:
        for codec in Codec:
            assert view_owner(artifact_filename(name, kind, codec.value)) == name
    assert view_owner(f"{name}_metadata.json") == name


@pytest.mark.parametrize(
    "filename",
    ["latest_full.sql.gz", "latest_auto.sql.zst", "notes.txt", "x_logs.sql.gz", "_full.sql.gz"],
)
def test_view_owner_claims_no_other_file(filename: str) -> None:
    assert view_owner(filename) is None

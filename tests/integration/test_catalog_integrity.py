"""`catalog verify` beyond the hash chain: every projection row against the fold of the log,
and the anchors outside the catalog (metadata files, the copy of the log on an offsite
target); `verify NAME` judges a backup by the log, not by the `backups` table."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from catalog import Catalog
from catalog.canonical import GENESIS_HASH, chain_hash
from catalog.events import BackupCompleted
from pgtools.cluster import free_port
from tests.catalog_urls import postgres_url, sqlite_url
from tests.integration.test_catalog import ACTOR, TickingClock, history, started
from tests.support import catalog_of, cluster_env
from tests.support import run_cli as run


@pytest.fixture(params=["sqlite", "postgresql"])
def cat(request: pytest.FixtureRequest, tmp_path: Path, frozen_now: datetime) -> Iterator[Catalog]:
    if request.param == "sqlite":
        url = sqlite_url(tmp_path)
    else:
        url = postgres_url(request.getfixturevalue("pg_cluster"))
    c = Catalog.open(url, clock=TickingClock(frozen_now))
    yield c
    c.close()


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (
            "UPDATE backups SET status = 'completed', verified = TRUE WHERE name = 'c'",
            "table backups, row name='c': status is 'completed', the log says 'failed'",
        ),
        ("DELETE FROM backups WHERE name = 'b'", "table backups, row name='b': missing"),
        (
            "DELETE FROM artifacts WHERE backup_name = 'a'",
            "table artifacts, row backup_name='a', kind='full': missing",
        ),
        (
            "UPDATE blobs SET refcount = 7",
            f"table blobs, row digest='{'1' * 64}', codec='gzip': refcount is 7, the log says 2",
        ),
        (
            "INSERT INTO offsite_copies VALUES ('drive', 'a', '/media/x', 3, '2026-11-24')",
            "table offsite_copies, row target='drive', backup_name='a': not in the log",
        ),
    ],
    ids=["status", "row-deleted", "artifact-deleted", "refcount", "row-added"],
)
def test_every_projection_edit_is_named_by_table_and_row(
    cat: Catalog, edit: str, says: str
) -> None:
    history(cat)
    assert cat.projection_differences() == []
    with cat.engine.begin() as conn:
        conn.execute(text(edit))
    assert cat.verify_chain().ok  # the log itself is intact: only a projection was edited
    differences = cat.projection_differences()
    assert any(says in d for d in differences), differences


def test_a_backup_with_no_artifacts_in_the_log_fails_verify(
    tmp_path: Path, supabase_db: Any
) -> None:
    env = cluster_env(supabase_db.cluster, tmp_path / "backups")
    with catalog_of(env) as cat:
        cat.append_all(
            [
                started("empty"),
                BackupCompleted(
                    backup="empty",
                    backup_type="manual",
                    artifacts=[],
                    verified=True,
                    duration_seconds=0.1,
                ),
            ],
            actor=ACTOR,
        )
    done = run(env, "verify", "empty", check=False)
    assert done.returncode == 1
    assert done.stdout.startswith("FAILED empty")
    assert "has no artifacts in the event log" in done.stderr
    with catalog_of(env) as cat:
        [rec] = cat.events(types=["BackupVerified"])
    assert rec.payload["ok"] is False and "no artifacts" in rec.payload["problem"]


def test_a_failed_backup_edited_to_completed_is_caught(tmp_path: Path, supabase_db: Any) -> None:
    """The issue's case: only the `backups` table is edited; the log says failed."""
    env = cluster_env(supabase_db.cluster, tmp_path / "backups")
    down = {**env, "SUPABASE_DB_HOST": "127.0.0.1", "SUPABASE_DB_PORT": str(free_port())}
    assert run(down, "backup", "doomed", check=False).returncode == 1
    name = json.loads(run(env, "list", "--json").stdout)[0]["name"]
    with sqlite3.connect(tmp_path / "backups" / "catalog.db") as db:
        db.execute(
            "UPDATE backups SET status = 'completed', verified = 1, last_verify_ok = 1, "
            "failure_reason = NULL WHERE name = ?",
            (name,),
        )
    assert json.loads(run(env, "list", "--json").stdout)[0]["status"] == "completed"

    checked = run(env, "catalog", "verify", check=False)
    assert checked.returncode == 1
    assert f"table backups, row name='{name}': status is 'completed', the log says 'failed'" in (
        checked.stderr
    )
    verified = run(env, "verify", name, check=False)
    assert verified.returncode == 1 and verified.stdout.startswith(f"FAILED {name}")
    assert "is failed in the event log, but the backups table says completed" in verified.stderr
    assert "Traceback" not in checked.stderr + verified.stderr

    assert run(env, "catalog", "rebuild").returncode == 0  # the fold puts it right
    assert run(env, "catalog", "verify").stdout.startswith("catalog ok")


# -- anchors ----------------------------------------------------------------------------------


def rewrite_chain(db_path: Path, *statements: str) -> None:
    """What someone with write access to catalog.db alone can do: edit, then recompute every
    hash and the checkpoint, so that the chain holds again."""
    with sqlite3.connect(db_path) as db:
        for sql in statements:
            db.execute(sql)
        prev = GENESIS_HASH
        rows = db.execute(
            "SELECT seq, id, type, occurred_at, actor, subject, payload FROM events ORDER BY seq"
        ).fetchall()
        for seq, id_, type_, at, actor, subject, payload in rows:
            body = {
                "seq": seq,
                "id": id_,
                "type": type_,
                "occurred_at": at,
                "actor": actor,
                "subject": subject,
                "payload": json.loads(payload),
            }
            digest = chain_hash(prev, body)
            db.execute(
                "UPDATE events SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, digest, seq)
            )
            prev = digest
        last = rows[-1][0] if rows else 0
        db.execute("UPDATE checkpoints SET last_seq = ?, head_hash = ?", (last, prev))


@pytest.fixture
def two_backups(tmp_path: Path, supabase_db: Any) -> tuple[dict[str, str], list[str]]:
    backup_dir = tmp_path / "backups"
    backup_dir.mkdir()
    drive = tmp_path / "drive"
    doc = {"offsite": {"drive": {"url": str(drive)}}}
    (backup_dir / "backup-config.json").write_text(json.dumps(doc))
    env = cluster_env(supabase_db.cluster, backup_dir)
    names = [json.loads(run(env, "backup", n, "--json").stdout)["name"] for n in ("one", "two")]
    return env, names


def test_metadata_files_anchor_the_event_that_completed_each_backup(
    two_backups: tuple[dict[str, str], list[str]],
) -> None:
    env, names = two_backups
    database = Path(env["DUMPLEDGER_BACKUP_DIR"]) / "database"
    with catalog_of(env) as cat:
        for name in names:
            anchor = json.loads((database / f"{name}_metadata.json").read_text())["catalog_anchor"]
            [done] = cat.events(subject=name, types=["BackupCompleted"])
            assert anchor == {"seq": done.seq, "event": "BackupCompleted", "hash": done.hash}
    out = run(env, "catalog", "verify").stdout
    assert "hash chain intact, projections match the log, 2 backup metadata file(s)" in out


def test_removing_the_newest_events_is_seen_by_the_metadata_anchor(
    two_backups: tuple[dict[str, str], list[str]],
) -> None:
    env, (one, two) = two_backups
    with catalog_of(env) as cat:
        [started_two] = cat.events(subject=two, types=["BackupStarted"])
        [done_two] = cat.events(subject=two, types=["BackupCompleted"])
    db = Path(env["DUMPLEDGER_BACKUP_DIR"]) / "catalog.db"
    rewrite_chain(db, f"DELETE FROM events WHERE seq >= {started_two.seq}")
    run(env, "catalog", "rebuild")  # projections and checkpoint made to fit: the chain holds
    with catalog_of(env) as cat:
        assert cat.verify_chain().ok and cat.projection_differences() == []
    done = run(env, "catalog", "verify", check=False)
    assert done.returncode == 1
    assert (
        f"{two}_metadata.json anchors event seq {done_two.seq} (BackupCompleted {two}), but "
        f"the log ends at seq {started_two.seq - 1}: events were removed from the catalog"
    ) in done.stderr
    assert f"{one}_metadata.json" not in done.stderr  # its anchor still holds


def test_recomputing_every_hash_is_seen_by_the_metadata_anchors(
    two_backups: tuple[dict[str, str], list[str]],
) -> None:
    env, names = two_backups
    db = Path(env["DUMPLEDGER_BACKUP_DIR"]) / "catalog.db"
    rewrite_chain(db, "UPDATE events SET actor = 'mallory@laptop via cli' WHERE seq = 1")
    run(env, "catalog", "rebuild")  # the projections follow the rewritten log
    with catalog_of(env) as cat:
        assert cat.verify_chain().ok and cat.projection_differences() == []
    done = run(env, "catalog", "verify", "--json", check=False)
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["chain"] == [] and report["projections"] == []
    assert report["anchors"]["checked"] == 2
    assert len(report["anchors"]["problems"]) == 2
    for name, problem in zip(names, report["anchors"]["problems"], strict=True):
        assert problem.startswith(f"{name}_metadata.json anchors event seq ")
        assert "the log was rewritten at or before seq" in problem


def test_the_copy_of_the_log_on_an_offsite_target_anchors_it_too(
    two_backups: tuple[dict[str, str], list[str]],
) -> None:
    """Even when the metadata file goes with the events, the pushed copy still tells."""
    env, (_one, two) = two_backups
    run(env, "push", "drive")
    assert run(env, "catalog", "verify", "--target", "drive").returncode == 0
    with catalog_of(env) as cat:
        [started_two] = cat.events(subject=two, types=["BackupStarted"])
        last = cat.count()
    backup_dir = Path(env["DUMPLEDGER_BACKUP_DIR"])
    (backup_dir / "database" / f"{two}_metadata.json").unlink()
    rewrite_chain(backup_dir / "catalog.db", f"DELETE FROM events WHERE seq >= {started_two.seq}")
    run(env, "catalog", "rebuild")
    assert run(env, "catalog", "verify").returncode == 0  # nothing local can tell any more
    done = run(env, "catalog", "verify", "--target", "drive", check=False)
    assert done.returncode == 1
    assert (
        f"drive: its copy of the log holds events up to seq {last - 1}, the catalog only up to "
        f"seq {started_two.seq - 1}"
    ) in done.stderr

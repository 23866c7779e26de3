"""Notifications through real Apprise to a real HTTP endpoint on 127.0.0.1, after real
automatic backups, a failed one, and `check`; a failing endpoint never fails the backup."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from catalog import Catalog
from catalog.queries import get_backup
from pgtools.cluster import free_port
from store import Codec
from tests.support import DUMPLEDGER, cluster_env, fabricate_backup, settings_for
from tests.support import run_cli as run
from usecases.context import App


class Endpoint:
    """An HTTP server that records every POST body and answers with `status`."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.status = 200
        # When set: each POST first waits (up to 3 s, under Apprise's 4 s read timeout) for
        # this event, and records in `waited_for` whether it came.
        self.before_answering: threading.Event | None = None
        self.waited_for: list[bool] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                endpoint.bodies.append(json.loads(self.rfile.read(length)))
                if endpoint.before_answering is not None:
                    endpoint.waited_for.append(endpoint.before_answering.wait(3))
                self.send_response(endpoint.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/"


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    ep = Endpoint()
    ep.thread.start()
    yield ep
    ep.server.shutdown()
    ep.server.server_close()


def configure(backup_dir: Path, urls: list[str], **notes: bool) -> None:
    backup_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    doc = {
        "health": {"min_free_bytes": 0},
        "notifications": {"desktop": False, "apprise_urls": urls, **notes},
    }
    (backup_dir / "backup-config.json").write_text(json.dumps(doc))


def project(tmp_path: Path, supabase_db: Any, urls: list[str]) -> tuple[Path, dict[str, str]]:
    """A backup directory notifying `urls`, and the environment of a CLI run against it."""
    backup_dir = tmp_path / "backups"
    configure(backup_dir, urls)
    return backup_dir, cluster_env(supabase_db.cluster, backup_dir)


def notifications(backup_dir: Path) -> list[dict[str, Any]]:
    with Catalog.open(f"sqlite:///{backup_dir / 'catalog.db'}") as cat:
        return [{**r.payload, "subject": r.subject} for r in cat.events(types=["NotificationSent"])]


def test_automatic_backup_notifies_through_apprise(
    tmp_path: Path, supabase_db: Any, endpoint: Endpoint
) -> None:
    backup_dir, env = project(tmp_path, supabase_db, [endpoint.url])

    result = json.loads(run(env, "backup", "--type", "nightly", "--json").stdout)
    name = result["name"]
    [body] = endpoint.bodies
    assert body["type"] == "success"
    assert name in body["title"] and "completed" in body["title"]
    assert f"Backup: {name}" in body["message"]
    assert "compressed" in body["message"] and "Status: completed and verified" in body["message"]
    [sent] = notifications(backup_dir)
    assert sent == {
        **sent,
        "kind": "backup_completed",
        "channel": "apprise",
        "ok": True,
        "about": name,
        "subject": name,
        "reason": None,
    }
    assert "sent" in Path(result["log"]).read_text()  # the run log has the attempt

    run(env, "backup", "by-hand")  # manual backups do not notify
    assert len(endpoint.bodies) == 1


def test_the_result_is_printed_before_notifying(
    tmp_path: Path, supabase_db: Any, endpoint: Endpoint
) -> None:
    """A slow endpoint must not hold back `backup --json`'s result from a script reading it."""
    _, env = project(tmp_path, supabase_db, [endpoint.url])
    printed = endpoint.before_answering = threading.Event()
    with subprocess.Popen(
        [*DUMPLEDGER, "backup", "--type", "nightly", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        printed.set()  # the endpoint answers once the result is out
        assert proc.wait(timeout=120) == 0
    assert json.loads(line)["name"].startswith("auto_nightly_")
    assert len(endpoint.bodies) == 1
    assert endpoint.waited_for == [True]  # the result was out while the endpoint was waiting


def test_failing_endpoint_never_fails_the_backup(
    tmp_path: Path, supabase_db: Any, endpoint: Endpoint
) -> None:
    backup_dir = tmp_path / "backups"
    closed = f"json://127.0.0.1:{free_port()}/"  # nothing listens there
    configure(backup_dir, [endpoint.url, closed])
    endpoint.status = 500
    env = cluster_env(supabase_db.cluster, backup_dir)

    done = run(env, "backup", "--type", "noon", "--json")
    assert done.returncode == 0
    name = json.loads(done.stdout)["name"]
    assert len(endpoint.bodies) == 1  # it was tried
    [sent] = notifications(backup_dir)
    assert (sent["kind"], sent["channel"], sent["ok"], sent["about"]) == (
        "backup_completed",
        "apprise",
        False,
        name,
    )
    assert sent["reason"].startswith("apprise could not deliver")
    assert str(endpoint.port) not in json.dumps(sent)  # no URL in the record
    assert str(endpoint.port) not in done.stderr + done.stdout  # nor on the terminal
    listed = json.loads(run(env, "list", "--json").stdout)
    assert [(b["name"], b["status"]) for b in listed] == [(name, "completed")]


def test_failed_backup_and_check_notify(
    tmp_path: Path, supabase_db: Any, endpoint: Endpoint
) -> None:
    backup_dir, env = project(tmp_path, supabase_db, [endpoint.url])
    env["SUPABASE_DB_HOST"] = "127.0.0.1"
    env["SUPABASE_DB_PORT"] = str(free_port())  # the database is down

    failed = run(env, "backup", "--type", "evening", check=False)
    assert failed.returncode == 1
    [body] = endpoint.bodies
    assert body["type"] == "failure"
    assert "auto_evening_" in body["title"] and "FAILED" in body["title"]
    assert "Reason: cannot connect" in body["message"]

    assert run(env, "check", "--no-notify", check=False).returncode == 2
    assert len(endpoint.bodies) == 1
    assert run(env, "check", check=False).returncode == 2
    assert endpoint.bodies[-1]["title"].startswith("DUMPLEDGER CRITICAL - database:")
    assert run(env, "check", check=False).returncode == 2  # unchanged: not notified again
    assert len(endpoint.bodies) == 2
    sent = notifications(backup_dir)
    assert [(n["kind"], n["ok"]) for n in sent] == [("backup_failed", True), ("check", True)]
    assert sent[1]["detail"].startswith("CRITICAL: database, ")

    env["SUPABASE_DB_PORT"] = str(supabase_db.cluster.port)
    env["SUPABASE_DB_HOST"] = str(supabase_db.cluster.socket_dir)
    assert run(env, "check", check=False).returncode == 1  # changed: notified at once
    assert endpoint.bodies[-1]["title"].startswith("DUMPLEDGER WARNING - ")
    assert len(endpoint.bodies) == 3

    configure(backup_dir, [endpoint.url], on_check=False, on_failure=False)
    env["SUPABASE_DB_PORT"] = str(free_port())
    run(env, "backup", "--type", "evening", check=False)
    run(env, "check", check=False)
    assert len(endpoint.bodies) == 3  # both switched off


def test_failed_verification_and_failed_drill_notify(
    tmp_path: Path, supabase_db: Any, endpoint: Endpoint
) -> None:
    backup_dir, env = project(tmp_path, supabase_db, [endpoint.url])
    env["SUPABASE_DB_USER"] = "supabase_admin"
    with App.open(settings_for(tmp_path, supabase_db.cluster, user="supabase_admin")) as app:
        sql = b"CREATE TABLE public.drifted (id int);\n"
        fabricate_backup(app, "drifted_20261124_120000", sql, row_counts={"public.drifted": 3})
        fabricate_backup(app, "damaged_20261124_120000", b"-- other\n", row_counts={})
        blob = app.store.path_for(
            get_backup(app.catalog.engine, "damaged_20261124_120000")["artifacts"][0]["digest"],
            Codec.GZIP,
        )
    blob.write_bytes(b"not gzip at all")

    assert run(env, "drill", "drifted_20261124_120000", check=False).returncode == 1
    drill = endpoint.bodies[-1]
    assert drill["type"] == "failure"
    assert "restore drill of drifted_20261124_120000 FAILED" in drill["title"]
    assert "public.drifted: 0 rows restored, 3 recorded" in drill["message"]

    assert run(env, "verify", "damaged_20261124_120000", check=False).returncode == 1
    verify = endpoint.bodies[-1]
    assert "damaged_20261124_120000 failed verification" in verify["title"]
    assert verify["message"].startswith("Backup: damaged_20261124_120000\nStatus: verification")
    kinds = [(n["kind"], n["about"], n["ok"]) for n in notifications(backup_dir)]
    assert kinds == [
        ("drill_failed", "drifted_20261124_120000", True),
        ("verify_failed", "damaged_20261124_120000", True),
    ]


def test_retention_failing_after_an_automatic_backup_is_notified(
    tmp_path: Path, supabase_db: Any, endpoint: Endpoint
) -> None:
    """Old backups that do not go fill the disk: say so, after the backup's own message."""
    from datetime import UTC, datetime, timedelta

    old = datetime.now(UTC) - timedelta(days=90)
    name = f"auto_nightly_{old:%Y%m%d_%H%M%S}"
    with App.open(settings_for(tmp_path, supabase_db.cluster), clock=lambda: old) as app:
        fabricate_backup(app, name, b"-- old\n", row_counts={}, backup_type="nightly")
        meta = app.settings.database_dir / f"{name}_metadata.json"
    meta.mkdir(parents=True)  # unlink() of a directory fails, even as root: retention cannot finish
    backup_dir, env = project(tmp_path, supabase_db, [endpoint.url])
    done = run(env, "backup", "--type", "nightly", "--json")
    new = json.loads(done.stdout)["name"]
    assert [b["type"] for b in endpoint.bodies] == ["success", "failure"]
    failure = endpoint.bodies[-1]
    assert f"retention after backup {new} FAILED" in failure["title"]
    assert "completed and verified; retention FAILED" in failure["message"]
    sent = [(n["kind"], n["about"], n["ok"]) for n in notifications(backup_dir)]
    assert sent == [("backup_completed", new, True), ("retention_failed", new, True)]

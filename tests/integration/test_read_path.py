"""The read path of `list`: sqlite3 straight, the same rows as through SQLAlchemy, and the full
way whenever something must be written first (abandoned backup, missing or old catalog)."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

from catalog import Catalog, queries, read
from catalog.events import BackupStarted
from catalog.read import BackupFilter, open_sqlite, sqlite_file, sqlite_query
from tests.catalog_urls import sqlite_url
from tests.integration.test_catalog import ACTOR, TickingClock, history, started
from tests.integration.test_catalog_export import pushed
from usecases.config.settings import Settings
from usecases.reading import direct_reader, reading


@pytest.fixture
def cat(tmp_path: Path, frozen_now: datetime) -> Iterator[Catalog]:
    c = Catalog.open(sqlite_url(tmp_path), clock=TickingClock(frozen_now))
    history(c)
    c.append(pushed("drive", ["a", "b"], 10), actor=ACTOR)
    c.append(pushed("bucket", ["a"], 11), actor=ACTOR)
    yield c
    c.close()


def db_path(tmp_path: Path) -> Path:
    path = sqlite_file(sqlite_url(tmp_path))
    assert path is not None
    return path


WINDOW = BackupFilter(since="2026-11-24T12:00:03.000000Z", until="2026-11-24T12:00:08.000000Z")
FILTERS = [
    None,
    BackupFilter(include_deleted=True),
    BackupFilter(status="failed"),
    BackupFilter(commit_prefix="DEF"),
    BackupFilter(commit_prefix="abc1%"),  # no wildcard: matches nothing
    BackupFilter(branch="main", backup_type="manual"),
    WINDOW,
]


@pytest.mark.parametrize("flt", FILTERS)
def test_sqlite_direct_reads_what_sqlalchemy_reads(
    cat: Catalog, tmp_path: Path, flt: BackupFilter | None
) -> None:
    conn = open_sqlite(db_path(tmp_path))
    assert conn is not None
    direct = read.list_backups(sqlite_query(conn), flt)
    assert direct == queries.list_backups(cat.engine, flt)
    targets = read.offsite_targets(sqlite_query(conn), flt)
    every = queries.offsite_targets(cat.engine)
    assert targets == {b["name"]: every[b["name"]] for b in direct if b["name"] in every}
    conn.close()


def test_filters_select_what_they_say(cat: Catalog, tmp_path: Path) -> None:
    conn = open_sqlite(db_path(tmp_path))
    assert conn is not None
    q = sqlite_query(conn)
    assert [b["name"] for b in read.list_backups(q)] == ["c", "b", "a"]
    assert [b["name"] for b in read.list_backups(q, BackupFilter(commit_prefix="DEF"))] == ["b"]
    assert read.list_backups(q, BackupFilter(commit_prefix="abc1%")) == []
    assert [b["name"] for b in read.list_backups(q, WINDOW)] == ["c", "b"]
    assert read.offsite_targets(q) == {"a": ["bucket", "drive"], "b": ["drive"]}
    conn.close()


def test_open_sqlite_declines_what_it_cannot_read_as_is(cat: Catalog, tmp_path: Path) -> None:
    path = db_path(tmp_path)
    assert open_sqlite(tmp_path / "missing.db") is None
    sqlite3.connect(tmp_path / "other.db").close()
    assert open_sqlite(tmp_path / "other.db") is None  # not a catalog
    conn = open_sqlite(path)
    assert conn is not None
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        conn.execute("DELETE FROM events")
    conn.close()
    with cat.engine.begin() as c:
        c.exec_driver_sql("UPDATE alembic_version SET version_num = '0003'")
    assert open_sqlite(path) is None  # an older schema: the full path migrates it


def test_sqlite_file_only_for_plain_sqlite_urls() -> None:
    assert sqlite_file("sqlite:////abs/catalog.db") == Path("/abs/catalog.db")
    assert sqlite_file("sqlite:///rel/catalog.db") == Path("rel/catalog.db")
    for url in ("sqlite://", "sqlite:///:memory:", "sqlite:///x.db?mode=ro", "postgresql://h/d"):
        assert sqlite_file(url) is None


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_an_abandoned_backup_is_settled_before_listing(tmp_path: Path) -> None:
    settings = Settings(backup_dir=tmp_path / "backups")
    ours = BackupStarted(
        backup="alive",
        backup_type="manual",
        hostname=socket.gethostname(),
        pid=os.getpid(),
        database={"name": "postgres"},
        artifacts=["full"],
        codec="gzip",
    )
    with Catalog.open(settings.effective_catalog_url()) as c:
        c.append(ours, actor=ACTOR)
        c.append(started("elsewhere"), actor=ACTOR)  # another host's: not ours to judge
    conn = direct_reader(settings)
    assert conn is not None  # running, but alive: nothing to write first
    conn.close()
    with Catalog.open(settings.effective_catalog_url()) as c:
        c.append(replace(ours, backup="dead", pid=dead_pid()), actor=ACTOR)
    assert direct_reader(settings) is None
    with reading(settings) as q:
        rows = {b["name"]: b for b in read.list_backups(q)}
    assert rows["dead"]["status"] == "failed"
    assert "ended without finishing" in rows["dead"]["failure_reason"]
    assert (rows["alive"]["status"], rows["elsewhere"]["status"]) == ("running", "running")
    conn = direct_reader(settings)  # settled: the next list reads directly again
    assert conn is not None
    conn.close()


def test_list_starts_without_sqlalchemy(tmp_path: Path) -> None:
    backup_dir = tmp_path / "backups"
    with Catalog.open(Settings(backup_dir=backup_dir).effective_catalog_url()) as c:
        history(c)
    probe = (
        "import sys\n"
        "from cli.main import main\n"
        "code = main(['list', '--json'])\n"
        "heavy = sorted(m for m in ('sqlalchemy', 'psycopg', 'alembic', 'store.local')"
        " if m in sys.modules)\n"
        "print(code, heavy, file=sys.stderr)\n"
    )
    env = {
        **os.environ,
        "DUMPLEDGER_BACKUP_DIR": str(backup_dir),
        "DUMPLEDGER_CACHE_DIR": str(tmp_path / "cache"),
    }
    (backup_dir / "backup-config.json").write_text('{"health": {"rpo_hours": 12}}')
    seen = []
    for _ in range(2):  # the first run validates with pydantic; the second finds it cached
        done = subprocess.run(
            [sys.executable, "-c", probe.replace("'store.local'", "'store.local', 'pydantic'")],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        seen.append(done.stderr.strip().splitlines()[-1])
        assert '"name": "a"' in done.stdout or '"name":"a"' in done.stdout
    assert seen == ["0 ['pydantic']", "0 []"]

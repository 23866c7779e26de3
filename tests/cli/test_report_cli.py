"""`dumpledger report`: the page a person opens, checked in headless Chromium.

The catalog holds two months of generated history (tests/report_support.py: made through the
store, the catalog and the retention use cases); the page is written by the real command in a
subprocess, opened in Debian's Chromium, and what it shows is compared with what the generator
did and with what `check` and `cleanup --dry-run` say.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import socket
import sqlite3
import stat
import subprocess
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from catalog import Catalog
from catalog.events import BackupStarted
from pgtools.cluster import Cluster
from tests.browser import Loaded, open_page
from tests.report_support import COMMIT, RTO_MINUTES, Expected, generate
from tests.support import DUMPLEDGER, cluster_env, run_cli
from usecases.health.check import size_text

pytestmark = pytest.mark.slow
CHARTS_DRAWN = "document.querySelectorAll('.js-plotly-plot .main-svg').length >= 4"
BLOCKER = Path(__file__).resolve().parent / "no_charts"


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Expected]:
    backup_dir = tmp_path_factory.mktemp("report") / "backups"
    return backup_dir, generate(backup_dir, datetime.now(UTC))


@pytest.fixture
def env(history: tuple[Path, Expected], pg_cluster: Cluster) -> dict[str, str]:
    """The CLI's environment: the generated backups, the session's cluster as the database
    (so that `check` finds it)."""
    return cluster_env(pg_cluster, history[0])


def numbers(dom: str) -> dict[str, str]:
    """What the page states, by its `data-n` marks."""
    return dict(re.findall(r'data-n="([a-z-]+)">([^<]*)<', dom))


def rows(dom: str, table: str, attr: str) -> Counter[str]:
    """The `attr` values of the rows of one table."""
    body = dom.split(f'<table id="{table}">', 1)[1].split("</table>", 1)[0]
    return Counter(re.findall(rf'<tr [^>]*\b{attr}="([^"]*)"', body))


def catalog_state(backup_dir: Path) -> str:
    return hashlib.sha256((backup_dir / "catalog.db").read_bytes()).hexdigest()


def test_the_page_shows_the_history_in_chromium(
    history: tuple[Path, Expected], env: dict[str, str], tmp_path: Path
) -> None:
    backup_dir, expected = history
    before = catalog_state(backup_dir)
    done = run_cli(env, "report")
    page = backup_dir / "report.html"
    assert f"report written to {page}" in done.stderr
    assert stat.S_IMODE(page.stat().st_mode) == 0o600
    assert catalog_state(backup_dir) == before  # read only: no event, no migration
    loaded = open_page(
        page,
        screenshot=tmp_path / "report.png",
        ready=CHARTS_DRAWN,
        probes={
            "traces": "Object.fromEntries(document.getElementById('chart-schedule').data"
            ".map(t => [t.name, t.x.length]))",
            "marks": "document.querySelectorAll('#chart-schedule .scatterlayer path.point').length",
            "shapes": "document.getElementById('chart-schedule').layout.shapes.length",
            "drills": "document.getElementById('chart-recoverability').data"
            ".filter(t => t.name.startsWith('drill')).map(t => t.x.length)",
        },
    )
    assert loaded.errors() == []
    assert loaded.requests == [page.as_uri()]  # nothing but the file: everything is inline
    assert loaded.screenshot is not None and loaded.screenshot.stat().st_size > 50_000
    _schedule_matches(loaded, expected)
    _recoverability_matches(loaded, expected)
    _audit_matches(loaded.dom, expected)
    _header_matches(loaded.dom, expected, env)
    _planned_removals_match(loaded.dom, env)


def _schedule_matches(loaded: Loaded, expected: Expected) -> None:
    n = numbers(loaded.dom)
    since = datetime.now(UTC) - timedelta(days=60)
    assert int(n["backups"]) == len(expected.backups)
    for outcome, count in expected.slots.items():
        assert int(n[f"slots-{outcome}"]) == count, outcome
    assert int(n["rpo-breaches"]) == expected.breaches(since) > 0
    assert loaded.values["shapes"] == expected.breaches(since)
    traces = loaded.values["traces"]
    assert traces["missed slot"] == expected.slots["missed"]
    assert traces["failed"] == len(expected.failed)
    deleted = len(expected.deleted_by_person) + len(expected.deleted_by_retention)
    assert traces["deleted"] == deleted
    assert traces["pinned"] == len(expected.pinned)
    assert traces["verify failed"] == len(expected.verify_failed)
    assert sum(traces.values()) == len(expected.backups) + expected.slots["missed"]
    assert loaded.values["marks"] == sum(traces.values())  # every mark drawn in the SVG
    outcomes = rows(loaded.dom, "slot-problems", "data-outcome")
    assert outcomes == Counter({k: v for k, v in expected.slots.items() if k != "ok" and v})


def _recoverability_matches(loaded: Loaded, expected: Expected) -> None:
    n = numbers(loaded.dom)
    assert int(n["drills"]) == len(expected.drills) == sum(loaded.values["drills"])
    assert int(n["drills-failed"]) == sum(1 for _, ok, _ in expected.drills if not ok) == 1
    over = sum(1 for _, _, secs in expected.drills if secs > RTO_MINUTES * 60)
    assert int(n["drills-over-rto"]) == over > 0
    assert float(n["rto-minutes"]) == RTO_MINUTES
    retained = rows(loaded.dom, "retained", "data-name")
    assert set(expected.pinned) <= set(retained)
    gone = set(expected.deleted_by_person) | set(expected.deleted_by_retention)
    assert not gone & set(retained)


def _audit_matches(dom: str, expected: Expected) -> None:
    actions = rows(dom, "audit-lines", "data-action")
    assert actions["restore"] == 2 * (expected.restores + expected.restores_failed)
    assert actions["pin"] == len(expected.pinned) + len(expected.unpinned)
    assert actions["unpin"] == len(expected.unpinned)
    assert actions["backup"] == len(expected.failed)
    assert actions["verify"] == len(expected.verify_failed) == 1
    assert actions["drill"] == 1  # the failed drill
    # the person's deletion, and one line for the whole cleanup run
    assert actions["delete"] == 2
    assert f"{len(expected.deleted_by_retention)} backups: " in dom


def _header_matches(dom: str, expected: Expected, env: dict[str, str]) -> None:
    check = json.loads(run_cli(env, "check", "--json", "--no-notify", check=False).stdout)
    verdict = re.search(r'id="verdict" data-status="([A-Z]+)"', dom)
    assert verdict is not None and verdict.group(1) == check["status"]
    shown = re.findall(r"<tr><td>([a-z_ ]+)</td><td><span class=\"status", dom)
    assert shown == [c["name"] for c in check["checks"]]
    facts = dict(re.findall(r'data-fact="([^"]+)">([^<]*)<', dom))
    assert facts["Newest backup"].startswith(expected.newest + ",")
    assert facts["Git commit"] == f"{COMMIT} (main)"
    assert facts["Host"] == "db-backup-01"
    assert facts["Database"].startswith("postgres@")


def _planned_removals_match(dom: str, env: dict[str, str]) -> None:
    plan = json.loads(run_cli(env, "cleanup", "--dry-run", "--json").stdout)
    going = [d["name"] for d in plan["decisions"] if d["action"] != "keep"]
    n = numbers(dom)
    assert int(n["planned-removals"]) == len(going) > 0
    assert n["planned-bytes"] == size_text(plan["freed_bytes"])
    marked = re.findall(r'data-name="([^"]+)">(?:(?!</tr>).)*the next cleanup removes it', dom)
    assert set(marked) == set(going)


def test_the_json_has_the_numbers_the_page_shows(
    history: tuple[Path, Expected], env: dict[str, str]
) -> None:
    backup_dir, expected = history
    data = json.loads(run_cli(env, "report", "--json", "--no-check").stdout)
    assert data["check"] is None
    assert {k: v for k, v in data["slot_counts"].items() if k != "running"} == expected.slots
    assert len(data["backups"]) == len(expected.backups)
    assert data["newest"]["name"] == expected.newest
    assert data["newest"]["git_commit"] == COMMIT
    assert [d["backup"] for d in data["drills"]] == [name for name, _, _ in expected.drills]
    assert not (backup_dir / "report.json").exists()
    week = json.loads(run_cli(env, "report", "--json", "--no-check", "--since", "7d").stdout)
    assert 0 < len(week["backups"]) < len(data["backups"])
    assert all(b["started_at"] >= week["since"] for b in week["backups"])


def test_without_the_charts_extra_the_tables_stand_alone(
    history: tuple[Path, Expected], env: dict[str, str], tmp_path: Path
) -> None:
    _, expected = history
    page = tmp_path / "tables.html"
    done = run_cli({**env, "PYTHONPATH": str(BLOCKER)}, "report", "-o", str(page), "--no-check")
    assert "tables only" in done.stderr
    html = page.read_text()
    assert "<script" not in html  # no chart, no JavaScript at all
    assert "pip install &#x27;dumpledger[charts]&#x27;" in html
    loaded = open_page(page, screenshot=tmp_path / "tables.png")
    assert loaded.errors() == []
    assert loaded.requests == [page.as_uri()]
    assert 'id="no-charts"' in loaded.dom and "js-plotly-plot" not in loaded.dom
    n = numbers(loaded.dom)
    assert int(n["slots-missed"]) == expected.slots["missed"]
    assert sum(rows(loaded.dom, "backups", "data-name").values()) == len(expected.backups)
    assert rows(loaded.dom, "slot-problems", "data-outcome")["missed"] == expected.slots["missed"]
    assert re.search(r'<details open(="")?><summary>Every backup of the period', loaded.dom)
    for table in ("rpo-breaches", "days", "planned-removals", "drills", "retained", "audit-lines"):
        assert f'<table id="{table}">' in loaded.dom, table


def test_an_empty_catalog_says_so(tmp_path: Path, pg_cluster: Cluster) -> None:
    env = cluster_env(pg_cluster, tmp_path / "backups")
    page = tmp_path / "empty.html"
    run_cli(env, "report", "-o", str(page), "--no-check")
    assert not (tmp_path / "backups" / "catalog.db").exists()  # the report made nothing
    loaded = open_page(page, ready=CHARTS_DRAWN)
    assert loaded.errors() == []
    assert 'id="empty"' in loaded.dom and "No backups yet." in loaded.dom
    assert numbers(loaded.dom)["backups"] == "0"
    run_cli(env, "list")  # now a catalog exists, with no event in it
    data = json.loads(run_cli(env, "report", "--json").stdout)
    assert data["events"] == 0 and data["backups"] == []
    assert data["check"]["status"] in ("WARNING", "CRITICAL")  # no backup yet


def test_a_read_only_copy_is_read_as_it_is(
    history: tuple[Path, Expected], env: dict[str, str], tmp_path: Path
) -> None:
    """Another machine's backups, copied where this user may not write (root without its
    capability to override permissions, as any other user would be): SQLite cannot make the
    files a reader of a WAL database needs, so the catalog is read as an immutable file."""
    backup_dir, expected = history
    wal = backup_dir / "catalog.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0  # catalog.db alone holds it all
    copy = tmp_path / "copy" / "backups"
    shutil.copytree(backup_dir, copy, ignore=shutil.ignore_patterns("*-wal", "*-shm"))
    for path in [copy, *copy.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    before, files = catalog_state(copy), sorted(copy.rglob("*"))
    done = subprocess.run(
        [
            "setpriv",
            "--bounding-set=-dac_override,-dac_read_search",
            "--",
            *DUMPLEDGER,
            "report",
            "--json",
            "--no-check",
        ],
        env={**env, "DUMPLEDGER_BACKUP_DIR": str(copy)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert "immutable copy" in data["catalog_note"]
    assert len(data["backups"]) == len(expected.backups)
    assert catalog_state(copy) == before and sorted(copy.rglob("*")) == files


def test_stdout_and_bad_input(
    history: tuple[Path, Expected], env: dict[str, str], tmp_path: Path
) -> None:
    page = run_cli(env, "report", "-o", "-", "--no-check").stdout
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    bad = run_cli(env, "report", "--since", "last tuesday", check=False)
    assert bad.returncode == 2 and "cannot read 'last tuesday' as a time" in bad.stderr
    nowhere = tmp_path / "missing" / "report.html"
    done = run_cli(env, "report", "-o", str(nowhere), "--no-check", check=False)
    assert done.returncode == 1 and not nowhere.parent.exists()
    assert done.stderr.strip().splitlines() == [
        f"dumpledger: error: cannot write the report to {nowhere}: {nowhere.parent} is not a "
        "directory; choose another place with -o"
    ]
    elsewhere = tmp_path / "report.html"
    run_cli(env, "report", "-o", str(elsewhere), "--no-check")
    assert stat.S_IMODE(elsewhere.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("revision", "hint"), [("0004", "run `dumpledger list` once"), ("9999", "upgrade dumpledger")]
)
def test_a_catalog_of_another_schema_is_refused(
    history: tuple[Path, Expected], env: dict[str, str], tmp_path: Path, revision: str, hint: str
) -> None:
    """Migrating is a write: the report says what to run instead of doing it."""
    backup_dir, _ = history
    copy = tmp_path / "backups"
    shutil.copytree(backup_dir, copy, ignore=shutil.ignore_patterns("store", "*.html"))
    with sqlite3.connect(copy / "catalog.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = ?", (revision,))
    conn.close()
    done = run_cli({**env, "DUMPLEDGER_BACKUP_DIR": str(copy)}, "report", "--no-check", check=False)
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1 and hint in done.stderr
    assert f"has schema {revision}" in done.stderr
    assert not (copy / "report.html").exists()


def test_the_browser_sees_console_errors_and_every_request(tmp_path: Path) -> None:
    """What the page tests rely on: a page that logs an error, throws, or tries the network is
    caught (here under the report's own Content-Security-Policy, which blocks the load)."""
    page = tmp_path / "bad.html"
    page.write_text(
        '<!doctype html><html><head><meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; script-src 'unsafe-inline'\"></head><body>"
        '<img src="http://127.0.0.1:9/pixel.png">'
        "<script>console.error('drawn wrong'); undefinedFunction();</script></body></html>"
    )
    loaded = open_page(page)
    errors = "\n".join(loaded.errors())
    assert "drawn wrong" in errors
    assert "undefinedFunction is not defined" in errors
    assert "Content Security Policy" in errors  # the image was refused, and said so
    assert loaded.requests[0] == page.as_uri()


def test_an_abandoned_backup_is_shown_not_recorded(
    history: tuple[Path, Expected], env: dict[str, str], tmp_path: Path
) -> None:
    """Every other command records a backup whose process died as failed; the report, which
    writes nothing, shows it as it is."""
    backup_dir, _ = history
    copy = tmp_path / "backups"
    shutil.copytree(backup_dir, copy, ignore=shutil.ignore_patterns("store", "*.html"))
    dead = subprocess.Popen(["true"])
    dead.wait()
    with Catalog.open(f"sqlite:///{copy / 'catalog.db'}") as cat:
        cat.append(
            BackupStarted(
                backup="auto_nightly_abandoned",
                backup_type="nightly",
                hostname=socket.gethostname(),
                pid=dead.pid,
                database={},
                artifacts=["full"],
                codec="gzip",
            ),
            actor="t",
        )
        events = cat.count()
    data = json.loads(
        run_cli({**env, "DUMPLEDGER_BACKUP_DIR": str(copy)}, "report", "--json").stdout
    )
    (shown,) = [b for b in data["backups"] if b["name"] == "auto_nightly_abandoned"]
    assert shown["status"] == "running" and shown["outcome"] == "running"
    with Catalog.open(f"sqlite:///{copy / 'catalog.db'}") as cat:
        assert cat.count() == events

"""The I/O half of `dumpledger check`: connect, read the catalog, probe the store.

Every probe catches its own failure and turns it into a fact, so one broken part never hides
the state of the others.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
from typing import Any

from catalog.canonical import parse_utc
from catalog.errors import CatalogError
from catalog.queries import list_backups
from catalog.read import BackupFilter, sqlite_file
from pgtools.binaries import find_program
from pgtools.errors import PgError
from pgtools.restore import leftover_scratch_databases
from pgtools.session import connect
from store import LocalStore
from usecases.backup.abandon import is_stale, without_finishing
from usecases.backup.names import classify
from usecases.config.settings import Settings
from usecases.context import App
from usecases.errors import UseCaseError
from usecases.health.blobcheck import BlobsFact
from usecases.health.check import TRAILING, BackupFact, Facts
from usecases.restore.interrupted import recent_interrupted
from usecases.schedule.jobs import Project


def open_for_check(settings: Settings) -> tuple[App | None, str | None]:
    """The App, or None and why the catalog cannot be opened. A monitoring probe creates
    nothing: a SQLite catalog that is not there is reported, not made."""
    path = sqlite_file(settings.effective_catalog_url())
    if path is not None and not path.is_file():
        return None, (
            f"no catalog at {path}: no backup was ever taken here, or --backup-dir / "
            "DUMPLEDGER_BACKUP_DIR points elsewhere"
        )
    try:
        return App.open(settings, read_only_ok=True), None
    except (CatalogError, UseCaseError, OSError) as exc:
        return None, str(exc)


def gather(settings: Settings, app: App | None, catalog_error: str | None) -> Facts:
    facts: dict[str, Any] = {}
    facts.update(_database(settings))
    facts.update(_store(settings))
    if app is None:
        return Facts(**facts, catalog_error=catalog_error or "catalog unavailable")
    try:  # a catalog that opens may still be damaged further in: CRITICAL, not a traceback
        return _from_catalog(settings, app, facts)
    except CatalogError as exc:
        return Facts(**facts, catalog_error=str(exc))


def _from_catalog(settings: Settings, app: App, facts: dict[str, Any]) -> Facts:
    report = app.catalog.verify_chain()
    rows = list_backups(app.catalog.engine, BackupFilter())
    autos = _autos(rows)
    schedule, schedule_problem = _schedule(app)
    return Facts(
        **facts,
        chain_problems=tuple(report.problems),
        events=report.events,
        horizon_bytes=horizon_bytes(settings, autos),
        autos=tuple(autos),
        **_verification(rows),
        **_drills(rows),
        schedule=schedule,
        schedule_problem=schedule_problem,
        blobs=_blobs(app) if settings.store_dir.is_dir() else None,
        stale_running=_stale_running(app, rows),
        interrupted_restores=tuple(recent_interrupted(app, app.clock())),
    )


def _blobs(app: App) -> BlobsFact:
    """What the store holds that no catalog references, and whom it is shared with."""
    from store.errors import StoreError
    from usecases.storage.admin import age_days, store_status

    try:
        status = store_status(app)
    except (StoreError, OSError) as exc:
        return BlobsFact(error=f"cannot read the store's roots: {exc}")
    return BlobsFact(
        others=tuple(
            (c.id, f"{c.label.get('host', '?')}:{c.label.get('backup_dir', '?')}", age_days(c))
            for c in status.others
        ),
        replaced=tuple(c.id for c in status.others if c.same_backup_dir),
        collectable=(status.collectable.count, status.collectable.bytes),
        others_orphans=(status.others_orphans.count, status.others_orphans.bytes),
        unclaimed=(
            status.unowned.count + status.legacy_kept.count,
            status.unowned.bytes + status.legacy_kept.bytes,
        ),
    )


def _stale_running(app: App, rows: list[dict[str, Any]]) -> tuple[str, ...]:
    now, limit = app.clock(), app.settings.health.stale_running_hours
    return tuple(without_finishing(r, now) for r in rows if is_stale(r, now, limit))


def _database(settings: Settings) -> dict[str, Any]:
    out: dict[str, Any] = {}
    major = 0
    try:
        with connect(settings.database, autocommit=True) as conn:
            row = conn.execute("SELECT current_setting('server_version')").fetchone()
            out["server_version"] = str(row[0]) if row else "?"
            major = conn.info.server_version // 10000
            out["server_major"] = major
            out["scratch_leftovers"] = leftover_scratch_databases(conn)
    except PgError as exc:
        out["db_error"] = str(exc)
    except Exception as exc:  # psycopg errors after connecting, and the unexpected
        out["db_error"] = f"{settings.database.label()}: {' '.join(str(exc).split())}"
    extra = [settings.pg_bindir] if settings.pg_bindir else []
    try:
        out["pg_dump_version"] = find_program("pg_dump", major, extra_dirs=extra).version
    except PgError as exc:
        out["pg_dump_error"] = str(exc)
    return out


def _store(settings: Settings) -> dict[str, Any]:
    root = settings.store_dir
    if not root.exists():  # not made here: a probe changes nothing
        return {"store_error": f"store {root} does not exist; take a backup (dumpledger backup)"}
    try:
        fd, probe = tempfile.mkstemp(dir=root, prefix=".tmp-check-")
        try:
            os.write(fd, b"dumpledger check\n")
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
        return {
            "free_bytes": shutil.disk_usage(root).free,
            "store_bytes": LocalStore(root).disk_usage(),
        }
    except OSError as exc:
        return {
            "store_error": f"store {root} is not writable: {exc.strerror or exc}; "
            "check the directory's owner and permissions, and the disk"
        }


def _autos(rows: list[dict[str, Any]]) -> list[BackupFact]:
    out = []
    for r in rows:
        if classify(r["name"]) != "auto" or r["status"] not in ("completed", "failed"):
            continue
        out.append(
            BackupFact(
                name=r["name"],
                backup_type=r["backup_type"],
                status=r["status"],
                finished_at=parse_utc(r["finished_at"] or r["started_at"]),
                raw_size=int(r["raw_size"] or 0),
                stored_size=int(r["stored_size"] or 0),
                duration_seconds=r["duration_seconds"],
                reason=r["failure_reason"],
                added_bytes=_added(r),
            )
        )
    return out


def _added(row: dict[str, Any]) -> int | None:
    """What the backup newly stored (a chunked store records it), or None."""
    added = ((row.get("metadata") or {}).get("store") or {}).get("added_bytes")
    return None if added is None else int(added)


def horizon_bytes(settings: Settings, autos: list[BackupFact] | tuple[BackupFact, ...]) -> int:
    """A simple estimate of the free space retention will need for automatic backups, 0 when
    they are kept forever or by count only. When the recent ones recorded the bytes each newly
    stored (a chunked store: new chunks only), the median of those x the backups still to come
    before the horizon is full (cleanup then frees about as much as each new one adds).
    Otherwise (whole blobs): median compressed size x backups a day x days kept, minus what the
    ones already kept hold; content addressing stores an unchanged database once, so this is an
    upper bound.
    """
    pol = settings.retention.for_class("auto")
    if pol.forever or not pol.keep_within_days:
        return 0
    done = [b for b in autos if b.status == "completed"]
    if not done:
        return 0
    slots = max(len(settings.schedule), 1) * pol.keep_within_days
    recent = done[:TRAILING]
    added = [b.added_bytes for b in recent if b.added_bytes is not None]
    if len(added) == len(recent):
        return max(0, int(statistics.median(added) * (slots - len(done))))
    stored = [b.stored_size for b in done]
    per_backup = statistics.median(stored[:TRAILING])
    return max(0, int(per_backup * slots - sum(stored)))


def _verification(rows: list[dict[str, Any]]) -> dict[str, Any]:
    done = [r for r in rows if r["status"] == "completed"]
    passed = [parse_utc(r["last_verified_at"]) for r in done if r["last_verify_ok"]]
    return {
        "last_verified_at": max(passed, default=None),
        "failed_verifications": tuple(r["name"] for r in done if r["last_verify_ok"] is False),
    }


def _drills(rows: list[dict[str, Any]]) -> dict[str, Any]:
    drilled = sorted((r for r in rows if r["last_drill_at"]), key=lambda r: r["last_drill_at"])
    passed = [parse_utc(r["last_drill_at"]) for r in drilled if r["last_drill_ok"]]
    newest = drilled[-1] if drilled else None
    return {
        "last_drill_at": max(passed, default=None),
        "last_drill_failed": newest["name"] if newest and not newest["last_drill_ok"] else None,
    }


def _schedule(app: App) -> tuple[str | None, str | None]:
    """This project's schedule as the catalog records it (not another backup directory's that
    shares a PostgreSQL catalog; events from before projects count for every one), and
    whether this host's scheduler will run it."""
    project = Project.of(app.settings.backup_dir)
    events = [
        e
        for e in app.catalog.events(types=["ScheduleInstalled", "ScheduleRemoved"])
        if e.payload.get("project") in (None, project.id)
    ]
    if not events or events[-1].type != "ScheduleInstalled":
        return None, None
    payload = events[-1].payload
    backend = str(payload.get("backend"))
    summary = f"installed ({backend}, {len(payload.get('slots') or [])} slot(s))"
    return summary, scheduler_problem(backend, project, payload.get("crontab_user"))


def scheduler_problem(
    backend_name: str, project: Project, crontab_user: str | None = None
) -> str | None:
    """Why `backend_name` will not run `project`'s backups on this host, or None."""
    from usecases.schedule import service  # here: only `check` asks the schedulers

    try:
        host = service.Host(crontab_user=crontab_user)
        backend = service.make_backend(backend_name, host, project)
        if not backend.units():
            return (
                f"none of its {backend_name} units is on this host (removed by hand, or "
                "installed elsewhere); run `dumpledger schedule install`"
            )
        active, detail = backend.is_active()
    except (UseCaseError, OSError, subprocess.SubprocessError) as exc:
        return f"{backend_name} cannot be asked: {exc}"
    return None if active else detail

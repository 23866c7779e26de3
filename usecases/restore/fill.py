"""Fill a fresh database from a restore's source: all or nothing for plain SQL; each extension
created by the role that owned it, and the non-superuser owners of extensions and event
triggers superusers meanwhile. Used by whole-database restores (into their scratch database)
and by drills.
"""

from __future__ import annotations

from pathlib import Path

from pgtools.databases import maintenance_target
from pgtools.extensions import as_owners, owners_of, restore_custom_as_owners
from pgtools.globalsql import promotion_sql
from pgtools.restore import run_pg_restore, run_psql
from pgtools.target import DbTarget
from usecases.context import App
from usecases.restore.source import Source, materialized
from usecases.restore.stream import checked_chunks


def restore_into(
    app: App,
    src: Source,
    bindir: Path,
    db: DbTarget,
    superusers: frozenset[str],
    *,
    jobs: int,
    roles: frozenset[str] | None = None,
) -> None:
    """Fill the (fresh) database `db` from the source; all or nothing for plain SQL.

    Each extension is created by the role that owned it (of those in `roles`), and the
    non-superuser owners of extensions and event triggers are superusers meanwhile."""
    owners = {
        name: owner
        for name, owner in owners_of(src.extensions).items()
        if roles is None or owner in roles
    }
    up, down = promotion_sql(src.event_trigger_owners | set(owners.values()), superusers)
    if src.format == "custom":
        if up:  # pg_restore -j cannot run as one transaction: promote, and always demote
            run_psql(bindir, maintenance_target(db), [up.encode()])
        try:
            with materialized(app, src) as dump:
                if owners:
                    restore_custom_as_owners(bindir, db, dump, owners, jobs=jobs)
                else:
                    run_pg_restore(bindir, db, dump, jobs=jobs)
        finally:
            if down:
                run_psql(bindir, maintenance_target(db), [down.encode()])
        return
    with checked_chunks(app, src) as chunks:
        script = as_owners(chunks, owners) if owners else chunks
        run_psql(
            bindir, db, script, prelude=up, postlude=down, meta_commands=src.allow_meta_commands
        )

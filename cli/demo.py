"""`dumpledger demo`: the main job end to end on a throwaway database."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli import output
from cli.backup import print_backup
from cli.browse import LIST_HEADERS, list_row
from usecases.errors import BadInput

if TYPE_CHECKING:
    pass


def demo(
    backup_dir: Annotated[
        Path, typer.Option(help="Where the demo's backups go (kept afterwards).")
    ] = Path("demo-backups"),
) -> None:
    """Run the main job end to end on a throwaway database.

    Starts a throwaway PostgreSQL with sample data, backs it up, backs it up again (nothing
    new is stored), verifies, lists and checks the catalog, then stops the server.

    Example: dumpledger demo --backup-dir /tmp/demo
    """
    import shutil

    from catalog.queries import list_backups
    from usecases.backup.run import BackupRequest, run_backup
    from usecases.backup.verify import verify_backups
    from usecases.context import App
    from usecases.demo import demo_database, demo_settings

    marker = backup_dir / ".dumpledger-demo"
    if backup_dir.exists() and any(backup_dir.iterdir()) and not marker.exists():
        raise BadInput(
            f"{backup_dir} exists and is not a demo directory; pass another --backup-dir"
        )
    shutil.rmtree(backup_dir, ignore_errors=True)
    backup_dir.mkdir(parents=True, mode=0o700)
    marker.touch(mode=0o600)
    with (
        demo_database(print) as cluster,
        App.open(demo_settings(cluster, backup_dir.resolve())) as ctx,
    ):
        print("\n$ dumpledger backup demo")
        first = run_backup(ctx, BackupRequest(name="demo"))
        print_backup(first)
        print("\n$ dumpledger backup --type nightly   # unchanged database")
        second = run_backup(ctx, BackupRequest(backup_type="nightly"))
        print_backup(second)
        print("\n$ dumpledger verify --all")
        for o in verify_backups(ctx, None, all_backups=True):
            print(f"{'ok    ' if o.ok else 'FAILED'} {o.backup}")
        print("\n$ dumpledger list")
        rows = list_backups(ctx.catalog.engine)
        output.table(LIST_HEADERS, [list_row(r) for r in rows])
        print("\n$ dumpledger catalog verify")
        report = ctx.catalog.verify_chain()
        print(f"catalog {'ok' if report.ok else 'BROKEN'}: {report.events} events")
    print(
        f"\nbackups, catalog and logs are in {backup_dir}/ ; try "
        f"`DUMPLEDGER_BACKUP_DIR={backup_dir} .venv/bin/dumpledger list`"
    )

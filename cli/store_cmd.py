"""`dumpledger store status|forget-catalog|adopt|migrate`, and `catalog rebuild --from-store`."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from cli import output
from cli.state import CONTEXT, JsonOpt, open_app
from usecases.errors import BadInput

if TYPE_CHECKING:
    from usecases.storage.admin import Pile, StoreStatus
    from usecases.storage.migrate import MigrateReport

store_app = typer.Typer(
    help="The store: the catalogs that share it, and the blobs none of them references.",
    context_settings=CONTEXT,
    no_args_is_help=True,
)

YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")]


@store_app.command("status", context_settings=CONTEXT)
def store_status(json_out: JsonOpt = False) -> None:
    """Show the catalogs registered in the store and the blobs none of them references.

    Several backup directories (and catalogs) may share one store (DUMPLEDGER_STORE): each
    publishes the blobs it references, and collection removes only what none references.

    Example: dumpledger store status
    """
    from usecases.storage.admin import store_status as status_of

    with open_app() as ctx:
        status = status_of(ctx)
    if json_out:
        output.emit_json(status.to_json())
        return
    print(f"store {status.store}")
    if not status.catalogs:
        print("no catalog is registered in this store yet")
    else:
        output.table(
            ["CATALOG", "", "HOST", "BACKUP DIR", "ROOTS", "LAST WRITE"],
            [
                [
                    c.id,
                    "this one" if c.this else ("same dir!" if c.same_backup_dir else ""),
                    c.label.get("host", "?"),
                    c.label.get("backup_dir", "?"),
                    str(c.refs),
                    _when(c.updated_at),
                ]
                for c in status.catalogs
            ],
        )
    if not status.registered:
        print("this catalog is not registered yet: its next backup or cleanup registers it")
    for line in _unreferenced(status):
        print(line)


def _when(posix: float) -> str:
    return datetime.fromtimestamp(posix).strftime("%Y-%m-%d %H:%M") if posix else "-"


def _unreferenced(status: StoreStatus) -> list[str]:
    def pile(p: Pile) -> str:
        return f"{p.count} blob(s), {output.human_size(p.bytes)}"

    return [
        f"unreferenced, this catalog's next cleanup removes: {pile(status.collectable)}",
        f"unreferenced, another catalog's cleanup removes:   {pile(status.others_orphans)}",
        f"claimed by no catalog (dumpledger store adopt):    {pile(status.unowned)}",
        f"kept from before the store had roots (adopt):     {pile(status.legacy_kept)}",
    ]


@store_app.command("forget-catalog", context_settings=CONTEXT)
def forget_catalog(
    catalog_id: Annotated[str, typer.Argument(help="The catalog's id (see `store status`).")],
    yes: YesOpt = False,
) -> None:
    """Stop protecting what a catalog that is gone referenced (its catalog.db was lost and
    rebuilt with `catalog rebuild --from-store`, or its catalog URL is no longer used).

    Its blobs are then collected by the catalogs that still know them; what it alone wrote
    is kept until `dumpledger store adopt`. Never forget a catalog still in use: its next
    backup registers it again, but until then its blobs are not protected.

    Example: dumpledger store forget-catalog 3f0c9a2e-5d1b-4c4e-9a57-0b7e2f1d6c11
    """
    from usecases.storage.admin import forget_catalog as forget

    with open_app() as ctx:
        _confirm(yes, f"Forget catalog {catalog_id}: its roots stop holding blobs?")
        entry = forget(ctx, catalog_id)
    where = f"{entry.label.get('host', '?')}:{entry.label.get('backup_dir', '?')}"
    print(f"forgot catalog {catalog_id} ({where}, {entry.refs} roots)")


@store_app.command("adopt", context_settings=CONTEXT)
def adopt(yes: YesOpt = False, json_out: JsonOpt = False) -> None:
    """Let this catalog's cleanup remove the blobs that no registered catalog references or
    wrote: those from before the store kept roots (an upgrade), and a forgotten catalog's.

    Run it only when every catalog that uses this store has run a backup or cleanup with
    this version (`dumpledger store status` lists the registered ones): a catalog that has
    not registered yet may still need those blobs.

    Example: dumpledger store status && dumpledger store adopt
    """
    from usecases.storage.admin import adopt as run_adopt

    with open_app() as ctx:
        _confirm(yes, "Every catalog that uses this store is registered (store status)?")
        done = run_adopt(ctx)
    if json_out:
        output.emit_json(
            {"adopted": done.count, "bytes": done.bytes, "legacy_released": done.legacy_released}
        )
        return
    print(
        f"adopted {done.count} blob(s) ({output.human_size(done.bytes)}); "
        f"{done.legacy_released} kept from before roots released; the next "
        "`dumpledger cleanup` removes those no catalog references"
    )


def _confirm(yes: bool, question: str) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise BadInput("this needs a confirmation: run it in a terminal, or pass --yes")
    if not typer.confirm(question):
        raise BadInput("not confirmed: nothing changed")


def rebuild_from_store(json_out: bool) -> None:
    """`catalog rebuild --from-store`."""
    from usecases.storage.rebuild import rebuild_from_store as rebuild

    with open_app() as ctx:
        report = rebuild(ctx)
    if json_out:
        output.emit_json(report.to_json())
    else:
        for o in report.outcomes:
            line = f"{o.status:<9} {o.backup}: {o.reason}"
            (output.info if o.status == "failed" else print)(line)
        print(
            f"{report.count('recovered')} backup(s) recovered from the store, "
            f"{report.count('skipped')} skipped, {report.count('failed')} failed"
        )
        for other in report.others:
            where = f"{other.label.get('host', '?')}:{other.label.get('backup_dir', '?')}"
            if other.fully_covered:
                print(
                    f"catalog {other.id} ({where}) references nothing this one does not: if it "
                    f"is the lost one, `dumpledger store forget-catalog {other.id}`"
                )
            else:
                print(
                    f"catalog {other.id} ({where}) references {other.refs - other.covered} "
                    "blob(s) this one does not; they stay while it is registered"
                )
    if report.failed:
        raise typer.Exit(1)


@store_app.command("migrate", context_settings=CONTEXT)
def migrate(
    names: Annotated[
        list[str] | None, typer.Argument(help="Backups to convert (default: every one).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be converted; change nothing.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Convert the whole blobs of older backups (stored before chunking) to chunked
    artifacts, so they share chunks with each other and with newer backups; their whole-blob
    files are removed once the chunked form is stored, read back and recorded.

    A backup keeps its identity (the SHA-256 of its dump); its stored form changes. Encrypted
    blobs are decrypted with encryption.identity_file and their chunks go into sealed packs
    (encrypted to encryption.recipients). Left whole, each with the reason: encrypted blobs
    this host cannot read or could not read back sealed, blobs another catalog sharing the
    store references, and damaged ones (run `dumpledger verify`). Safe to interrupt: every
    backup stays restorable, and running it again finishes the job.

    Example: dumpledger store migrate --dry-run && dumpledger store migrate
    """
    from usecases.storage.migrate import migrate as run_migrate

    with open_app() as ctx:
        progress = output.Progress("converting")
        try:
            report = run_migrate(ctx, names or (), dry_run=dry_run, progress=progress)
        finally:
            progress.finish()
    if json_out:
        output.emit_json(report.to_json())
    else:
        _print_migration(report)
    if report.damaged or report.postponed:
        raise typer.Exit(1)


def _print_migration(report: MigrateReport) -> None:
    for o in report.of("skipped"):
        print(f"left whole {o.digest[:12]} ({', '.join(o.backups)}): {o.reason}")
    for o in report.of("damaged"):
        output.info(f"damaged {o.digest[:12]} ({', '.join(o.backups)}): {o.reason}")
    size = output.human_size
    if report.dry_run:
        print(
            f"would convert {len(report.of('todo'))} whole blob(s), "
            f"{size(report.whole_bytes)}; frees up to {size(report.freed_bytes)} "
            "(an estimate: the new chunks these blobs do not share take some of it back)"
        )
        return
    for name in report.links_removed:
        print(f"removed {name}: a link to a converted blob (`dumpledger export` writes it)")
    print(
        f"converted {len(report.of('converted'))} whole blob(s), {size(report.whole_bytes)}; "
        f"freed {size(report.freed_bytes)}"
    )
    if report.postponed:
        output.info(
            "a backup, restore or cleanup held the store: run `dumpledger store migrate` "
            "again to convert the rest"
        )

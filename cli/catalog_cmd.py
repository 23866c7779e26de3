"""`dumpledger catalog verify|rebuild|export|import`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from cli import offsite, output, store_cmd
from cli.state import CONTEXT, JsonOpt, open_app

if TYPE_CHECKING:
    pass


catalog_app = typer.Typer(
    help="Check and rebuild the event catalog.", context_settings=CONTEXT, no_args_is_help=True
)


@catalog_app.command("verify", context_settings=CONTEXT)
def catalog_verify(
    target: Annotated[
        list[str] | None,
        typer.Option(
            "--target",
            help="Also compare with the copy of the log pushed to this offsite target "
            "(repeatable).",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Check the catalog: the hash chain (edited, deleted or reordered events), every
    projection row against the log (a `backups` row edited by hand), and the anchors outside
    the catalog: each backup's metadata file records the event that completed it, and with
    --target the copy of the log on an offsite target. Exit 1 naming each disagreement.

    Examples: dumpledger catalog verify ; dumpledger catalog verify --target drive --json
    """
    from usecases.integrity import verify_catalog

    with open_app(read_only_ok=True) as ctx:
        report = verify_catalog(ctx, target)
    if json_out:
        output.emit_json(report.to_json())
    elif report.ok:
        print(
            f"catalog ok: {report.events} events, hash chain intact, projections match the "
            f"log, {_anchors(report.anchors_checked, report.anchors_absent)}"
        )
        for t in report.targets:
            print(f"offsite {t.target}: its copy of the log (seq 1..{t.seq}) agrees")
    else:
        for p in report.problems:
            output.error(p)
    if not report.ok:
        raise typer.Exit(1)


def _anchors(checked: int, absent: int) -> str:
    text = f"{checked} backup metadata file(s) anchor it"
    return text + (f" ({absent} written before anchors existed)" if absent else "")


@catalog_app.command("rebuild", context_settings=CONTEXT)
def catalog_rebuild(
    from_store: Annotated[
        bool,
        typer.Option(
            "--from-store",
            help="Instead: add the backups a lost catalog had, from backups/database/ and "
            "the store.",
        ),
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Drop the projections and replay them from the event log alone.

    With --from-store (after catalog.db was lost): every backup whose
    backups/database/<name>_metadata.json and blobs are still there, and that the catalog
    lacks, is read back whole and added (BackupImported), listed and restorable again.

    Examples:

      dumpledger catalog rebuild

      dumpledger catalog rebuild --from-store
    """
    if from_store:
        store_cmd.rebuild_from_store(json_out)
        return
    with open_app() as ctx:
        ctx.catalog.rebuild()
        n = ctx.catalog.count()
    if json_out:
        output.emit_json({"events": n})
    else:
        print(f"projections rebuilt from {n} events")


catalog_app.command("export", context_settings=CONTEXT)(offsite.catalog_export)
catalog_app.command("import", context_settings=CONTEXT)(offsite.catalog_import)

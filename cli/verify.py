"""`dumpledger verify`: re-read and re-hash artifacts, here or on a target."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from cli import offsite, output
from cli.state import JsonOpt, open_app

if TYPE_CHECKING:
    pass


def verify(
    names: Annotated[list[str] | None, typer.Argument(help="Backups to verify.")] = None,
    all_backups: Annotated[bool, typer.Option("--all", help="Every completed backup.")] = False,
    target: Annotated[
        str | None, typer.Option("--target", help="Verify the copies on this offsite target.")
    ] = None,
    endpoint_url: offsite.EndpointOpt = None,
    read_data: Annotated[
        bool,
        typer.Option(
            "--read-data",
            help="Also decompress and re-hash every chunk and the whole dump (slower).",
        ),
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Re-read and re-hash every artifact; record the result in the catalog.

    By default a chunked artifact's manifest and every pack it uses are re-hashed (a flipped
    byte anywhere in them is found); --read-data also decompresses and re-hashes every chunk
    and the whole dump. An artifact stored whole (before chunking) is always read whole.

    Examples: dumpledger verify backup_20261124_120000 ; dumpledger verify --all --read-data ;
    dumpledger verify --target drive
    """
    if target is not None:
        return offsite.verify_target(target, endpoint_url, json_out, bool(names or all_backups))
    from usecases.backup.verify import verify_backups
    from usecases.health.alerts import after_verify

    with open_app(read_only_ok=True) as ctx:
        progress = output.Progress("verifying")
        try:
            outcomes = verify_backups(
                ctx, names, all_backups=all_backups, progress=progress, read_data=read_data
            )
        finally:
            progress.finish()
        after_verify(ctx, outcomes)
    if json_out:
        output.emit_json(
            [
                {
                    "backup": o.backup,
                    "ok": o.ok,
                    "problem": o.problem,
                    "recorded": o.recorded,
                    "artifacts": o.artifacts,
                }
                for o in outcomes
            ]
        )
    else:
        for o in outcomes:
            print(f"{'ok    ' if o.ok else 'FAILED'} {o.backup}")
            for note in sorted({a["note"] for a in o.artifacts if a.get("note")}):
                print(f"       {note}")
            if o.problem:
                output.error(f"{o.backup}: {o.problem}")
            for f in o.failures():
                output.error(f"{o.backup}: {f['kind']} ({f['link']} -> {f['file']}): {f['error']}")
    if outcomes and not outcomes[0].recorded:
        output.info("the backup directory is read-only: the results were not recorded")
    if not all(o.ok for o in outcomes):
        raise typer.Exit(1)

"""`push`, `recover`, `verify --target`, `catalog export` and `catalog import`.

Registered by cli/main.py; imports from it lazily (it imports this module at its end).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from cli import output

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
EndpointOpt = Annotated[
    str | None,
    typer.Option(
        "--endpoint-url",
        help="S3-compatible server (MinIO, R2, ...); default: the config or AWS_ENDPOINT_URL.",
    ),
]
TargetArg = Annotated[
    str | None,
    typer.Argument(
        help="A configured offsite target's name (default: the only one), a directory, "
        "or s3://bucket/prefix.",
        show_default=False,
    ),
]


def push(
    target: TargetArg = None,
    endpoint_url: EndpointOpt = None,
    rehash: Annotated[
        bool,
        typer.Option(
            "--rehash",
            help="Re-hash the blobs already there and re-send any that differ (repairs what "
            "`verify --target` found corrupt).",
        ),
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Copy the blobs the target lacks, each checked after upload, and the event log.

    Only blobs the target does not hold yet are sent; each is re-read on the target (size and
    SHA-256). Then the events the target lacks are appended to its catalog/events.jsonl.
    S3 credentials come from the environment or ~/.aws, never from the catalog.

    Examples:

      dumpledger push                        # the only configured target

      dumpledger push drive

      dumpledger push /media/usb/dumpledger

      dumpledger push s3://my-bucket/db --endpoint-url https://s3.example.com
    """
    from cli.state import open_app
    from usecases.offsite.push import push as run_push

    with open_app() as ctx:
        progress = output.Progress("pushing")
        try:
            report = run_push(
                ctx, target, endpoint_url=endpoint_url, rehash=rehash, progress=progress
            )
        finally:
            progress.finish()
    if json_out:
        output.emit_json(report.to_json())
        return
    print(
        f"pushed to {report.target} ({report.location}): {len(report.digests_sent)} blob(s) "
        f"sent ({output.human_size(report.bytes_sent)}), {report.blobs_present} already there, "
        f"{report.events_sent} event(s) appended to the log export"
    )
    print(f"{len(report.backups)} backup(s) complete on {report.target}")


def verify_target(target: str, endpoint_url: str | None, json_out: bool, named: bool) -> None:
    """`verify --target`: re-hash the target's copies of every backup recorded there."""
    from cli.state import open_app
    from usecases.errors import BadInput

    if named:
        raise BadInput("--target verifies every backup on the target: name no backup, no --all")
    from usecases.offsite.push import verify_target as run_verify

    with open_app(read_only_ok=True) as ctx:
        progress = output.Progress("verifying")
        try:
            report = run_verify(ctx, target, endpoint_url=endpoint_url, progress=progress)
        finally:
            progress.finish()
    if json_out:
        output.emit_json(report.to_json())
    else:
        bad = [b for b in report.blobs if not b["ok"]]
        status = "ok    " if report.ok else "FAILED"
        print(
            f"{status} {report.target} ({report.location}): {len(report.blobs) - len(bad)} of "
            f"{len(report.blobs)} blob(s) intact, log export up to event {report.export_seq}"
        )
        for b in bad:
            output.error(f"{report.target}: {b['error']} (backups: {', '.join(b['backups'])})")
        if report.export_error:
            output.error(f"{report.target}: {report.export_error}")
    if not report.ok:
        raise typer.Exit(1)


def recover(
    target: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="The offsite target: a configured name (default: the only one), a directory, "
            "or s3://bucket/prefix.",
            show_default=False,
        ),
    ] = None,
    endpoint_url: EndpointOpt = None,
    restore: Annotated[
        bool, typer.Option("--restore", help="Then restore the newest verified backup.")
    ] = False,
    name: Annotated[
        str | None, typer.Option("--name", help="With --restore: this backup instead.")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Restore without a prompt.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Rebuild the catalog and the store from an offsite target after a complete loss.

    backups/ must be empty or absent. Imports the target's log export (checking its hash
    chain), downloads and verifies every blob, writes backups/database/. Then restore with
    `dumpledger restore NAME`, or pass --restore.

    Examples:

      dumpledger recover --from /media/usb/dumpledger

      dumpledger recover --from s3://my-bucket/db --restore --yes   # AWS_ENDPOINT_URL
    """
    import contextlib

    from cli.restore import restore as run_restore
    from cli.state import settings
    from usecases.errors import BadInput
    from usecases.offsite.recover import recover as run_recover

    if restore and not yes and not sys.stdin.isatty():
        raise BadInput("--restore needs a confirmation: run it in a terminal, or pass --yes")
    progress = output.Progress("recovering")
    try:
        report = run_recover(settings(), target, endpoint_url=endpoint_url, progress=progress)
    finally:
        progress.finish()
    chosen = name or report.newest_verified
    if not json_out:
        print(
            f"recovered {report.events} events and {report.blobs_fetched} blob(s) "
            f"({output.human_size(report.bytes_fetched)}) from {report.location}; "
            f"hash chain intact; {len(report.backups)} backup(s) ready"
        )
        for b in report.incomplete:
            output.error(
                f"{b}: some of its blobs are not on {report.target}; it cannot be restored"
            )
    if restore:
        if chosen is None:
            raise BadInput("no verified backup was recovered; name one with --name")
        # With --json, stdout carries only the recovery report; the restore talks on stderr.
        with contextlib.redirect_stdout(sys.stderr if json_out else sys.stdout):
            run_restore(name=chosen, yes=yes)
    if json_out:
        output.emit_json({**report.to_json(), "restored": chosen if restore else None})
    elif chosen and not restore:
        print(f"next: dumpledger restore {chosen}")


def catalog_export(
    out: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here (default: stdout).")
    ] = None,
) -> None:
    """Write every event as JSON Lines (with the hash chain): enough to rebuild the catalog.

    Example: dumpledger catalog export --output events.jsonl
    """
    from catalog.export import iter_export
    from cli.state import open_app
    from usecases.files import atomic_write

    with open_app(read_only_ok=True) as ctx:
        lines = list(iter_export(ctx.catalog))
    if out is None:
        sys.stdout.write("".join(lines))
        return
    atomic_write(out, "".join(lines).encode("utf-8"))
    output.info(f"{len(lines)} events written to {out}")


def catalog_import(
    file: Annotated[Path, typer.Argument(help="An export (JSON Lines), as written by export.")],
) -> None:
    """Load an export into an EMPTY catalog: same ids, hashes and times; the chain is checked
    while importing and the projections are rebuilt.

    Example: dumpledger --backup-dir /srv/new-backups catalog import events.jsonl
    """
    from catalog.export import import_export
    from cli.state import open_app
    from usecases.errors import BadInput

    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"cannot read {file}: {exc.strerror}") from None
    with open_app() as ctx:
        n = import_export(ctx.catalog, text.splitlines(), source=str(file))
        report = ctx.catalog.verify_chain()
    status = "hash chain intact" if report.ok else "hash chain BROKEN"
    print(f"imported {n} events from {file}; {status}; projections rebuilt")
    if not report.ok:
        raise typer.Exit(1)

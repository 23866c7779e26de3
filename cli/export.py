"""`dumpledger export` and `dumpledger cat`: any backup's dump as a file, or as plain bytes."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import typer

from cli import output
from cli.state import open_app

ArtifactOpt = Annotated[
    str,
    typer.Option("--artifact", "-a", help="Which dump: full, globals, schema, data or custom."),
]


def export(
    name: Annotated[str, typer.Argument(help="The backup.")],
    out: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="File (or directory) to write; '-' for standard output. "
            "Default: NAME_full.sql.gz here.",
        ),
    ] = None,
    artifact: ArtifactOpt = "full",
) -> None:
    """Write a backup's dump file: what `gunzip -c FILE | psql` restores.

    The newest backups' files are kept under backups/database/; this writes any other one.
    The file is a byte copy of the stored chunks (each checked as it is copied): a gzip file
    (zstd with the zstd codec; a custom dump as pg_dump wrote it, for pg_restore).

    Examples:

      dumpledger export backup_20261124_120000 -o /tmp/before.sql.gz

      dumpledger export auto_nightly_20261124_030000 --artifact globals -o -
    """
    from usecases.backup.export import export_file, file_stream

    with open_app() as ctx:
        if out is not None and str(out) == "-":
            with file_stream(ctx, name, artifact) as chunks:
                _to_stdout(chunks)
            return
        done = export_file(ctx, name, artifact, out or Path.cwd())
    output.info(f"wrote {done.path} ({output.human_size(done.size)}, sha256:{done.digest[:12]})")


def cat(
    name: Annotated[str, typer.Argument(help="The backup.")],
    artifact: ArtifactOpt = "full",
) -> None:
    """Write a backup's dump as plain bytes to standard output (SQL for psql).

    Every chunk is checked as it is read; a damaged one stops the output with an error and
    exit code 1.

    Examples:

      dumpledger cat backup_20261124_120000 | psql -d scratch

      dumpledger cat backup_20261124_120000 --artifact custom | pg_restore -l
    """
    from usecases.backup.export import plain_stream

    with open_app() as ctx, plain_stream(ctx, name, artifact) as chunks:
        _to_stdout(chunks)


def _to_stdout(chunks: Iterable[bytes]) -> None:
    out = sys.stdout.buffer
    try:
        for chunk in chunks:
            out.write(chunk)
        out.flush()
    except BrokenPipeError:  # the reader (head, a pager) stopped: not our failure
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())

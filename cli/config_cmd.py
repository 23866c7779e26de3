"""`dumpledger config init|show|validate`."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from cli import output
from cli.state import CONTEXT, STATE, JsonOpt
from usecases.config.settings import document, explain, read_sources, settings_from, validate
from usecases.errors import BadInput
from usecases.files import atomic_write

config_app = typer.Typer(
    help="Write, show and check backup-config.json.", context_settings=CONTEXT, no_args_is_help=True
)


@config_app.command("init", context_settings=CONTEXT)
def config_init(
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
) -> None:
    """Write backups/backup-config.json with every setting at its default, explained.

    Example: dumpledger config init && dumpledger config validate
    """
    sources = read_sources(backup_dir=STATE.backup_dir, environ=None, cwd=None)
    path = sources.backup_dir / "backup-config.json"
    if path.exists() and not force:
        raise BadInput(f"{path} exists; edit it, or use --force to replace it with the defaults")
    from usecases.config.file import commented_default

    text = json.dumps(commented_default(), indent=2) + "\n"
    atomic_write(path, text.encode())
    output.info(f"wrote {path}; check it with `dumpledger config validate`")


@config_app.command("show", context_settings=CONTEXT)
def config_show(json_out: JsonOpt = False) -> None:
    """Print the effective settings and where each value came from (the password masked).

    Example: dumpledger config show --json | jq '.[] | select(.source != "default")'
    """
    sources = read_sources(backup_dir=STATE.backup_dir, environ=None, cwd=None)
    rows = explain(sources, document(validate(sources)))
    if json_out:
        output.emit_json(rows)
        return
    output.table(
        ["SETTING", "VALUE", "SOURCE"],
        [[r["setting"], _shown(r["value"]), r["source"]] for r in rows],
    )


@config_app.command("validate", context_settings=CONTEXT)
def config_validate(json_out: JsonOpt = False) -> None:
    """Check backup-config.json, .env and the environment; name each wrong field. Exit 2 if any.

    Example: dumpledger config validate
    """
    sources = read_sources(backup_dir=STATE.backup_dir, environ=None, cwd=None)
    from pydantic import ValidationError

    from usecases.config.file import ConfigFile
    from usecases.config.settings import validation_errors

    problems: list[str] = []
    try:
        settings_from(sources, document(ConfigFile.model_validate(sources.merged())))
    except ValidationError as exc:
        problems = validation_errors(sources, exc)
    except BadInput as exc:
        problems = [str(exc)]
    path = sources.backup_dir / "backup-config.json"
    if json_out:
        output.emit_json({"file": str(path), "valid": not problems, "errors": problems})
    elif problems:
        for line in problems:
            output.error(line)
    else:
        where = path if path.exists() else f"{path} (absent: defaults)"
        print(f"ok: {where} and the environment are valid")
    if problems:
        raise typer.Exit(2)


def _shown(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)

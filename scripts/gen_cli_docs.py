"""Write docs/commands.md from `dumpledger ... --help`; `--check` fails if it has drifted.

.venv/bin/python scripts/gen_cli_docs.py          # regenerate
.venv/bin/python scripts/gen_cli_docs.py --check  # what the tests run
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "docs" / "commands.md"


def commands() -> list[list[str]]:
    """Every command and group of the CLI, in the order they are registered (walked from the
    Typer app, so a new command cannot be left out)."""
    sys.path.insert(0, str(ROOT))
    import typer

    from cli.main import app

    out: list[list[str]] = []

    def walk(cmd: Any, path: list[str]) -> None:  # a Typer (vendored click) command or group
        if getattr(cmd, "hidden", False):
            return
        out.append(path)
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return out


def help_text(args: list[str]) -> str:
    env = {**os.environ, "COLUMNS": "100", "TERM": "dumb", "NO_COLOR": "1"}
    env.pop("FORCE_COLOR", None)
    done = subprocess.run(
        [sys.executable, "-m", "cli", *args, "--help"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return "\n".join(line.rstrip() for line in done.stdout.splitlines()).strip()


def render() -> str:
    parts = [
        "# Command reference",
        "",
        "Generated from `--help` by `scripts/gen_cli_docs.py`; do not edit by hand.",
        "",
    ]
    every = commands()
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        texts = list(pool.map(help_text, every))
    for args, text in zip(every, texts, strict=True):
        parts += [f"## dumpledger {' '.join(args)}".rstrip(), "", "```", text, "```", ""]
    return "\n".join(parts)


def main() -> int:
    text = render()
    if "--check" in sys.argv:
        if not TARGET.exists() or TARGET.read_text() != text:
            print("docs/commands.md is out of date: run scripts/gen_cli_docs.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Write docs/commands.md from `dumpledger ... --help`; `--check` fails if it has drifted.

.venv/bin/python scripts/gen_cli_docs.py          # regenerate
.venv/bin/python scripts/gen_cli_docs.py --check  # what the tests run
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "docs" / "commands.md"
COMMANDS = [
    [],
    ["backup"],
    ["list"],
    ["info"],
    ["verify"],
    ["catalog"],
    ["catalog", "verify"],
    ["catalog", "rebuild"],
    ["demo"],
    ["schedule"],
    ["schedule", "install"],
    ["schedule", "status"],
    ["schedule", "test"],
    ["schedule", "uninstall"],
    ["store"],
    ["store", "status"],
    ["store", "forget-catalog"],
    ["store", "adopt"],
]


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
    for args in COMMANDS:
        parts += [f"## dumpledger {' '.join(args)}".rstrip(), "", "```", help_text(args), "```", ""]
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

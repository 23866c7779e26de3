"""Find PostgreSQL client programs whose major version is at least the server's."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pgtools.errors import PgClientMissing

SEARCH_GLOBS = (
    "/usr/lib/postgresql/*/bin",
    "/usr/pgsql-*/bin",
    "/opt/homebrew/opt/postgresql@*/bin",
    "/usr/local/opt/postgresql@*/bin",
    "/Applications/Postgres.app/Contents/Versions/*/bin",
)


@dataclass(frozen=True, slots=True)
class ClientProgram:
    path: Path
    major: int
    version: str


def candidate_dirs(extra: Iterable[str] = ()) -> list[Path]:
    dirs: list[Path] = [Path(d) for d in extra if d]
    env_dir = os.environ.get("DUMPLEDGER_PG_BINDIR")
    if env_dir:
        dirs.append(Path(env_dir))
    for pattern in SEARCH_GLOBS:
        root = Path("/")
        dirs.extend(sorted(root.glob(pattern.lstrip("/"))))
    for name in os.environ.get("PATH", "").split(os.pathsep):
        if name:
            dirs.append(Path(name))
    seen: list[Path] = []
    for d in dirs:
        if d not in seen:
            seen.append(d)
    return seen


def program_version(path: Path) -> ClientProgram | None:
    try:
        out = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"(\d+)(?:\.(\d+))?", out)
    if not match:
        return None
    return ClientProgram(path=path, major=int(match.group(1)), version=match.group(0))


def find_program(name: str, min_major: int, *, extra_dirs: Iterable[str] = ()) -> ClientProgram:
    """`name` from an explicitly given directory if it fits, else the newest one that does."""
    explicit = [d for d in extra_dirs if d]
    if os.environ.get("DUMPLEDGER_PG_BINDIR"):
        explicit.append(os.environ["DUMPLEDGER_PG_BINDIR"])
    preferred = [p for p in _programs(name, [Path(d) for d in explicit]) if p.major >= min_major]
    if preferred:
        return preferred[0]
    found = _programs(name, candidate_dirs(explicit))
    fitting = [p for p in found if p.major >= min_major]
    if fitting:
        return max(fitting, key=lambda p: p.major)
    seen = ", ".join(sorted({f"{p.version} ({p.path})" for p in found})) or "none"
    raise PgClientMissing(
        f"{name} {min_major} or newer is needed for a PostgreSQL {min_major} server "
        f"(found: {seen}); install postgresql-client-{min_major} "
        f"(apt-get install postgresql-client-{min_major}, or brew install postgresql@{min_major}) "
        "or set DUMPLEDGER_PG_BINDIR"
    )


def _programs(name: str, dirs: Iterable[Path]) -> list[ClientProgram]:
    found: list[ClientProgram] = []
    for d in dirs:
        path = d / name
        if path.is_file() and os.access(path, os.X_OK):
            prog = program_version(path)
            if prog is not None:
                found.append(prog)
    return found


def which(name: str) -> str | None:
    return shutil.which(name)

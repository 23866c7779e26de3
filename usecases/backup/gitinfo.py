"""Git commit, branch and dirty flag of the app's repository (the working directory)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any


def _git(cwd: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_metadata(cwd: Path) -> dict[str, Any]:
    """{} when cwd is not inside a git work tree (or git is missing)."""
    commit = _git(cwd, "rev-parse", "HEAD")
    if not commit:
        return {}
    branch = _git(cwd, "rev-parse", "--abbrev-ref", "HEAD")
    status = _git(cwd, "status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "branch": branch, "dirty": bool(status)}

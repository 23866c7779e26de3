"""The command reference in docs/ is generated from --help and cannot drift."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_docs_commands_md_matches_help() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_cli_docs.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def readme_packages() -> list[str]:
    """The packages of the README's one `sudo apt-get install -y` line, as .ci/run reads them."""
    lines = [
        line.removeprefix("sudo apt-get install -y ").split()
        for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
        if line.startswith("sudo apt-get install -y ")
    ]
    assert len(lines) == 1, "README.md must name the prerequisites in one apt-get line"
    return lines[0]


def test_readme_names_every_debian_package_the_suite_runs() -> None:
    # program the suite or the demo runs -> the Debian package that provides it
    needed = {
        "initdb/pg_ctl/pg_dump/psql": "postgresql",
        "crontab": "cron",
        "systemd-analyze": "systemd",
        "git": "git",
        "make": "make",
        "python3 -m venv": "python3-venv",
        "chromium (opens the report's page)": "chromium",
    }
    packages = readme_packages()
    missing = {prog: pkg for prog, pkg in needed.items() if pkg not in packages}
    assert not missing, f"README.md's apt-get line lacks {missing}"


def test_ci_installs_the_readme_list_and_no_other() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "sudo apt-get install -y" in ci and "README.md" in ci
    extract = subprocess.run(
        ["sed", "-n", r"s/^sudo apt-get install -y \(.*\)$/\1/p", str(ROOT / "README.md")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert extract == readme_packages()
    # no second, hand-kept list of packages in CI: every install names only "${missing[@]}"
    for line in ci.splitlines():
        if "apt-get install" not in line or line.lstrip().startswith(("#", "echo", "packages=")):
            continue
        words = line.split("apt-get install", 1)[1].split()
        named = [w for w in words if not w.startswith(("-", '"$', ">"))]
        assert not named, f".ci/run installs {named} that README.md does not name: {line}"

"""What users install is what is tested: the wheel built from the checkout, installed into a
fresh virtual environment, run from a directory outside the checkout.

The suite itself imports an editable install, which hid a wheel that could not start (issue
14: `usecases.schedule` and `pgtools/sql/supabase_like.sql` were missing from it). This test
builds the wheel from a copy of the source tree, checks that every module and data file of the
packages is in it, installs it (only it) into a new venv and runs the installed `dumpledger`.

Dependencies: the new venv sees the test environment's site-packages through a `.pth` line
appended after its own, so nothing is downloaded; the `dumpledger` packages themselves come
from the wheel only (asserted), and a module the wheel lacks cannot be found elsewhere: the
checkout is neither the working directory nor on the path, and the editable install's finder
is a `.pth` hook that a plain path line does not run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("catalog", "store", "cli", "pgtools", "usecases", "migrations")
pytestmark = pytest.mark.slow


def source_files() -> list[str]:
    """Every file of the packages in the source tree, as the wheel should name it."""
    if (REPO / ".git").exists():
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", *PACKAGES],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
        return sorted(f for f in listed if (REPO / f).is_file())
    return sorted(
        str(p.relative_to(REPO))
        for pkg in PACKAGES
        for p in (REPO / pkg).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )


def copy_tree(files: list[str], dest: Path) -> None:
    """The source tree as a clean clone has it (no build/, no egg-info, no caches)."""
    for name in ("pyproject.toml", "MANIFEST.in", "README.md", *files):
        if not (REPO / name).exists():
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)


def build_wheel(src: Path, out: Path) -> Path:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(out),
            str(src),
        ],
        check=True,
        cwd=out,
        capture_output=True,
    )
    (wheel,) = out.glob("dumpledger-*.whl")
    return wheel


def fresh_venv(path: Path, wheel: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, capture_output=True)
    py = path / "bin" / "python"
    subprocess.run(
        [str(py), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        cwd=path,
    )
    site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # The test environment's packages, after the venv's own: the dependencies, not dumpledger.
    (Path(site) / "zz_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return path / "bin" / "dumpledger"


def outside_env(home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PG", "SUPABASE_", "DUMPLEDGER_", "PYTHON", "VIRTUAL_ENV"))
    }
    env.update(HOME=str(home), DUMPLEDGER_CACHE_DIR=str(home / "cache"))
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    base = tmp_path_factory.mktemp("wheel")
    files = source_files()
    copy_tree(files, base / "src")
    (base / "dist").mkdir()
    wheel = build_wheel(base / "src", base / "dist")
    exe = fresh_venv(base / "venv", wheel)
    return wheel, exe, files


def test_the_wheel_holds_every_module_and_data_file(
    installed: tuple[Path, Path, list[str]],
) -> None:
    wheel, _, files = installed
    with zipfile.ZipFile(wheel) as zf:
        in_wheel = set(zf.namelist())
    missing = [f for f in files if f not in in_wheel]
    assert not missing, f"the wheel lacks {missing}"
    assert "pgtools/sql/supabase_like.sql" in files  # the list is the real tree
    assert "usecases/schedule/__init__.py" in files


def test_installed_dumpledger_runs_outside_the_checkout(
    installed: tuple[Path, Path, list[str]], tmp_path: Path
) -> None:
    _, exe, _ = installed
    env = outside_env(tmp_path)
    version = subprocess.run(
        [str(exe), "--version"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("dumpledger 0."), version.stdout

    where = subprocess.run(
        [
            str(exe.parent / "python"),
            "-c",
            "import cli.main, usecases.schedule, pgtools.cluster as c, migrations;"
            "print(c.__file__); print(cli.main.__file__); print(migrations.__file__)",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert where.returncode == 0, where.stderr
    for line in where.stdout.splitlines():
        assert str(exe.parent.parent) in line and str(REPO) not in line, line

    demo = subprocess.run(
        [str(exe), "demo", "--backup-dir", str(tmp_path / "demo")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    assert "Traceback" not in demo.stderr
    full = list((tmp_path / "demo" / "database").glob("*_full.sql.gz"))
    assert full, list((tmp_path / "demo").rglob("*"))
    catalog = tmp_path / "demo" / "catalog.db"
    assert catalog.is_file()

    # The commands that failed from a wheel (every one that touches a backup imported
    # usecases.schedule): list, verify, check read the demo's catalog.
    env["DUMPLEDGER_BACKUP_DIR"] = str(tmp_path / "demo")
    page = tmp_path / "report.html"  # its templates are package data
    for args in (
        ["list", "--json"],
        ["verify", "--all"],
        ["catalog", "verify"],
        ["report", "--no-check", "-o", str(page)],
    ):
        done = subprocess.run(
            [str(exe), *args], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, (args, done.stderr)
    assert "<h1>dumpledger report: " in page.read_text()
    assert (
        "demo_"
        in subprocess.run(
            [str(exe), "list"], cwd=tmp_path, env=env, capture_output=True, text=True
        ).stdout
    )

"""Benchmark: backups of a live database, 6-hour slices of writes apart (issue 17).

Run by hand (never in the tests), on a throwaway cluster it starts itself:

    .venv/bin/python bench/bench_churn.py                       # ~130 MB dump, 10 rounds
    .venv/bin/python bench/bench_churn.py --rows 60000 --rounds 4 --tools old,gzip
    .venv/bin/python bench/bench_churn.py --json /tmp/churn.json
    .venv/bin/python bench/bench_churn.py --rows 700000 --rounds 5 --tools today,gzip \
        --today /tmp/today                                      # ~490 MiB of plain dump

The workload is bench_backup.py's realistic data (with a bigserial id, as applications have)
and, between two backups, a 6-hour slice of application writes: 0.5 % of the rows updated
(mostly recent ones), 0.2 % inserted, 0.1 % deleted, then VACUUM. Each round runs, side by
side on the same database state:
- bare:   pg_dump > /dev/null                                 (the floor)
- old:    pg_dump | gzip -9 > FILE (the old scripts; every file is kept)
- today:  dumpledger before chunking, gzip (--today DIR: a checkout of it, run by its own
          DIR/.venv/bin/python when there is one)
- gzip:   dumpledger backup --type nightly, DUMPLEDGER_CODEC=gzip (a real process)
- zstd:   the same with zstd
- restic: pg_dump | restic backup --stdin (defaults), when restic is installed
- borg:   pg_dump | borg create ... - (defaults, no encryption), when borg is installed
For each: seconds, peak RSS of the process tree (wait4), and the bytes stored after the round
(the store / repository; the old scripts' files; dumpledger's backups/database/ files apart).
At the end: a 240-backup extrapolation (first + 239 x the mean later round, the old scripts'
4 a day for 60 days) and each later backup's time over the bare pg_dump's in the same round.
dumpledger runs from compiled bytecode, as an installed copy does (both trees are compiled
before the first round, and PYTHONDONTWRITEBYTECODE is not passed on).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_backup import REALISTIC_SQL, du

from pgtools.cluster import Cluster

SCHEMA_EDIT = (
    "id uuid PRIMARY KEY DEFAULT gen_random_uuid(),",
    "id bigserial PRIMARY KEY, ext_id uuid NOT NULL DEFAULT gen_random_uuid(), "
    "updated_at timestamptz,",
)
CHURN = """
UPDATE app_events SET body = body || ' edited', updated_at = now(),
       payload = payload || '{"v": 2}'
 WHERE id IN (SELECT id FROM app_events WHERE random() < 0.005 *
   (CASE WHEN id > (SELECT max(id) FROM app_events) * 0.8 THEN 4 ELSE 0.25 END));
INSERT INTO app_events (user_id, created_at, kind, title, body, payload)
 SELECT user_id, now(), kind, title, body || ' new', payload FROM app_events
  WHERE random() < 0.002;
DELETE FROM app_events WHERE random() < 0.001;
VACUUM app_events;
"""
TOOLS = ("old", "today", "gzip", "zstd", "age", "restic", "borg")
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Run:
    seconds: float
    peak_rss_mb: float


@dataclass
class Series:
    runs: list[Run] = field(default_factory=list)
    stored: list[int] = field(default_factory=list)  # bytes after each round
    files: list[int] = field(default_factory=list)  # dumpledger: backups/database/ bytes


def measure(argv: list[str], env: dict[str, str], cwd: Path | None = None) -> Run:
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv} failed: {err}")
    return Run(round(seconds, 2), round(usage.ru_maxrss / 1024, 1))


class Bench:
    def __init__(self, cluster: Cluster, work: Path, tools: list[str], today: Path | None):
        self.cluster = cluster
        self.work = work
        self.tools = tools
        self.today = today
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PG", "SUPABASE_")) and k != "PYTHONDONTWRITEBYTECODE"
        }
        self.env.update(cluster.env(dbname="churn"))
        self.pg_dump = f'"{cluster.bindir / "pg_dump"}"'
        self.series = {t: Series() for t in ("bare", *tools)}
        self.dl_env = {
            **self.env,
            "SUPABASE_DB_HOST": str(cluster.socket_dir),
            "SUPABASE_DB_PORT": str(cluster.port),
            "SUPABASE_DB_USER": cluster.superuser,
            "SUPABASE_DB_NAME": "churn",
            "DUMPLEDGER_PG_BINDIR": str(cluster.bindir),
            "DUMPLEDGER_CACHE_DIR": str(work / "settings-cache"),
            "RESTIC_PASSWORD": "bench",
            "RESTIC_CACHE_DIR": str(work / "restic-cache"),
            "BORG_BASE_DIR": str(work / "borg-base"),
            "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes",
        }

    def sh(self, script: str, env: dict[str, str] | None = None) -> Run:
        return measure(["sh", "-c", script], env or self.dl_env)

    def round(self, n: int) -> None:
        s = self.series
        s["bare"].runs.append(self.sh(f"{self.pg_dump} > /dev/null"))
        for tool in self.tools:
            getattr(self, f"run_{tool}")(n, s[tool])

    def run_old(self, n: int, s: Series) -> None:
        out = self.work / "old" / f"r{n:03d}.sql.gz"
        out.parent.mkdir(exist_ok=True)
        s.runs.append(self.sh(f'{self.pg_dump} | gzip -9 > "{out}"'))
        s.stored.append(du(out.parent))

    def _dumpledger(self, s: Series, bdir: Path, codec: str, root: Path | None = None) -> None:
        env = {**self.dl_env, "DUMPLEDGER_BACKUP_DIR": str(bdir), "DUMPLEDGER_CODEC": codec}
        if root is not None:  # `python -m` puts the working directory first on sys.path
            env["PYTHONPATH"] = str(root)
        argv = [python_of(root), "-m", "cli", "backup", "--type", "nightly"]
        s.runs.append(measure(argv, env, cwd=root or ROOT))
        s.stored.append(du(bdir / "store"))
        s.files.append(du_files(bdir / "database"))

    def run_today(self, n: int, s: Series) -> None:
        self._dumpledger(s, self.work / "dl-today", "gzip", root=self.today)

    def run_gzip(self, n: int, s: Series) -> None:
        self._dumpledger(s, self.work / "dl-gzip", "gzip")

    def run_zstd(self, n: int, s: Series) -> None:
        self._dumpledger(s, self.work / "dl-zstd", "zstd")

    def run_age(self, n: int, s: Series) -> None:
        """dumpledger gzip, encrypted with age (sealed packs), the identity on the host."""
        bdir = self.work / "dl-age"
        if n == 0:
            import pyrage

            identity = pyrage.x25519.Identity.generate()
            bdir.mkdir(parents=True, exist_ok=True)
            key = bdir / "age.key"
            key.write_text(f"{identity}\n")
            key.chmod(0o600)
            enc = {"recipients": [str(identity.to_public())], "identity_file": str(key)}
            (bdir / "backup-config.json").write_text(json.dumps({"encryption": enc}))
        self._dumpledger(s, bdir, "gzip")

    def run_restic(self, n: int, s: Series) -> None:
        repo = self.work / "restic"
        if n == 0:
            subprocess.run(
                ["restic", "init", "-q", "--repo", str(repo)], env=self.dl_env, check=True
            )
        s.runs.append(
            self.sh(
                f'{self.pg_dump} | restic backup -q --repo "{repo}" --stdin '
                "--stdin-filename churn.sql"
            )
        )
        s.stored.append(du(repo))

    def run_borg(self, n: int, s: Series) -> None:
        repo = self.work / "borg"
        if n == 0:
            subprocess.run(["borg", "init", "-e", "none", str(repo)], env=self.dl_env, check=True)
        s.runs.append(
            self.sh(f'{self.pg_dump} | borg create --stdin-name churn.sql "{repo}::r{n}" -')
        )
        s.stored.append(du(repo))


def python_of(root: Path | None) -> str:
    """The checkout's own interpreter (its .venv), else this one."""
    own = root / ".venv" / "bin" / "python" if root is not None else None
    return str(own) if own is not None and own.exists() else sys.executable


@contextlib.contextmanager
def throwaway_cluster(prefix: str) -> Iterator[tuple[Cluster, Path]]:
    """A started cluster and a work directory, both removed afterwards."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    cluster = Cluster.create("postgres").start()
    try:
        yield cluster, work
    finally:
        cluster.destroy()
        shutil.rmtree(work, ignore_errors=True)


def emit(result: dict[str, object], path: Path | None) -> None:
    """The results on stdout, and in `path` (--json) when given."""
    print(json.dumps(result, indent=2))
    if path:
        path.write_text(json.dumps(result, indent=2) + "\n")


def compile_trees(*roots: Path | None) -> None:
    """Bytecode for every module, as an installation has it (pip compiles on install)."""
    for root in roots:
        if root is not None:
            subprocess.run(
                [python_of(root), "-m", "compileall", "-q", "-x", r"[\\/]\.", str(root)],
                check=False,
                stdout=subprocess.DEVNULL,
            )


def du_files(path: Path) -> int:
    """Bytes of the real files under `path`: each inode once (hard links), no symlinks."""
    seen: dict[int, int] = {}
    for p in path.rglob("*"):
        if p.is_file() and not p.is_symlink():
            st = p.stat()
            seen[st.st_ino] = st.st_size
    return sum(seen.values())


def setup(cluster: Cluster, rows: int) -> int:
    cluster.psql("CREATE DATABASE churn")
    cluster.psql(REALISTIC_SQL.replace(":rows", str(rows)).replace(*SCHEMA_EDIT), dbname="churn")
    cluster.psql("VACUUM ANALYZE", dbname="churn")
    return int(
        subprocess.run(
            ["sh", "-c", f'"{cluster.bindir / "pg_dump"}" | wc -c'],
            env={**os.environ, **cluster.env(dbname="churn")},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )


def summary(bench: Bench, rounds: int) -> dict[str, object]:
    s = bench.series
    bare = [r.seconds for r in s["bare"].runs]
    old_total = s["old"].stored[-1] if s.get("old") and s["old"].stored else None
    out: dict[str, object] = {"bare_pg_dump_seconds": bare}
    for tool, series in s.items():
        if tool == "bare" or not series.runs:
            continue
        later = [b - a for a, b in zip(series.stored, series.stored[1:], strict=False)]
        entry: dict[str, object] = {
            "seconds": [r.seconds for r in series.runs],
            "peak_rss_mb": max(r.peak_rss_mb for r in series.runs),
            "stored_bytes": series.stored,
        }
        if series.files:
            entry["database_dir_bytes"] = series.files
        if later:
            entry["mean_later_round_bytes"] = round(statistics.mean(later))
            entry["extrapolated_240_bytes"] = series.stored[0] + 239 * round(statistics.mean(later))
            entry["later_over_bare"] = [
                round(r.seconds / b, 2) for r, b in zip(series.runs[1:], bare[1:], strict=False)
            ]
        if old_total and len(series.stored) == rounds:
            entry["stored_vs_old_scripts"] = round(series.stored[-1] / old_total, 3)
        out[tool] = entry
    return out


def print_round(bench: Bench, n: int) -> None:
    cells = []
    for tool, series in bench.series.items():
        if len(series.runs) <= n:
            continue
        run = series.runs[-1]
        stored = f" {series.stored[-1] / 2**20:7.1f}MB" if series.stored else ""
        cells.append(f"{tool} {run.seconds:5.2f}s {run.peak_rss_mb:5.0f}MB{stored}")
    print(f"round {n:2d}: " + " | ".join(cells), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=175_000, help="~130 MB of plain dump")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument(
        "--today", type=Path, help="a checkout of dumpledger before chunking (for 'today')"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    tools = [t for t in args.tools.split(",") if t]
    tools = [t for t in tools if t not in ("restic", "borg") or shutil.which(t)]
    if args.today is None:
        tools = [t for t in tools if t != "today"]
    load_before = os.getloadavg()
    with throwaway_cluster("dumpledger-churn-") as (cluster, work):
        raw = setup(cluster, args.rows)
        print(f"plain dump {raw / 2**20:.1f} MiB; tools {', '.join(tools)}", flush=True)
        bench = Bench(cluster, work, tools, args.today)
        compile_trees(ROOT, args.today if "today" in tools else None)
        for n in range(args.rounds):
            if n:
                cluster.psql(CHURN, dbname="churn")
            bench.round(n)
            print_round(bench, n)
        result = {
            "rows": args.rows,
            "plain_dump_mib": round(raw / 2**20, 1),
            "rounds": args.rounds,
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
            **summary(bench, args.rounds),
        }
    emit(result, args.json)


if __name__ == "__main__":
    main()

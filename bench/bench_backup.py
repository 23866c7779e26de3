"""Benchmark: `dumpledger backup` against the old scripts' `pg_dump | gzip -9` pipeline.

Run by hand (never in the tests), on a throwaway cluster it starts itself:

    .venv/bin/python bench/bench_backup.py                      # everything
    .venv/bin/python bench/bench_backup.py --datasets realistic --realistic-rows 200000
    .venv/bin/python bench/bench_backup.py --datasets pgbench50 --rounds 5   # median ratios

Each dataset is measured in one run, so the ratio compares like with like on a noisy machine:
- baseline: sh -c 'pg_dump | gzip -9 > f.sql.gz && gzip -t f.sql.gz'
- dumpledger backup --type nightly (full + globals artifacts, gzip -9, read back and verified)
- dumpledger backup --codec zstd, against a bare `pg_dump > /dev/null`
- a second backup of the unchanged database: stored bytes added
The first backup into a new directory also creates the catalog (the Alembic migrations, once
per directory). Every backup after it finds the catalog: the ratios (median of --rounds
alternating rounds) time a backup into a directory whose catalog a `dumpledger list` created
beforehand, untimed; the first backups into new directories are reported beside them.
The settings cache lives in the run's temp directory and is filled by the first command.
Peak RSS is the largest resident set of any process in the measured command's tree (wait4).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pgtools.cluster import Cluster

REALISTIC_SQL = """
CREATE EXTENSION IF NOT EXISTS pgcrypto;
-- A skewed vocabulary of 3000 words and 20000 random phrases of 20 words drawn from it, then
-- rows that combine random phrases with uuids, timestamps and JSON: about 4:1 under gzip -9,
-- like application data (pgbench's blank filler compresses 35:1 and flatters every codec).
CREATE TABLE vocab (n int PRIMARY KEY, w text);
INSERT INTO vocab
  SELECT i, substr(md5(i::text), 1, 2 + (i * 7) % 9) FROM generate_series(1, 3000) i;
CREATE TABLE picks AS
  SELECT i, j, 1 + floor(2999 * random() ^ 10)::int AS k
  FROM generate_series(1, 20000) i, generate_series(1, 20) j;
CREATE TABLE phrases (k int PRIMARY KEY, p text NOT NULL);
INSERT INTO phrases
  SELECT i - 1, string_agg(v.w, ' ' ORDER BY j) FROM picks JOIN vocab v ON v.n = picks.k GROUP BY i;
CREATE TABLE app_events (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL,
  created_at timestamptz NOT NULL,
  kind text NOT NULL,
  title text,
  body text,
  payload jsonb
);
INSERT INTO app_events (user_id, created_at, kind, title, body, payload)
SELECT md5((r.g % 20000)::text)::uuid,
       timestamptz '2026-01-01' + random() * interval '300 days',
       (ARRAY['signup','login','purchase','refund','comment','upload','share','logout'])
         [1 + floor(random() * 8)::int],
       array_to_string((string_to_array(p1.p, ' '))[1:6], ' '),
       p2.p || ' ' || p3.p || ' ' || p1.p,
       jsonb_build_object('ip', '10.' || (r.g % 250) || '.' || floor(random() * 250)::int || '.7',
                          'score', round((random() * 100)::numeric, 2),
                          'agent', 'Mozilla/5.0 (' || (r.g % 37) || ')')
FROM (SELECT g, floor(random() * 20000)::int AS k1, floor(random() * 20000)::int AS k2,
             floor(random() * 20000)::int AS k3
      FROM generate_series(1, :rows) g) r
JOIN phrases p1 ON p1.k = r.k1
JOIN phrases p2 ON p2.k = r.k2
JOIN phrases p3 ON p3.k = r.k3;
DROP TABLE picks, phrases, vocab;
"""


@dataclass
class Measure:
    seconds: float
    peak_rss_mb: float


def measure(argv: list[str], env: dict[str, str]) -> Measure:
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{argv} failed ({proc.returncode}): {err}")
    return Measure(round(seconds, 2), round(usage.ru_maxrss / 1024, 1))


def load(cluster: Cluster, dataset: str, rows: int) -> None:
    cluster.psql(f'CREATE DATABASE "{dataset}"')
    if dataset.startswith("pgbench"):
        scale = dataset.removeprefix("pgbench")
        subprocess.run(
            [str(cluster.bindir / "pgbench"), "-i", "-q", "-s", scale, dataset],
            env=cluster.env(),
            check=True,
            capture_output=True,
        )
    else:
        cluster.psql(REALISTIC_SQL.replace(":rows", str(rows)), dbname=dataset)
    cluster.psql("VACUUM ANALYZE", dbname=dataset)


def bench_dataset(cluster: Cluster, dataset: str, work: Path, rounds: int) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "SUPABASE_"))}
    env.update(cluster.env(dbname=dataset))
    pg_dump = cluster.bindir / "pg_dump"
    out = work / f"{dataset}.sql.gz"
    baseline = measure(["sh", "-c", f'"{pg_dump}" | gzip -9 > "{out}" && gzip -t "{out}"'], env)
    bare = measure(["sh", "-c", f'"{pg_dump}" > /dev/null'], env)
    raw = int(
        subprocess.run(
            ["sh", "-c", f'gzip -dc "{out}" | wc -c'], capture_output=True, text=True, check=True
        ).stdout
    )
    dl_env = {
        **env,
        "SUPABASE_DB_HOST": str(cluster.socket_dir),
        "SUPABASE_DB_PORT": str(cluster.port),
        "SUPABASE_DB_USER": cluster.superuser,
        "SUPABASE_DB_NAME": dataset,
        "DUMPLEDGER_PG_BINDIR": str(cluster.bindir),
    }
    dl_env["DUMPLEDGER_CACHE_DIR"] = str(work / "settings-cache")
    cli = [sys.executable, "-m", "cli"]

    def backup_into_catalog(name: str, codec: str) -> Measure:
        e = {**dl_env, "DUMPLEDGER_BACKUP_DIR": str(work / name), "DUMPLEDGER_CODEC": codec}
        subprocess.run([*cli, "list"], env=e, capture_output=True, check=True)  # the catalog
        return measure([*cli, "backup", "--type", "nightly"], e)

    results: dict[str, object] = {
        "dataset": dataset,
        "raw_mb": round(raw / 2**20, 1),
        "gzip9_ratio": round(raw / out.stat().st_size, 2),
    }
    for codec in ("gzip", "zstd"):
        bdir = work / f"backups-{dataset}-{codec}"
        e = {**dl_env, "DUMPLEDGER_BACKUP_DIR": str(bdir), "DUMPLEDGER_CODEC": codec}
        first = measure([*cli, "backup", "--type", "nightly"], e)
        store_bytes = du(bdir / "store")
        second = measure([*cli, "backup", "--type", "morning"], e)
        results[codec] = {
            "first": asdict(first),
            "second": asdict(second),
            "stored_mb": round(store_bytes / 2**20, 2),
            "second_added_bytes": du(bdir / "store") - store_bytes,
        }
    results["baseline"] = asdict(baseline)
    results["bare_pg_dump"] = asdict(bare)
    gz, zs = results["gzip"], results["zstd"]
    assert isinstance(gz, dict) and isinstance(zs, dict)
    results["first_ratio_gzip_vs_baseline"] = round(gz["first"]["seconds"] / baseline.seconds, 2)
    results["first_ratio_zstd_vs_bare_dump"] = round(zs["first"]["seconds"] / bare.seconds, 2)
    gzip_ratios, zstd_ratios, gzip_runs, zstd_runs = [], [], [], []
    for n in range(1, rounds + 1):  # the same four commands, alternating
        base = measure(["sh", "-c", f'"{pg_dump}" | gzip -9 > "{out}" && gzip -t "{out}"'], env)
        gzip_run = backup_into_catalog(f"r{n}-{dataset}-gzip", "gzip")
        dump_only = measure(["sh", "-c", f'"{pg_dump}" > /dev/null'], env)
        zstd_run = backup_into_catalog(f"r{n}-{dataset}-zstd", "zstd")
        gzip_runs.append(asdict(gzip_run))
        zstd_runs.append(asdict(zstd_run))
        gzip_ratios.append(round(gzip_run.seconds / base.seconds, 2))
        zstd_ratios.append(round(zstd_run.seconds / dump_only.seconds, 2))
    results["gzip_into_catalog"] = gzip_runs
    results["zstd_into_catalog"] = zstd_runs
    results["ratios_gzip_vs_baseline"] = gzip_ratios
    results["ratios_zstd_vs_bare_dump"] = zstd_ratios
    results["ratio_gzip_vs_baseline"] = statistics.median(gzip_ratios)
    results["ratio_zstd_vs_bare_dump"] = statistics.median(zstd_ratios)
    return results


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="pgbench10,pgbench50,realistic")
    parser.add_argument("--realistic-rows", type=int, default=1_000_000)
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating rounds; the ratios are medians"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dumpledger-bench-"))
    cluster = Cluster.create("postgres").start()
    all_results = []
    try:
        for dataset in args.datasets.split(","):
            load(cluster, dataset, args.realistic_rows)
            res = bench_dataset(cluster, dataset, work, args.rounds)
            print(json.dumps(res), flush=True)
            all_results.append(res)
    finally:
        cluster.destroy()
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(all_results, indent=2) + "\n")


if __name__ == "__main__":
    main()

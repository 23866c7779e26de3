"""Benchmark: `dumpledger restore` against `gunzip -c | psql -1` and `pg_restore -j2`.

Run by hand (never in the tests), on a throwaway cluster it starts itself:

    .venv/bin/python bench/bench_restore.py                     # pgbench scale 50, 2 rounds
    .venv/bin/python bench/bench_restore.py --dataset pgbench10 --rounds 1

One backup (`--type manual`: full plain SQL, globals and a custom-format dump) is restored into
a new database by each contender, in alternating order, `--rounds` times; the best time counts.
- baseline plain: createdb && gunzip -c f.sql.gz | psql -1 -v ON_ERROR_STOP=1
- dumpledger restore NAME --target-db new --yes (verify, roles, scratch restore, properties, swap)
- baseline custom: createdb && pg_restore -j2 -d new f.dump
- dumpledger restore NAME --artifact custom -j 2 --target-db new --yes
- dumpledger restore NAME --yes over the live database: adds the pre-restore safety backup
Both baselines read files pg_dump wrote in the same run from the same database.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_backup import Measure, load, measure

from pgtools.cluster import Cluster


def contenders(cluster: Cluster, dataset: str, work: Path) -> dict[str, list[str]]:
    """Each contender restores into the database named by the last argument's `{db}`."""
    b = cluster.bindir
    plain, custom = work / f"{dataset}.sql.gz", work / f"{dataset}.dump"
    cli = [sys.executable, "-m", "cli"]
    return {
        "baseline_plain": [
            "sh",
            "-c",
            f'"{b}/createdb" {{db}} && gunzip -c "{plain}" '
            f'| "{b}/psql" -X -q -1 -v ON_ERROR_STOP=1 -d {{db}} > /dev/null',
        ],
        "dumpledger_plain": [*cli, "restore", "{name}", "--target-db", "{db}", "--yes"],
        "baseline_custom": [
            "sh",
            "-c",
            f'"{b}/createdb" {{db}} && "{b}/pg_restore" -j2 -d {{db}} "{custom}"',
        ],
        "dumpledger_custom": [
            *cli,
            *("restore", "{name}", "--artifact", "custom", "-j", "2"),
            *("--target-db", "{db}", "--yes"),
        ],
    }


def bench(cluster: Cluster, dataset: str, rounds: int, work: Path) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "SUPABASE_"))}
    env.update(cluster.env(dbname=dataset))
    dl_env = {
        **env,
        "SUPABASE_DB_HOST": str(cluster.socket_dir),
        "SUPABASE_DB_PORT": str(cluster.port),
        "SUPABASE_DB_USER": cluster.superuser,
        "SUPABASE_DB_NAME": dataset,
        "DUMPLEDGER_PG_BINDIR": str(cluster.bindir),
        "DUMPLEDGER_BACKUP_DIR": str(work / "backups"),
    }
    pg_dump = cluster.bindir / "pg_dump"
    subprocess.run(
        ["sh", "-c", f'"{pg_dump}" | gzip -9 > "{work}/{dataset}.sql.gz"'], env=env, check=True
    )
    subprocess.run([str(pg_dump), "-Fc", "-f", f"{work}/{dataset}.dump"], env=env, check=True)
    made = subprocess.run(
        [sys.executable, "-m", "cli", "backup", "bench", "--type", "manual", "--json"],
        env=dl_env,
        check=True,
        capture_output=True,
        text=True,
    )
    name = json.loads(made.stdout)["name"]
    best: dict[str, Measure] = {}
    for r in range(rounds):
        for label, argv in contenders(cluster, dataset, work).items():
            db = f"r_{label}_{r}"
            m = measure([a.replace("{db}", db).replace("{name}", name) for a in argv], dl_env)
            cluster.psql(f'DROP DATABASE "{db}"')
            if label not in best or m.seconds < best[label].seconds:
                best[label] = m
            print(f"  round {r + 1} {label}: {m.seconds}s", file=sys.stderr, flush=True)
    over_live = measure(
        [sys.executable, "-m", "cli", "restore", name, "--yes"], {**dl_env, "LC_ALL": "C.UTF-8"}
    )
    res: dict[str, object] = {"dataset": dataset, "backup": name, "rounds": rounds}
    res.update({k: asdict(v) for k, v in best.items()})
    res["dumpledger_plain_over_live_db"] = asdict(over_live)
    base = best["baseline_plain"].seconds
    res["ratio_plain_vs_baseline_plain"] = round(best["dumpledger_plain"].seconds / base, 2)
    res["ratio_custom_vs_baseline_plain"] = round(best["dumpledger_custom"].seconds / base, 2)
    res["ratio_custom_vs_pg_restore_j2"] = round(
        best["dumpledger_custom"].seconds / best["baseline_custom"].seconds, 2
    )
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="pgbench50")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dumpledger-bench-restore-"))
    cluster = Cluster.create("postgres").start()
    try:
        load(cluster, args.dataset, 0)
        res = bench(cluster, args.dataset, args.rounds, work)
    finally:
        cluster.destroy()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(res, indent=2), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()

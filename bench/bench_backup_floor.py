"""Benchmark: where a later backup's time goes, against the bare pg_dump (issue 17's target).

Run by hand (never in the tests), on a throwaway cluster it starts itself:

    .venv/bin/python bench/bench_backup_floor.py                 # ~130 MB dump, 5 repeats
    .venv/bin/python bench/bench_backup_floor.py --repeats 3 --json /tmp/floor.json

bench_churn.py's database and its 6-hour slice of writes. After a first backup, each repeat
applies one slice and measures, on the same database state:
- bare:    pg_dump > /dev/null: wall seconds, and the CPU seconds of pg_dump and of the
           server process that serves it (the backend's /proc stat, by application_name)
- start:   the interpreter and the imports a `dumpledger backup` makes before it dumps
           (`python -c "import cli.main, usecases.backup.run"`)
- put:     the chunked store's put alone, of that state's dump read from a file, into a copy
           of the store (the dump phase without pg_dump: read, hash, cut, look up, compress
           the new chunks, pack, index, manifest, pack re-hash)
- backup:  `dumpledger backup --type nightly`, a real process: wall and CPU seconds
           (itself and its children: pg_dump)
- sha, chunks: the least any store and any chunked store do with the dump, in a process started
           (and its imports made) before the clock starts: pg_dump's output read (through a
           pipe widened as the backup's is) and hashed whole (sha), and also cut and each chunk
           hashed, as the put does (chunks); nothing is stored.
- resident: after one more slice of writes, the same backup run by a process that had
           imported dumpledger already (`cli.main.main([...])` timed after the imports): what
           a later backup would take in a resident process (a scheduler that stays running)
The floor printed at the end is what 2 cores allow at best: the start, then the dump phase's
CPU (server + pg_dump + put) spread over both cores; against 1.5x the bare dump.

`--first-levels 9,6`: before that, first backups of the same database into fresh backup
directories, one per gzip level (`compression.level`; "default": none set), interleaved,
`--repeats` times each: seconds and stored bytes. With `--today DIR` (a checkout of dumpledger
before chunking, e.g. `git worktree add /tmp/today ecc458e`) its first backups are interleaved
with them as "today" (issue 17: a first backup no slower than before chunking).

`--against DIR` (another checkout of dumpledger, e.g. `git worktree add /tmp/before HEAD~1`):
each repeat also takes that checkout's later backup of the same database state, into a backup
directory of its own with the same history, in alternating order with this checkout's
("against"; and both backups' dump phase, `durations.full` of their metadata).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_churn import CHURN, compile_trees, emit, setup, throwaway_cluster

from pgtools.cluster import Cluster

ROOT = Path(__file__).resolve().parent.parent

TICK = os.sysconf("SC_CLK_TCK")


def backend_cpu(pid: int) -> float | None:
    """utime + stime of a process, in seconds (None once it has gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


class BackendWatch:
    """The CPU seconds of the server backend of the connection named `app`: sampled until it
    ends (a backend's /proc entry goes with it)."""

    def __init__(self, cluster: Cluster, app: str) -> None:
        self.cluster, self.app, self.cpu = cluster, app, 0.0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self) -> None:
        sql = f"SELECT pid FROM pg_stat_activity WHERE application_name = '{self.app}'"
        pid = None
        while not self.stop.is_set() and pid is None:
            out = self.cluster.psql(sql).strip()
            pid = int(out) if out else None
        while pid is not None and not self.stop.is_set():
            now = backend_cpu(pid)
            if now is None:
                break
            self.cpu = now
            time.sleep(0.01)

    def done(self) -> float:
        self.stop.set()
        self.thread.join()
        return self.cpu


def newest_dump_seconds(bdir: Path) -> float:
    """The newest backup's dump phase (metadata durations.full): pg_dump and the put."""
    newest = max((bdir / "database").glob("*_metadata.json"), key=lambda p: p.stat().st_mtime)
    return float(json.loads(newest.read_text())["durations"]["full"])


def timed(argv: list[str], env: dict[str, str], cwd: Path = ROOT) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process and its children)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv} failed")
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime


PUT = """
import json, resource, shutil, sys, time
from pathlib import Path
from store import Codec, LocalStore
src, copy, dump = map(Path, sys.argv[1:4])
shutil.copytree(src, copy, symlinks=True)
store = LocalStore(copy)
def pieces():
    with dump.open("rb") as fh:
        while piece := fh.read(1 << 16):
            yield piece
r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
out = store.chunks.put(pieces(), Codec.GZIP, chunk_codec=Codec.GZIP, level=None, threads=2,
                       progress=None)
t1, r1 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
cpu = r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime
print(json.dumps({"wall": t1 - t0, "cpu": cpu, "new_chunks": out.new_chunks,
                  "chunks": out.chunks}))
"""


PASS = """
import hashlib, json, subprocess, sys, time
from pgtools.pipes import widen
from store.chunked import chunker
from store.chunked.writer import _batches
mode, pg_dump = sys.argv[1:3]
t0 = time.perf_counter()
proc = subprocess.Popen([pg_dump], stdout=subprocess.PIPE)
widen(proc.stdout)  # as the backup's pg_dump
def pieces():
    whole = hashlib.sha256()
    while piece := proc.stdout.read1(1 << 20):
        whole.update(piece)
        yield piece
for _ in (pieces() if mode == "sha" else _batches(chunker.cut(pieces()))):
    pass
if proc.wait() != 0:
    raise SystemExit("pg_dump failed")
print(json.dumps({"wall": time.perf_counter() - t0}))
"""


RESIDENT = """
import json, time
import cli.main, usecases.backup.run
t0 = time.perf_counter()
code = cli.main.main(["backup", "--type", "nightly"])
print(json.dumps({"wall": time.perf_counter() - t0, "code": code}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=175_000, help="~130 MB of plain dump")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--first-levels", default="", help="e.g. default,9,6: first backups per level"
    )
    parser.add_argument("--today", type=Path, help="a checkout before chunking: its first backups")
    parser.add_argument(
        "--against", type=Path, help="another checkout: its later backups, interleaved"
    )
    args = parser.parse_args()
    levels = [x for x in args.first_levels.split(",") if x] + (["today"] if args.today else [])
    python = sys.executable
    with throwaway_cluster("dumpledger-floor-") as (cluster, work):
        raw = setup(cluster, args.rows)
        compile_trees(ROOT, args.today, args.against)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PG", "SUPABASE_")) and k != "PYTHONDONTWRITEBYTECODE"
        }
        env.update(cluster.env(dbname="churn"))
        dl_env = env | {
            "SUPABASE_DB_HOST": str(cluster.socket_dir),
            "SUPABASE_DB_PORT": str(cluster.port),
            "SUPABASE_DB_USER": cluster.superuser,
            "SUPABASE_DB_NAME": "churn",
            "DUMPLEDGER_PG_BINDIR": str(cluster.bindir),
            "DUMPLEDGER_CACHE_DIR": str(work / "settings-cache"),
            "DUMPLEDGER_BACKUP_DIR": str(work / "backups"),
            "DUMPLEDGER_CODEC": "gzip",
            "PYTHONPATH": str(ROOT),
        }
        backup = [python, "-m", "cli", "backup", "--type", "nightly"]
        firsts: dict[str, list[tuple[float, int]]] = {lvl: [] for lvl in levels}
        for n in range(args.repeats if levels else 0):
            for lvl in levels:
                bdir = work / f"first-{lvl}-{n}"
                bdir.mkdir()
                if lvl not in ("default", "today"):
                    (bdir / "backup-config.json").write_text(
                        json.dumps({"compression": {"level": int(lvl)}})
                    )
                env1 = dl_env | {"DUMPLEDGER_BACKUP_DIR": str(bdir)}
                root = ROOT
                if lvl == "today":
                    root = args.today.resolve()
                    env1 |= {"PYTHONPATH": str(root)}
                wall, _ = timed(backup, env1, cwd=root)
                stored = sum(p.stat().st_size for p in (bdir / "store").rglob("*") if p.is_file())
                firsts[lvl].append((round(wall, 2), stored))
                shutil.rmtree(bdir)
            print(json.dumps(firsts), flush=True)
        first_medians = {
            lvl: statistics.median(w for w, _ in runs) for lvl, runs in firsts.items() if runs
        }
        first = timed(backup, dl_env)
        other_env = None
        if args.against is not None:
            other = args.against.resolve()
            other_env = dl_env | {
                "DUMPLEDGER_BACKUP_DIR": str(work / "against"),
                "PYTHONPATH": str(other),
            }
            shutil.copytree(work / "backups", work / "against", symlinks=True)
        print(f"plain dump {raw / 2**20:.1f} MiB; first backup {first[0]:.2f} s", flush=True)
        pg_dump = str(cluster.bindir / "pg_dump")
        rows: list[dict[str, float]] = []
        for _ in range(args.repeats):
            cluster.psql(CHURN, dbname="churn")
            dump = work / "state.sql"
            with dump.open("wb") as fh:
                subprocess.run([pg_dump], env=env, stdout=fh, check=True)
            row: dict[str, float] = {}
            watch = BackendWatch(cluster, "floor-bare")
            bare_env = env | {"PGAPPNAME": "floor-bare"}
            row["bare_wall"], row["bare_pg_dump_cpu"] = timed(
                ["sh", "-c", f'"{pg_dump}" > /dev/null'], bare_env
            )
            row["bare_server_cpu"] = watch.done()
            row["start_wall"], row["start_cpu"] = timed(
                [python, "-c", "import cli.main, usecases.backup.run"], dl_env
            )
            for mode in ("sha", "chunks"):
                done = json.loads(
                    subprocess.run(
                        [python, "-c", PASS, mode, pg_dump],
                        env=dl_env | {"PGAPPNAME": f"floor-{mode}"},
                        cwd=ROOT,
                        capture_output=True,
                        text=True,
                        check=True,
                    ).stdout
                )
                row[f"{mode}_wall"] = done["wall"]
            copy = work / "put-store"
            shutil.rmtree(copy, ignore_errors=True)
            put = subprocess.run(
                [python, "-c", PUT, str(work / "backups" / "store"), str(copy), str(dump)],
                env=dl_env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            )
            done = json.loads(put.stdout)
            row["put_wall"], row["put_cpu"] = done["wall"], done["cpu"]
            row["new_chunks_pct"] = 100 * done["new_chunks"] / done["chunks"]
            shutil.rmtree(copy)
            if other_env is None:
                row["backup_wall"], row["backup_cpu"] = timed(backup, dl_env)
            else:  # this checkout first in odd repeats, the other one first in even ones
                order = [(dl_env, ROOT, "backup"), (other_env, other, "against")]
                for env_i, root_i, key in order if len(rows) % 2 == 0 else order[::-1]:
                    row[f"{key}_wall"], row[f"{key}_cpu"] = timed(backup, env_i, cwd=root_i)
                    row[f"{key}_dump"] = newest_dump_seconds(Path(env_i["DUMPLEDGER_BACKUP_DIR"]))
            cluster.psql(CHURN, dbname="churn")
            resident = subprocess.run(
                [python, "-c", RESIDENT],
                env=dl_env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            )
            done = json.loads(resident.stdout.splitlines()[-1])
            if done["code"] != 0:
                raise SystemExit(f"the resident backup failed: {resident.stderr}")
            row["resident_wall"] = done["wall"]
            if other_env is not None:  # the same history in both directories
                timed(backup, other_env, cwd=other)
            rows.append({k: round(v, 3) for k, v in row.items()})
            print(json.dumps(rows[-1]), flush=True)
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        dump_cpu = med["bare_server_cpu"] + med["bare_pg_dump_cpu"] + med["put_cpu"]
        floor = med["start_wall"] + max(med["bare_wall"], dump_cpu / 2)
        result = {
            "plain_dump_mib": round(raw / 2**20, 1),
            "first_backup_seconds": round(first[0], 2),
            "first_backups_by_level": firsts,
            "first_backup_medians": first_medians,
            "repeats": rows,
            "median": {k: round(v, 3) for k, v in med.items()},
            "floor_seconds": round(floor, 3),
            "floor_over_bare": round(floor / med["bare_wall"], 2),
            "backup_over_bare": round(med["backup_wall"] / med["bare_wall"], 2),
            "resident_over_bare": round(med["resident_wall"] / med["bare_wall"], 2),
            "sha_over_bare": round(med["sha_wall"] / med["bare_wall"], 2),
            "chunks_over_bare": round(med["chunks_wall"] / med["bare_wall"], 2),
            "against_over_bare": (
                round(med["against_wall"] / med["bare_wall"], 2) if "against_wall" in med else None
            ),
            "target_seconds": round(1.5 * med["bare_wall"], 3),
            "loadavg": os.getloadavg(),
        }
    emit(result, args.json)


if __name__ == "__main__":
    main()

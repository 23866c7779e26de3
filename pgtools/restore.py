"""Restore building blocks: server facts and the psql / pg_restore runners. The globals'
text is pgtools.globalsql; creating, dropping and swapping databases is pgtools.databases.

Whole-database restores never write into the target: they fill a fresh scratch database and
swap it in with two renames in one transaction, so the target is either untouched or replaced.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from pgtools.databases import client_sessions, maintenance_target
from pgtools.errors import RestoreError
from pgtools.lockwatch import RestoreLockTimeout, watched
from pgtools.psqlscript import (
    new_restrict_key,
    psql_restricts,
    transaction_script,
    without_own_restrict,
)
from pgtools.session import connect
from pgtools.target import DbTarget


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerFacts:
    server_version: str
    server_major: int
    is_superuser: bool
    roles: frozenset[str]
    superusers: frozenset[str]
    target_exists: bool
    other_sessions: int = 0
    tables_by_schema: dict[str, int] = field(default_factory=dict)
    leftovers: tuple[str, ...] = ()  # scratch databases of interrupted restores and drills


# Scratch databases a restore or drill makes, that nobody is connected to: what a killed one
# left behind (each a full copy of a database). Only reported; dropping is the user's call.
LEFTOVERS_SQL = r"""
SELECT d.datname FROM pg_database d
WHERE (d.datname LIKE '%\_dlrestore\_%' OR d.datname LIKE 'dumpledger\_drill\_%')
  AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datid = d.oid)
ORDER BY 1
"""


def leftover_scratch_databases(conn: psycopg.Connection[Any]) -> tuple[str, ...]:
    return tuple(str(r[0]) for r in conn.execute(LEFTOVERS_SQL).fetchall())


def server_facts(target: DbTarget) -> ServerFacts:
    with connect(maintenance_target(target), autocommit=True) as conn:
        version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
        is_super = bool(
            conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]  # type: ignore[index]
        )
        roles = conn.execute("SELECT rolname, rolsuper FROM pg_roles").fetchall()
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (target.dbname,)
        ).fetchone()
        sessions = client_sessions(conn, target.dbname)
        major = conn.info.server_version // 10000
        leftovers = leftover_scratch_databases(conn)
    tables: dict[str, int] = {}
    if exists:
        with connect(target, autocommit=True) as conn:
            for schema, n in conn.execute(
                "SELECT n.nspname, count(c.oid) FROM pg_namespace n "
                "LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relkind IN ('r', 'p') "
                "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') "
                "AND n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast_temp%' "
                "GROUP BY 1 ORDER BY 1"
            ):
                tables[str(schema)] = int(n)
    return ServerFacts(
        server_version=version,
        server_major=major,
        is_superuser=is_super,
        roles=frozenset(str(r[0]) for r in roles),
        superusers=frozenset(str(r[0]) for r in roles if r[1]),
        target_exists=exists is not None,
        other_sessions=sessions,
        tables_by_schema=tables,
        leftovers=leftovers,
    )


def run_psql(
    bindir: Path,
    target: DbTarget,
    chunks: Iterable[bytes],
    *,
    prelude: str = "",
    postlude: str = "",
    meta_commands: bool = False,
    lock_wait_timeout: float = 0,
) -> None:
    """Feed SQL to psql with ON_ERROR_STOP as one explicit transaction that only the last
    statement commits (pgtools.psqlscript): all of it applies, or none, also when the input
    ends early. Meta-commands are refused by psql's restricted mode unless `meta_commands`.
    `lock_wait_timeout` (seconds; 0: wait for ever): a lock request that waits longer is
    cancelled and RestoreLockTimeout names who held the lock (pgtools.lockwatch)."""
    argv = [str(bindir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-v", "AUTOCOMMIT=off"]
    argv += ["-f", "-"]
    key = None if meta_commands or not psql_restricts(bindir) else new_restrict_key()
    body = chunks if key is None else without_own_restrict(chunks)
    script = transaction_script(body, prelude=prelude, postlude=postlude, restrict_key=key)
    with watched(target, lock_wait_timeout) as watch:
        env = target.env(dict(os.environ))
        if watch is not None:
            env["PGAPPNAME"] = watch.app_name
        try:
            _feed(argv, env, script, "psql")
        except RestoreError:
            if watch is not None and watch.fired:
                raise RestoreLockTimeout(watch.fired) from None
            raise


def _feed(argv: list[str], env: dict[str, str], chunks: Iterable[bytes], what: str) -> None:
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdin is not None and proc.stderr is not None
    errors: list[bytes] = []
    reader = threading.Thread(target=lambda: errors.extend(proc.stderr.readlines()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        for chunk in chunks:
            proc.stdin.write(chunk)
        proc.stdin.close()
    except BrokenPipeError:
        pass  # psql stopped at an error: its exit status and stderr say which
    except BaseException:
        proc.kill()
        raise
    finally:
        code = proc.wait()
        reader.join()
        proc.stderr.close()
    if code != 0:
        raise RestoreError(f"{what} stopped: {first_error(errors)}")


def first_error(lines: list[bytes]) -> str:
    text = [ln.decode("utf-8", "replace").strip() for ln in lines]
    hits = [t for t in text if "ERROR" in t or "FATAL" in t or "error:" in t]
    return (hits or text or ["no message"])[0]


def run_pg_restore(
    bindir: Path,
    target: DbTarget,
    dump: Path,
    *,
    jobs: int = 1,
    schemas: Iterable[str] = (),
    tables: Iterable[str] = (),
    clean: bool = False,
) -> None:
    """pg_restore into target.dbname; with one job, in a single transaction."""
    argv = [
        str(bindir / "pg_restore"),
        "--exit-on-error",
        "--no-password",
        f"--dbname={target.dbname}",
    ]
    if jobs > 1:
        argv.append(f"--jobs={jobs}")
    else:
        argv.append("--single-transaction")
    if clean:
        argv += ["--clean", "--if-exists"]
    argv += [f"--schema={s}" for s in schemas]
    argv += [f"--table={t}" for t in tables]
    argv.append(str(dump))
    done = subprocess.run(argv, env=target.env(dict(os.environ)), capture_output=True, check=False)
    if done.returncode != 0:
        raise RestoreError(f"pg_restore stopped: {first_error(done.stderr.splitlines())}")


def table_data_script(
    bindir: Path, dump: Path, tables: Iterable[tuple[str, str]]
) -> Iterator[bytes]:
    """The data of the given (schema, table)s from a custom-format dump, as SQL for psql.

    Triggers are disabled while the rows load, so the rows come back exactly as dumped. Each
    table's script comes without pg_restore's own `\\restrict` pair (the restore runs under
    a key of its own)."""
    for schema, table in tables:
        argv = [
            str(bindir / "pg_restore"),
            "--data-only",
            "--disable-triggers",
            f"--schema={schema}",
            f"--table={table}",
            "--file=-",
            str(dump),
        ]
        yield from without_own_restrict(script_of(argv))


def script_of(argv: list[str]) -> Iterator[bytes]:
    """pg_restore's SQL output; raises after the last chunk if pg_restore failed."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        while chunk := proc.stdout.read(1 << 20):
            yield chunk
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        code = proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    if code != 0:
        raise RestoreError(f"pg_restore stopped: {first_error(err.splitlines())}")


def custom_dump_listing(bindir: Path, dump: Path, schemas: Iterable[str] = ()) -> list[str]:
    """pg_restore -l: the table of contents (also proves the file is a readable archive); with
    `schemas`, only the entries pg_restore --schema would restore."""
    argv = [str(bindir / "pg_restore"), "--list", *(f"--schema={s}" for s in schemas), str(dump)]
    done = subprocess.run(argv, capture_output=True, check=False)
    if done.returncode != 0:
        raise RestoreError(
            f"{dump} is not a readable custom-format dump: {first_error(done.stderr.splitlines())}"
        )
    return done.stdout.decode("utf-8", "replace").splitlines()

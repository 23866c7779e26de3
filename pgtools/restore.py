"""Restore building blocks: server facts, role-tolerant globals, psql / pg_restore runners,
database-level properties, and the atomic swap of a restored database into place.

Whole-database restores never write into the target: they fill a fresh scratch database and
swap it in with two renames in one transaction, so the target is either untouched or replaced.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from pgtools.errors import PgError
from pgtools.psqlscript import (
    new_restrict_key,
    psql_restricts,
    transaction_script,
    without_own_restrict,
)
from pgtools.session import connect
from pgtools.target import DbTarget

TEMPLATE_DBS = ("template0", "template1")
ROLE_LINE = re.compile(r'^(?:CREATE|ALTER) ROLE ("(?:[^"]|"")+"|[^\s;]+)[\s;]')
GRANTED_BY = re.compile(r"\s+GRANTED BY\s+(\"(?:[^\"]|\"\")+\"|\S+)\s*;\s*$")
EVENT_TRIGGER_OWNER = re.compile(r'^ALTER EVENT TRIGGER .* OWNER TO ("(?:[^"]|"")+"|[^\s;]+);\s*$')
LIST_GUCS = (
    "search_path",
    "temp_tablespaces",
    "session_preload_libraries",
    "local_preload_libraries",
    "shared_preload_libraries",
)


class RestoreError(PgError):
    """psql or pg_restore failed, or the swap could not be done; the target is unchanged."""


def maintenance_target(target: DbTarget) -> DbTarget:
    """Where to connect for CREATE/ALTER/DROP DATABASE: never the database being replaced."""
    return replace(target, dbname="template1" if target.dbname == "postgres" else "postgres")


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
        sessions = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (target.dbname,),
        ).fetchone()
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
        other_sessions=int(sessions[0]) if sessions else 0,
        tables_by_schema=tables,
        leftovers=leftovers,
    )


def unquote_ident(text: str) -> str:
    if text.startswith('"') and text.endswith('"'):
        return text[1:-1].replace('""', '"')
    return text


def globals_roles(globals_sql: str) -> list[str]:
    """The roles a pg_dumpall --globals-only dump creates, in order."""
    return [
        unquote_ident(m.group(1))
        for line in globals_sql.splitlines()
        if line.startswith("CREATE ROLE ") and (m := ROLE_LINE.match(line))
    ]


def tolerant_globals(
    globals_sql: str, existing: Iterable[str], *, keep_grantors: bool = False
) -> str:
    """The globals dump, minus every statement about a role that already exists.

    Existing roles are left exactly as they are (attributes, passwords, settings); missing
    ones are created as the backup had them. Memberships keep their grantor (`GRANTED BY`)
    with `keep_grantors` (a superuser restores); otherwise the restoring user grants them
    (before PostgreSQL 16 only a superuser may name another grantor).
    """
    have = set(existing)
    out = []
    for line in globals_sql.splitlines():
        m = ROLE_LINE.match(line)
        if m and unquote_ident(m.group(1)) in have:
            out.append(f"-- dumpledger: role exists, left as it is: {line}")
            continue
        if line.startswith("GRANT ") and " TO " in line and not keep_grantors:
            line = GRANTED_BY.sub(";", line)
        out.append(line)
    return "\n".join(out) + "\n"


def event_trigger_owners_in(lines: Iterable[str]) -> set[str]:
    owners = set()
    for line in lines:
        if m := EVENT_TRIGGER_OWNER.match(line):
            owners.add(unquote_ident(m.group(1)))
    return owners


def promotion_sql(roles: Iterable[str], superusers: Iterable[str]) -> tuple[str, str]:
    """Supabase's event triggers belong to `postgres`, a NOSUPERUSER role, yet only a superuser
    may own an event trigger. Inside the restore's single transaction such owners are made
    superuser and demoted again before COMMIT, so no other session ever sees the promotion."""
    supers = set(superusers)
    needed = sorted(r for r in roles if r not in supers)
    up = "".join(f"ALTER ROLE {_ident(r)} SUPERUSER;\n" for r in needed)
    down = "".join(f"ALTER ROLE {_ident(r)} NOSUPERUSER;\n" for r in needed)
    return up, down


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _guc_value(name: str, value: str) -> str:
    if name.lower() in LIST_GUCS:
        parts = [p.strip() for p in re.findall(r'"(?:[^"]|"")*"|[^,]+', value)]
        return ", ".join(_literal(unquote_ident(p)) for p in parts if p)
    return _literal(value)


def properties_sql(dbname: str, props: dict[str, Any]) -> list[str]:
    """Statements that give database `dbname` the recorded owner, comment, grants, settings."""
    db = _ident(dbname)
    stmts = []
    if props.get("owner"):
        stmts.append(f"ALTER DATABASE {db} OWNER TO {_ident(props['owner'])}")
    if props.get("comment") is not None:
        stmts.append(f"COMMENT ON DATABASE {db} IS {_literal(props['comment'])}")
    acl = props.get("acl")
    if acl is not None:
        stmts.append(f"REVOKE ALL ON DATABASE {db} FROM PUBLIC")
        if props.get("owner"):
            stmts.append(f"REVOKE ALL ON DATABASE {db} FROM {_ident(props['owner'])}")
        for grantee, privilege, grantable in acl:
            who = "PUBLIC" if grantee == "PUBLIC" else _ident(grantee)
            option = " WITH GRANT OPTION" if grantable else ""
            stmts.append(f"GRANT {privilege} ON DATABASE {db} TO {who}{option}")
    for setting in props.get("settings") or []:
        name, _, value = setting.partition("=")
        stmts.append(f"ALTER DATABASE {db} SET {_ident(name)} TO {_guc_value(name, value)}")
    return stmts


def create_database(target: DbTarget, name: str, props: dict[str, Any] | None) -> None:
    """An empty database from template0 with the backup's encoding and locale."""
    parts = [f"CREATE DATABASE {_ident(name)} TEMPLATE template0"]
    if props:
        if props.get("encoding"):
            parts.append(f"ENCODING {_literal(props['encoding'])}")
        if props.get("collate"):
            parts.append(f"LC_COLLATE {_literal(props['collate'])}")
        if props.get("ctype"):
            parts.append(f"LC_CTYPE {_literal(props['ctype'])}")
    with connect(maintenance_target(target), autocommit=True) as conn:
        try:
            conn.execute(" ".join(parts))
        except psycopg.Error as exc:
            raise RestoreError(f"cannot create database {name}: {_pg_message(exc)}") from None


def drop_database(target: DbTarget, name: str) -> None:
    with connect(maintenance_target(target), autocommit=True) as conn:
        _terminate(conn, name)
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def apply_properties(target: DbTarget, dbname: str, props: dict[str, Any]) -> None:
    with connect(maintenance_target(target)) as conn:  # one transaction
        try:
            for stmt in properties_sql(dbname, props):
                conn.execute(stmt)
        except psycopg.Error as exc:
            raise RestoreError(
                f"cannot set the database's properties: {_pg_message(exc)}"
            ) from None


def swap_in(target: DbTarget, scratch: str, keep_as: str, *, terminate: bool) -> str | None:
    """Put `scratch` in place of target.dbname. Returns the name the old database is kept as.

    The old database stops taking connections, its sessions end (only with `terminate`), and
    both renames commit together: at no moment is there no database under the target's name
    once it had one, and on any error the old one is left in place, open again.
    """
    name = target.dbname
    with connect(maintenance_target(target), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            _rename(conn, scratch, name)
            return None
        conn.execute(
            sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(name))
        )
        try:
            others = _sessions(conn, name)
            if others and not terminate:
                raise RestoreError(
                    f"{others} other session(s) are connected to {name}; close them, or agree to "
                    "terminate them (answer the confirmation, or pass --yes)"
                )
            if others:
                _terminate(conn, name)
            with conn.transaction():
                _rename(conn, name, keep_as)
                _rename(conn, scratch, name)
        except BaseException:
            conn.execute(
                sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(name))
            )
            raise
        conn.execute(
            sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(keep_as))
        )
    return keep_as


def _rename(conn: psycopg.Connection[Any], old: str, new: str) -> None:
    try:
        conn.execute(
            sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                sql.Identifier(old), sql.Identifier(new)
            )
        )
    except psycopg.Error as exc:
        raise RestoreError(f"cannot rename database {old} to {new}: {_pg_message(exc)}") from None


def _sessions(conn: psycopg.Connection[Any], dbname: str) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
        (dbname,),
    ).fetchone()
    return int(row[0]) if row else 0


def _terminate(conn: psycopg.Connection[Any], dbname: str, wait_seconds: float = 10) -> None:
    conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = %s AND pid <> pg_backend_pid()",
        (dbname,),
    )
    deadline = time.monotonic() + wait_seconds
    while _sessions(conn, dbname) and time.monotonic() < deadline:
        time.sleep(0.05)


def _pg_message(exc: psycopg.Error) -> str:
    return " ".join(str(exc).split())


def run_psql(
    bindir: Path,
    target: DbTarget,
    chunks: Iterable[bytes],
    *,
    prelude: str = "",
    postlude: str = "",
    meta_commands: bool = False,
) -> None:
    """Feed SQL to psql with ON_ERROR_STOP as one explicit transaction that only the last
    statement commits (pgtools.psqlscript): all of it applies, or none, also when the input
    ends early. Meta-commands are refused by psql's restricted mode unless `meta_commands`."""
    argv = [str(bindir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-v", "AUTOCOMMIT=off"]
    argv += ["-f", "-"]
    key = None if meta_commands or not psql_restricts(bindir) else new_restrict_key()
    body = chunks if key is None else without_own_restrict(chunks)
    script = transaction_script(body, prelude=prelude, postlude=postlude, restrict_key=key)
    _feed(argv, target, script, "psql")


def _feed(argv: list[str], target: DbTarget, chunks: Iterable[bytes], what: str) -> None:
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=target.env(dict(os.environ)),
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
        raise RestoreError(f"{what} stopped: {_first_error(errors)}")


def _first_error(lines: list[bytes]) -> str:
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
        raise RestoreError(f"pg_restore stopped: {_first_error(done.stderr.splitlines())}")


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
        yield from without_own_restrict(_script_of(argv))


def _script_of(argv: list[str]) -> Iterator[bytes]:
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
        raise RestoreError(f"pg_restore stopped: {_first_error(err.splitlines())}")


def custom_dump_listing(bindir: Path, dump: Path, schemas: Iterable[str] = ()) -> list[str]:
    """pg_restore -l: the table of contents (also proves the file is a readable archive); with
    `schemas`, only the entries pg_restore --schema would restore."""
    argv = [str(bindir / "pg_restore"), "--list", *(f"--schema={s}" for s in schemas), str(dump)]
    done = subprocess.run(argv, capture_output=True, check=False)
    if done.returncode != 0:
        raise RestoreError(
            f"{dump} is not a readable custom-format dump: {_first_error(done.stderr.splitlines())}"
        )
    return done.stdout.decode("utf-8", "replace").splitlines()


def event_trigger_owners_in_listing(listing: Iterable[str]) -> set[str]:
    owners = set()
    for line in listing:
        if not line.startswith(";") and " EVENT TRIGGER " in line:
            owners.add(line.rsplit(" ", 1)[-1])
    return owners

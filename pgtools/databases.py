"""Database-level operations of a restore: create and drop, the recorded properties (owner,
comment, grants, settings), and the atomic swap of a restored database into place."""

from __future__ import annotations

import re
import time
from dataclasses import replace
from typing import Any

import psycopg
from psycopg import sql

from pgtools.errors import RestoreError
from pgtools.globalsql import ident, literal, unquote_ident
from pgtools.session import connect
from pgtools.target import DbTarget

TEMPLATE_DBS = ("template0", "template1")


LIST_GUCS = (
    "search_path",
    "temp_tablespaces",
    "session_preload_libraries",
    "local_preload_libraries",
    "shared_preload_libraries",
)


def maintenance_target(target: DbTarget) -> DbTarget:
    """Where to connect for CREATE/ALTER/DROP DATABASE: never the database being replaced."""
    return replace(target, dbname="template1" if target.dbname == "postgres" else "postgres")


def _guc_value(name: str, value: str) -> str:
    if name.lower() in LIST_GUCS:
        parts = [p.strip() for p in re.findall(r'"(?:[^"]|"")*"|[^,]+', value)]
        return ", ".join(literal(unquote_ident(p)) for p in parts if p)
    return literal(value)


def properties_sql(dbname: str, props: dict[str, Any]) -> list[str]:
    """Statements that give database `dbname` the recorded owner, comment, grants, settings."""
    db = ident(dbname)
    stmts = []
    if props.get("owner"):
        stmts.append(f"ALTER DATABASE {db} OWNER TO {ident(props['owner'])}")
    if props.get("comment") is not None:
        stmts.append(f"COMMENT ON DATABASE {db} IS {literal(props['comment'])}")
    acl = props.get("acl")
    if acl is not None:
        stmts.append(f"REVOKE ALL ON DATABASE {db} FROM PUBLIC")
        if props.get("owner"):
            stmts.append(f"REVOKE ALL ON DATABASE {db} FROM {ident(props['owner'])}")
        for grantee, privilege, grantable in acl:
            who = "PUBLIC" if grantee == "PUBLIC" else ident(grantee)
            option = " WITH GRANT OPTION" if grantable else ""
            stmts.append(f"GRANT {privilege} ON DATABASE {db} TO {who}{option}")
    for setting in props.get("settings") or []:
        name, _, value = setting.partition("=")
        stmts.append(f"ALTER DATABASE {db} SET {ident(name)} TO {_guc_value(name, value)}")
    return stmts


def create_database(target: DbTarget, name: str, props: dict[str, Any] | None) -> None:
    """An empty database from template0 with the backup's encoding and locale."""
    parts = [f"CREATE DATABASE {ident(name)} TEMPLATE template0"]
    if props:
        if props.get("encoding"):
            parts.append(f"ENCODING {literal(props['encoding'])}")
        if props.get("collate"):
            parts.append(f"LC_COLLATE {literal(props['collate'])}")
        if props.get("ctype"):
            parts.append(f"LC_CTYPE {literal(props['ctype'])}")
    with connect(maintenance_target(target), autocommit=True) as conn:
        try:
            conn.execute(" ".join(parts))
        except psycopg.Error as exc:
            raise RestoreError(f"cannot create database {name}: {pg_message(exc)}") from None


def drop_database(target: DbTarget, name: str) -> None:
    """Drop `name`, ending the sessions in it first (autovacuum's workers DROP ends itself)."""
    with connect(maintenance_target(target), autocommit=True) as conn:
        kept = _terminate(conn, name)
        if kept:
            raise RestoreError(f"cannot drop database {name}: {_kept_text(kept, target.user)}")
        try:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        except psycopg.Error as exc:
            raise RestoreError(f"cannot drop database {name}: {pg_message(exc)}") from None


def apply_properties(target: DbTarget, dbname: str, props: dict[str, Any]) -> None:
    with connect(maintenance_target(target)) as conn:  # one transaction
        try:
            for stmt in properties_sql(dbname, props):
                conn.execute(stmt)
        except psycopg.Error as exc:
            raise RestoreError(f"cannot set the database's properties: {pg_message(exc)}") from None


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
            others = client_sessions(conn, name)
            if others and not terminate:
                raise RestoreError(
                    f"{others} other session(s) are connected to {name}; close them, or agree to "
                    "terminate them (answer the confirmation, or pass --yes)"
                )
            if others:
                kept = _terminate(conn, name)
                if kept:
                    raise RestoreError(
                        f"cannot replace database {name}: {_kept_text(kept, target.user)}"
                    )
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
        raise RestoreError(f"cannot rename database {old} to {new}: {pg_message(exc)}") from None


# The sessions a drop or rename must end: those of a role. Autovacuum's workers are no role's
# (usesysid NULL); only a superuser may signal them, and DROP and RENAME end them themselves.
# (backend_type would say "client backend", but only to the role itself or pg_read_all_stats.)
_CLIENTS = (
    "FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid() AND usesysid IS NOT NULL"
)


def client_sessions(conn: psycopg.Connection[Any], dbname: str) -> int:
    """The sessions of a role in `dbname` besides this one (autovacuum's workers not)."""
    row = conn.execute(f"SELECT count(*) {_CLIENTS}", (dbname,)).fetchone()
    return int(row[0]) if row else 0


def _terminate(
    conn: psycopg.Connection[Any], dbname: str, wait_seconds: float = 10
) -> list[tuple[int, str]]:
    """End the client sessions in `dbname`; returns those this role may not end (a
    superuser's or another role's, when it is no superuser), as (pid, role), after waiting for
    the others to go."""
    kept: list[tuple[int, str]] = []
    for pid, role in conn.execute(f"SELECT pid, usename {_CLIENTS}", (dbname,)).fetchall():
        try:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        except psycopg.errors.InsufficientPrivilege:
            kept.append((int(pid), str(role)))
    deadline = time.monotonic() + wait_seconds
    while client_sessions(conn, dbname) > len(kept) and time.monotonic() < deadline:
        time.sleep(0.05)
    return kept


def _kept_text(kept: list[tuple[int, str]], user: str) -> str:
    sessions = ", ".join(f"pid {pid} ({role})" for pid, role in kept)
    return (
        f"{len(kept)} session(s) that {user} may not end are connected to it ({sessions}): "
        "close them, or connect as a superuser"
    )


def pg_message(exc: psycopg.Error) -> str:
    return " ".join(str(exc).split())

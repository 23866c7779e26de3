"""Role passwords: whether a backup can keep them, which login roles it holds none for, and
keeping the hashes out of every message.

pg_dumpall keeps the password hashes of the roles it dumps when it runs as a superuser (only a
superuser may read pg_authid); on hosted Supabase the `postgres` role is none, and a restore
onto a new server then creates the service roles (authenticator, supabase_auth_admin, ...)
without a password. The names of those roles are what a backup records and a plan shows; the
hashes themselves stay in the globals dump.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg

from pgtools.globalsql import unquote_ident

PASSWORD_CLAUSE = re.compile(r"PASSWORD\s+'(?:[^']|'')*'", re.IGNORECASE)
ALTER_ROLE_WITH = re.compile(r'^ALTER ROLE ("(?:[^"]|"")+"|[^\s;]+) WITH (.*);\s*$')


def can_read_role_passwords(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT has_table_privilege('pg_catalog.pg_authid', 'SELECT')").fetchone()
    return bool(row and row[0])


def login_roles_without_password(
    conn: psycopg.Connection[Any], *, passwords_included: bool
) -> list[str]:
    """Login roles a restore from this backup would create without a password: those that
    have none when the hashes are kept, every login role when they are left out."""
    if passwords_included:
        query = "SELECT rolname FROM pg_authid WHERE rolcanlogin AND rolpassword IS NULL"
    else:
        query = "SELECT rolname FROM pg_roles WHERE rolcanlogin"
    return sorted(str(r[0]) for r in conn.execute(query).fetchall())


def passwordless_logins(globals_sql: str) -> set[str]:
    """The roles a globals dump makes able to log in without giving them a password."""
    logins: dict[str, bool] = {}
    for line in globals_sql.splitlines():
        m = ALTER_ROLE_WITH.match(line)
        if not m:
            continue
        words = PASSWORD_CLAUSE.sub(" PASSWORD ", m.group(2)).split()
        if "LOGIN" in words:
            logins[unquote_ident(m.group(1))] = "PASSWORD" in words
    return {role for role, has_password in logins.items() if not has_password}


def without_passwords(text: str) -> str:
    """`text` with every PASSWORD '...' literal masked: for messages about globals SQL."""
    return PASSWORD_CLAUSE.sub("PASSWORD '***'", text)

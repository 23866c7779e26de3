"""The text of pg_dumpall --globals-only dumps and of restore scripts: which roles a dump
creates, a dump tolerant of roles that exist, event trigger owners, and identifier quoting."""

from __future__ import annotations

import re
from collections.abc import Iterable

ROLE_LINE = re.compile(r'^(?:CREATE|ALTER) ROLE ("(?:[^"]|"")+"|[^\s;]+)[\s;]')


GRANTED_BY = re.compile(r"\s+GRANTED BY\s+(\"(?:[^\"]|\"\")+\"|\S+)\s*;\s*$")


EVENT_TRIGGER_OWNER = re.compile(r'^ALTER EVENT TRIGGER .* OWNER TO ("(?:[^"]|"")+"|[^\s;]+);\s*$')


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


def event_trigger_owners_in_listing(listing: Iterable[str]) -> set[str]:
    owners = set()
    for line in listing:
        if not line.startswith(";") and " EVENT TRIGGER " in line:
            owners.add(line.rsplit(" ", 1)[-1])
    return owners


def promotion_sql(roles: Iterable[str], superusers: Iterable[str]) -> tuple[str, str]:
    """Supabase's event triggers belong to `postgres`, a NOSUPERUSER role, yet only a superuser
    may own an event trigger. Inside the restore's single transaction such owners are made
    superuser and demoted again before COMMIT, so no other session ever sees the promotion."""
    supers = set(superusers)
    needed = sorted(r for r in roles if r not in supers)
    up = "".join(f"ALTER ROLE {ident(r)} SUPERUSER;\n" for r in needed)
    down = "".join(f"ALTER ROLE {ident(r)} NOSUPERUSER;\n" for r in needed)
    return up, down


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"

"""Role passwords in a backup: "auto" keeps the hashes when the backup's role can read them
(a superuser), as pg_dumpall does; otherwise the backup says which login roles it holds no
password for. Only role names are recorded: never a hash."""

from __future__ import annotations

from typing import Any

from pgtools.roles import can_read_role_passwords, login_roles_without_password


def role_password_facts(conn: Any, setting: bool | None) -> dict[str, Any]:
    """Whether the globals keep the role password hashes (`setting`, or when None: whenever
    the role can read them), and the login roles a restore would create without one."""
    included = can_read_role_passwords(conn) if setting is None else setting
    return {
        "included": included,
        "setting": "auto" if setting is None else setting,
        "login_roles_without_password": login_roles_without_password(
            conn, passwords_included=included
        ),
    }


def passwords_note(facts: dict[str, Any]) -> str:
    """The one line a backup without the role passwords says about it."""
    roles = facts["login_roles_without_password"]
    why = (
        "database.include_role_passwords is false"
        if facts["setting"] is False
        else "the backup's role is not a superuser and cannot read them"
    )
    return (
        f"role passwords left out ({why}): a restore onto a new server creates "
        f"{len(roles)} login role(s) without a password ({', '.join(roles)}); "
        "set them afterwards with ALTER ROLE ... PASSWORD"
    )

"""The schema of backups/backup-config.json, validated with pydantic.

Every field has a default, so an empty file (or none) is valid. Unknown keys are errors: a typo
must not silently fall back to a default. ``errors_of`` turns a ValidationError into one line
per wrong field: where, the value, and what is allowed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from usecases.config.sections import SLOT_TYPES

TIME_RE = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseSection(_Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 5432
    user: str = "postgres"
    name: str = "postgres"
    password: str | None = None  # allowed, warned about: prefer SUPABASE_DB_PASSWORD or .env
    # "auto": the password hashes when the backup's role can read them (a superuser), as
    # pg_dumpall keeps them; true/false decide it outright (true needs a superuser).
    include_role_passwords: bool | Literal["auto"] = "auto"
    # How long a backup waits for a table another session locked, then fails naming it.
    lock_wait_timeout_seconds: Annotated[float, Field(gt=0, le=86400)] = 300.0


class CompressionSection(_Section):
    codec: Literal["gzip", "zstd"] = "gzip"
    level: Annotated[int, Field(ge=1, le=22)] | None = None
    threads: Annotated[int, Field(ge=1, le=64)] = 2


class StoreSection(_Section):
    path: Path | None = None  # default: <backup dir>/store
    # cleanup rewrites a pack once more than this fraction of its bytes is dead (chunks no
    # backup uses any more): 0 rewrites any pack with a dead byte, 1 never rewrites one (a
    # pack is then deleted only once nothing in it is used)
    repack_threshold: Annotated[float, Field(ge=0, le=1)] = 0.3


class NotificationsSection(_Section):
    on_success: bool = True
    on_failure: bool = True
    on_verify_failure: bool = True
    on_drill_failure: bool = True
    on_check: bool = True
    desktop: bool = True
    apprise_urls: list[str] = []


class HealthSection(_Section):
    rpo_hours: Annotated[float, Field(gt=0)] = 6.0
    verify_max_age_days: Annotated[float, Field(gt=0)] = 7.0
    drill_max_age_days: Annotated[float, Field(gt=0)] = 30.0
    size_drop_ratio: Annotated[float, Field(gt=0, lt=1)] = 0.5
    duration_growth_ratio: Annotated[float, Field(gt=1)] = 3.0
    min_free_bytes: Annotated[int, Field(ge=0)] = 1 << 30
    # A backup `running` this long without finishing counts as stale (its process may be on
    # a host that is gone): `list` and `check` say so, `delete --force` may settle it.
    stale_running_hours: Annotated[float, Field(gt=0)] = 24.0
    rto_minutes: Annotated[float, Field(gt=0)] = 60.0


class OffsiteSection(_Section):
    url: str
    endpoint_url: str | None = None
    region: str | None = None


class EncryptionSection(_Section):
    recipients: list[str] = []
    identity_file: Path | None = None

    @field_validator("recipients")
    @classmethod
    def _age_keys(cls, value: list[str]) -> list[str]:
        for key in value:
            if not key.startswith("age1"):
                raise ValueError(f"{key[:12]!r}... is not an age recipient (age1...)")
        return value


def _default_schedule() -> dict[str, str]:
    return {"morning": "06:00", "noon": "12:00", "evening": "18:00", "nightly": "23:59"}


class ConfigFile(_Section):
    """backup-config.json. ``retention`` is checked by catalog.retention.policy_from_config."""

    database: DatabaseSection = DatabaseSection()
    compression: CompressionSection = CompressionSection()
    store: StoreSection = StoreSection()
    catalog_url: str | None = None
    pg_bindir: str | None = None
    schedule: dict[str, str] = Field(default_factory=_default_schedule)
    retention: dict[str, Any] = {}
    notifications: NotificationsSection = NotificationsSection()
    health: HealthSection = HealthSection()
    offsite: dict[str, OffsiteSection] = {}
    encryption: EncryptionSection = EncryptionSection()

    @field_validator("schedule")
    @classmethod
    def _slots(cls, value: dict[str, str]) -> dict[str, str]:
        for slot, at in value.items():
            if not re.fullmatch(r"[a-z][a-z0-9-]{0,31}", slot):
                raise ValueError(f"slot name {slot!r} must be lower-case letters, digits, '-'")
            if not TIME_RE.match(at):
                raise ValueError(f"{slot}: {at!r} is not a time HH:MM (00:00 to 23:59)")
        return value


KNOWN_SLOTS = SLOT_TYPES


def errors_of(exc: ValidationError, source: str) -> list[str]:
    """One line per wrong field: `source: field.path: problem (got value)`."""
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown setting (a typo?)"
        value = err.get("input")
        shown = "" if isinstance(value, dict) else f" (got {value!r})"
        lines.append(f"{source}: {where}: {msg}{shown}")
    return lines


def commented_default() -> dict[str, Any]:
    """What `dumpledger config init` writes: every setting at its default, "//" keys explain.

    JSON has no comments; keys that start with "//" are ignored when the file is read.
    """
    return {
        "//": "dumpledger settings. Precedence: flags > environment > .env > this file > "
        "defaults. `dumpledger config show` tells where each value comes from; "
        "`dumpledger config validate` checks this file.",
        "database": {
            "//": "The password is NOT kept here: set SUPABASE_DB_PASSWORD in the environment "
            "or in .env (SUPABASE_DB_HOST/PORT/USER/NAME override these).",
            **DatabaseSection().model_dump(mode="json", exclude={"password"}),
        },
        "compression": {
            "//": "codec gzip (default; level 6 per chunk) or zstd (level 3, pip install "
            "'dumpledger[zstd]'); threads for zstd",
            **CompressionSection().model_dump(mode="json"),
        },
        "store": {
            "//": "path null: <backup dir>/store. repack_threshold: cleanup rewrites a pack "
            "once more than this fraction of its bytes belongs to no backup (0 to 1; 1: never)",
            **StoreSection().model_dump(mode="json"),
        },
        "catalog_url": None,
        "schedule": {
            "//": "backup type -> local time HH:MM; `dumpledger schedule install` applies it",
            **_default_schedule(),
        },
        "retention": {
            "//": "per class: keep_within_days, keep_last, keep_daily/weekly/monthly/yearly, "
            "forever; min_verified >= 1",
            "auto": {"keep_within_days": 60},
            "manual": {"forever": True},
            "emergency": {"forever": True},
            "pre": {"forever": True},
            "min_verified": 1,
        },
        "notifications": {
            "//": "apprise_urls: any Apprise URL (slack://, discord://, mailto://, ntfy://, "
            "json://...); pip install 'dumpledger[notify]'",
            **NotificationsSection().model_dump(mode="json"),
        },
        "health": {
            "//": "limits for `dumpledger check`",
            **HealthSection().model_dump(mode="json"),
        },
        "offsite": {
            "//": 'targets for `dumpledger push`: {"drive": {"url": "/media/drive/dumpledger"}, '
            '"bucket": {"url": "s3://bucket/prefix", "endpoint_url": null, "region": null}}',
        },
        "encryption": {
            "//": "age recipients (age1...) encrypt new backups; identity_file decrypts them "
            "(relative to the backup dir); pip install 'dumpledger[age]'",
            **EncryptionSection().model_dump(mode="json"),
        },
    }

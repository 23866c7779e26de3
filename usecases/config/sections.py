"""Typed sections of the settings that scheduling, health, notifications, offsite copies and
encryption read. ``usecases.config.settings`` fills them from backup-config.json, .env, the
environment and flags; nothing here reads a file or the environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SLOT_TYPES = ("morning", "noon", "evening", "nightly")


@dataclass(frozen=True, slots=True, kw_only=True)
class Slot:
    """One scheduled automatic backup: its type (the name's auto_<type>_ part) and HH:MM."""

    backup_type: str
    time: str  # "HH:MM", local time of the machine that runs the scheduler

    @property
    def hour(self) -> int:
        return int(self.time.split(":")[0])

    @property
    def minute(self) -> int:
        return int(self.time.split(":")[1])


DEFAULT_SCHEDULE: tuple[Slot, ...] = (
    Slot(backup_type="morning", time="06:00"),
    Slot(backup_type="noon", time="12:00"),
    Slot(backup_type="evening", time="18:00"),
    Slot(backup_type="nightly", time="23:59"),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Notifications:
    """Which events notify, and through what. Desktop = macOS dialog or notify-send."""

    on_success: bool = True  # automatic backup completed
    on_failure: bool = True  # automatic backup failed
    on_verify_failure: bool = True
    on_drill_failure: bool = True
    on_check: bool = True  # `check` worse than OK
    desktop: bool = True
    apprise_urls: tuple[str, ...] = ()  # secrets may live in these: never print them


@dataclass(frozen=True, slots=True, kw_only=True)
class Health:
    """Limits for `dumpledger check`."""

    rpo_hours: float = 6.0  # last successful automatic backup younger than this
    verify_max_age_days: float = 7.0
    drill_max_age_days: float = 30.0
    size_drop_ratio: float = 0.5  # warn when the last backup < ratio x trailing median of its type
    duration_growth_ratio: float = 3.0  # warn when it took > ratio x trailing median
    min_free_bytes: int = 1 << 30
    stale_running_hours: float = 24.0  # a running backup this old counts as stale
    rto_minutes: float = 60.0  # a restore should take no longer (`report` draws drills against it)


@dataclass(frozen=True, slots=True, kw_only=True)
class OffsiteTarget:
    """A copy of the store and the event log: a directory (external drive) or s3://bucket/prefix.

    Credentials never live here: S3 ones come from the environment or ~/.aws files.
    """

    name: str
    url: str  # /mnt/drive/dumpledger, file:///..., or s3://bucket/prefix
    endpoint_url: str | None = None  # S3-compatible servers (MinIO, R2, moto ...)
    region: str | None = None

    @property
    def is_s3(self) -> bool:
        return self.url.startswith("s3://")


@dataclass(frozen=True, slots=True, kw_only=True)
class Encryption:
    """age encryption at rest: blobs are encrypted to these recipients after compression."""

    recipients: tuple[str, ...] = ()  # age1... public keys
    identity_file: Path | None = None  # the private key(s) for verify, restore, drill

    @property
    def enabled(self) -> bool:
        return bool(self.recipients)

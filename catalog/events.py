"""Domain events: frozen dataclasses named in the past tense, each with a schema version.

A change of shape is a new ``schema_version`` plus an upcaster registered in ``UPCASTERS``;
stored rows are never rewritten.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from catalog.errors import UnknownEventType

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of every event; ``subject`` is what the event is about (usually a backup name)."""

    schema_version: ClassVar[int] = 1

    @property
    def subject(self) -> str:
        return str(getattr(self, "backup", ""))

    def payload(self) -> JSON:
        body = dataclasses.asdict(self)
        body["schema_version"] = self.schema_version
        return body


@dataclass(frozen=True, slots=True, kw_only=True)
class BackupStarted(Event):
    backup: str
    backup_type: str
    hostname: str
    pid: int
    database: JSON
    artifacts: list[str]
    codec: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BackupCompleted(Event):
    """Every artifact is durable in the store and was read back before this is appended."""

    backup: str
    backup_type: str
    artifacts: list[JSON]
    verified: bool
    duration_seconds: float
    metadata: JSON = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class BackupFailed(Event):
    backup: str
    reason: str
    stage: str
    abandoned: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class BackupVerified(Event):
    """`problem`: why the backup failed as a whole (not completed in the log, no artifacts,
    tables that disagree with the log), beside the per-artifact results."""

    schema_version: ClassVar[int] = 2
    backup: str
    ok: bool
    artifacts: list[JSON]
    problem: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BackupDeleted(Event):
    """`rule` decided (a retention rule, or "person" for `dumpledger delete`); `reason` says why."""

    schema_version: ClassVar[int] = 2
    backup: str
    reason: str
    rule: str = "person"


@dataclass(frozen=True, slots=True, kw_only=True)
class BackupPinned(Event):
    backup: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BackupUnpinned(Event):
    backup: str
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class BlobCollected(Event):
    digest: str
    codec: str

    @property
    def subject(self) -> str:
        return self.digest


@dataclass(frozen=True, slots=True, kw_only=True)
class BlobRepaired(Event):
    """A stored copy failed its check and a fresh, identical dump replaced it (one rename).

    ``previous_sha256`` hashes the damaged bytes that were replaced; ``stored_sha256`` and
    ``stored_size`` describe the bytes there now, which every artifact of the blob expects
    from here on. ``backup`` is the backup whose dump repaired it, if any."""

    digest: str
    codec: str
    stored_sha256: str
    stored_size: int
    previous_sha256: str
    reason: str
    backup: str | None = None

    @property
    def subject(self) -> str:
        return self.digest


@dataclass(frozen=True, slots=True, kw_only=True)
class BlobMigrated(Event):
    """A whole blob (the first layout) was stored chunked and read back whole; its file goes
    next (`dumpledger store migrate`). The artifact's identity (digest, codec) is unchanged;
    ``stored_sha256`` (the manifest's) and ``stored_size`` (its chunks' stored bytes) describe
    the stored form every artifact of the blob expects from here on; ``previous_*`` the whole
    blob's. ``recipients``, for an encrypted blob: who decrypts it from here on (its chunks
    are in packs sealed to them, today's recipients, not necessarily those it was written
    for); None for a plain blob."""

    schema_version: ClassVar[int] = 2
    digest: str
    codec: str
    stored_sha256: str
    stored_size: int
    previous_sha256: str
    previous_size: int
    recipients: list[str] | None = None

    @property
    def subject(self) -> str:
        return self.digest


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreCatalogForgotten(Event):
    """A person removed another catalog's roots from the store (that catalog is gone): what
    they held is collected by the catalogs that know it, or kept until adopted."""

    catalog: str  # the forgotten catalog's id
    store: str
    label: JSON = field(default_factory=dict)
    refs: int = 0

    @property
    def subject(self) -> str:
        return "store"


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreBlobsAdopted(Event):
    """A person let this catalog collect the blobs of the store that no registered catalog
    wrote or references (from before roots, or a forgotten catalog's), and released the
    legacy roots."""

    store: str
    digests: list[str]
    bytes: int
    legacy_released: int

    @property
    def subject(self) -> str:
        return "store"


@dataclass(frozen=True, slots=True, kw_only=True)
class _RestoreEvent(Event):
    """Common to the restore events: which restore, of what, into where."""

    restore_id: str
    backup: str | None  # None when restoring a file from outside the catalog
    source_file: str | None
    target: JSON  # host, port, user, name: never a password

    @property
    def subject(self) -> str:
        return self.backup or f"file:{self.source_file}"


@dataclass(frozen=True, slots=True, kw_only=True)
class RestoreStarted(_RestoreEvent):
    """v2: the restoring process (host, pid), so that the next command on that host records a
    restore whose process died as failed; and the scratch and kept-as names a swap uses."""

    schema_version: ClassVar[int] = 2
    artifacts: list[JSON]  # kind, digest (sha256 of the raw dump)
    method: str  # swap (whole database) or partial (--schema/--table into the target)
    safety_backup: str | None
    terminate_connections: bool
    hostname: str | None = None
    pid: int | None = None
    scratch_db: str | None = None  # swap: the database the backup is restored into first
    keep_as: str | None = None  # swap: the name the replaced database is kept under


@dataclass(frozen=True, slots=True, kw_only=True)
class RestoreCompleted(_RestoreEvent):
    safety_backup: str | None
    duration_seconds: float
    replaced_database: str | None  # the old database, renamed and kept until a person drops it


@dataclass(frozen=True, slots=True, kw_only=True)
class RestoreFailed(_RestoreEvent):
    safety_backup: str | None
    duration_seconds: float
    stage: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RestoreTested(Event):
    """A restore drill: restored into a scratch database, compared, dropped."""

    backup: str
    ok: bool
    target: JSON
    restore_seconds: float
    check_seconds: float
    total_seconds: float
    tables_checked: int
    mismatches: list[str]
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BackupImported(Event):
    """A backup made before dumpledger (the old shell scripts), brought in with its history;
    or a backup of a lost catalog, recovered from its metadata file and its blobs in the store
    (`catalog rebuild --from-store`: metadata["recovered_from"] == "store").

    ``started_at``/``finished_at`` are the original times (UTC ISO-8601), not the import's;
    ``verified`` is what the old metadata said. Appended only after every artifact was
    checked (complete stream, pg_dump trailer or readable custom dump), stored and read back.
    """

    backup: str
    backup_type: str
    artifacts: list[JSON]  # as BackupCompleted's: kind, digest, stored digest, sizes, codec
    started_at: str
    finished_at: str | None
    verified: bool
    source_files: list[str]
    metadata: JSON = field(default_factory=dict)  # git commit/branch, creator, original fields


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleInstalled(Event):
    """`project`: the id of the backup directory the units run for (several projects may share
    a PostgreSQL catalog); None in events written before schedules were per project (v1)."""

    schema_version: ClassVar[int] = 2
    backend: str  # systemd, cron, launchd
    slots: list[JSON]  # backup_type, time
    units: list[str]  # files or crontab markers written
    project: str | None = None
    crontab_user: str | None = None  # cron installed by root into this user's crontab

    @property
    def subject(self) -> str:
        return "schedule"


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleRemoved(Event):
    schema_version: ClassVar[int] = 2
    backend: str
    units: list[str]
    project: str | None = None  # as in ScheduleInstalled

    @property
    def subject(self) -> str:
        return "schedule"


@dataclass(frozen=True, slots=True, kw_only=True)
class NotificationSent(Event):
    """A notification attempt; ``ok`` false records a failure (which never fails the backup)."""

    kind: (
        str  # backup_completed, backup_failed, retention_failed, verify_failed, drill_failed, check
    )
    channel: str  # desktop, apprise (never the URL: it may hold a token)
    ok: bool
    about: str = ""  # the backup name, or "check"
    reason: str | None = None
    detail: str = ""  # for `check`: the status and the failing checks, to notify each change once

    @property
    def subject(self) -> str:
        return self.about or "notification"


@dataclass(frozen=True, slots=True, kw_only=True)
class OffsitePushed(Event):
    """Blobs and the event log copied to a target, each checked after upload."""

    target: str  # the configured name
    location: str  # the target's URL without credentials
    backups: list[str]  # backups now complete on the target
    digests_sent: list[str]
    bytes_sent: int
    log_seq: int  # events up to this seq are in the target's export

    @property
    def subject(self) -> str:
        return f"offsite:{self.target}"


EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls
    for cls in (
        BackupStarted,
        BackupCompleted,
        BackupFailed,
        BackupVerified,
        BackupDeleted,
        BackupPinned,
        BackupUnpinned,
        BlobCollected,
        BlobRepaired,
        BlobMigrated,
        StoreCatalogForgotten,
        StoreBlobsAdopted,
        RestoreStarted,
        RestoreCompleted,
        RestoreFailed,
        RestoreTested,
        BackupImported,
        ScheduleInstalled,
        ScheduleRemoved,
        NotificationSent,
        OffsitePushed,
    )
}

Upcaster = Callable[[JSON], JSON]
# (type name, stored schema_version) -> function returning the payload at version + 1.
UPCASTERS: dict[tuple[str, int], Upcaster] = {
    # v1 deletions had no rule: only a person could delete then.
    ("BackupDeleted", 1): lambda p: {**p, "rule": "person"},
    # v1 schedule events named no project: schedules were one per user then.
    ("ScheduleInstalled", 1): lambda p: {**p, "project": None, "crontab_user": None},
    ("ScheduleRemoved", 1): lambda p: {**p, "project": None},
    # v1 verifications judged the artifacts only.
    ("BackupVerified", 1): lambda p: {**p, "problem": None},
    # v1 restores named no process: an interrupted one cannot be told from a running one.
    ("RestoreStarted", 1): lambda p: {
        **p,
        "hostname": None,
        "pid": None,
        "scratch_db": None,
        "keep_as": None,
    },
    # v1 migrations did not say who decrypts the blob's chunks: its backups' records stand.
    ("BlobMigrated", 1): lambda p: {**p, "recipients": None},
}


def upcast(type_name: str, payload: JSON) -> JSON:
    """Bring a stored payload up to the current schema version of its type."""
    current = event_class(type_name).schema_version
    version = int(payload.get("schema_version", 1))
    while version < current:
        payload = UPCASTERS[(type_name, version)](dict(payload))
        version += 1
        payload["schema_version"] = version
    return payload


def event_class(type_name: str) -> type[Event]:
    try:
        return EVENT_TYPES[type_name]
    except KeyError:
        raise UnknownEventType(
            f"unknown event type {type_name!r} in the catalog; upgrade dumpledger"
        ) from None


def decode(type_name: str, payload: JSON) -> Event:
    """Stored (type, payload) -> event object, after upcasting."""
    body = upcast(type_name, payload)
    cls = event_class(type_name)
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in body.items() if k in names})

"""The old shell scripts' backup files: which file is which artifact of which backup, and what
their `<name>_metadata.json` says. Reads files only; knows nothing of the catalog or the store.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from usecases.backup.names import BACKUP_TYPES, SCHEDULED_TYPES, classify
from usecases.errors import BadInput

# (suffix, artifact kind, format); the longest suffix that matches wins.
SUFFIXES: tuple[tuple[str, str, str], ...] = (
    ("_full.sql.gz", "full", "gzip"),
    ("_full.sql", "full", "plain"),
    ("_schema.sql.gz", "schema", "gzip"),
    ("_schema.sql", "schema", "plain"),
    ("_data.sql.gz", "data", "gzip"),
    ("_data.sql", "data", "plain"),
    ("_globals.sql.gz", "globals", "gzip"),
    ("_globals.sql", "globals", "plain"),
    ("_roles.sql.gz", "globals", "gzip"),
    ("_roles.sql", "globals", "plain"),
    ("_custom.dump", "custom", "custom"),
    (".dump", "custom", "custom"),
)
METADATA_SUFFIX = "_metadata.json"
RESTORABLE = ("full", "custom")
NAME_STAMP = re.compile(r"(\d{8})_(\d{6})")
SECRET_KEY = re.compile(r"pass|secret|token|credential|(^|_)key$", re.IGNORECASE)
URL_PASSWORD = re.compile(r"(://[^:/@\s]*):[^@/\s]*@")
TRUE_WORDS = ("true", "yes", "1", "ok", "passed", "verified")


@dataclass(frozen=True, slots=True)
class LegacyFile:
    path: Path
    kind: str
    format: str  # gzip, plain (SQL) or custom (pg_dump -Fc)


@dataclass(slots=True)
class LegacyGroup:
    """The files of one old backup, found by its name."""

    name: str
    files: dict[str, LegacyFile] = field(default_factory=dict)
    metadata_path: Path | None = None
    problems: list[str] = field(default_factory=list)

    def all_paths(self) -> list[Path]:
        paths = [f.path for f in self.files.values()]
        return sorted(paths + ([self.metadata_path] if self.metadata_path else []))


@dataclass(frozen=True, slots=True)
class Ignored:
    path: Path
    reason: str


def scan(directory: Path) -> tuple[list[LegacyGroup], list[Ignored]]:
    """Group the directory's files by backup name, in name order."""
    if not directory.is_dir():
        raise BadInput(f"{directory} is not a directory; name the old scripts' backup directory")
    groups: dict[str, LegacyGroup] = {}
    ignored: list[Ignored] = []
    for path in sorted(p for p in directory.iterdir() if not p.name.startswith(".")):
        why = _not_a_backup_file(path)
        if why:
            ignored.append(Ignored(path, why))
            continue
        _place(path, groups, ignored)
    for group in groups.values():
        if not any(k in group.files for k in RESTORABLE) and not group.problems:
            group.problems.append("no full dump (_full.sql.gz, _full.sql) or custom dump (.dump)")
    return [groups[n] for n in sorted(groups)], ignored


def _not_a_backup_file(path: Path) -> str | None:
    if path.name.startswith("latest_"):
        return "a latest_* link, not a backup of its own"
    if not path.is_file():
        return "not a regular file"
    return None


def _place(path: Path, groups: dict[str, LegacyGroup], ignored: list[Ignored]) -> None:
    if path.name.endswith(METADATA_SUFFIX):
        name = path.name[: -len(METADATA_SUFFIX)]
        groups.setdefault(name, LegacyGroup(name)).metadata_path = path
        return
    for suffix, kind, fmt in SUFFIXES:
        if path.name.endswith(suffix) and len(path.name) > len(suffix):
            name = path.name[: -len(suffix)]
            group = groups.setdefault(name, LegacyGroup(name))
            if kind in group.files:
                other = group.files[kind].path.name
                group.problems.append(f"two {kind} dumps ({other}, {path.name}): keep one")
            else:
                group.files[kind] = LegacyFile(path, kind, fmt)
            return
    ignored.append(Ignored(path, "not a file the old backup scripts wrote"))


# -- metadata --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class LegacyMeta:
    started_at: datetime | None = None
    finished_at: datetime | None = None
    backup_type: str | None = None
    git_commit: str | None = None
    git_branch: str | None = None
    created_by: str | None = None
    verified: bool = False
    database: dict[str, Any] = field(default_factory=dict)
    row_counts: dict[str, int] = field(default_factory=dict)
    original: dict[str, Any] = field(default_factory=dict)  # the document, secrets removed


def read_metadata(path: Path, tz: tzinfo | None) -> LegacyMeta:
    """Parse `<name>_metadata.json`; unknown fields are kept (in `original`), missing ones
    are None. Raises ValueError when the file is not a JSON object."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path.name} is not readable JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{path.name} holds no JSON object")
    nested = doc.get("git")
    git: dict[str, Any] = nested if isinstance(nested, dict) else {}
    return LegacyMeta(
        started_at=_first_time(doc, ("timestamp", "started_at", "created_at", "date"), tz),
        finished_at=_first_time(doc, ("completed_at", "finished_at"), tz),
        backup_type=_text(doc.get("backup_type") or doc.get("type")),
        git_commit=_text(doc.get("git_commit") or doc.get("commit") or git.get("commit")),
        git_branch=_text(doc.get("git_branch") or doc.get("branch") or git.get("branch")),
        created_by=_text(doc.get("created_by") or doc.get("user") or doc.get("creator")),
        verified=_truthy(doc.get("verified")),
        database=_database(doc.get("database")),
        row_counts=_row_counts(doc.get("row_counts")),
        original=scrub(doc),
    )


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text if text and text.lower() not in ("unknown", "none", "null", "n/a") else None


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in TRUE_WORDS if value is not None else False


def _database(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        return {"name": value}
    if not isinstance(value, dict):
        return {}
    keep = ("host", "port", "name", "user", "dbname")
    out = {k: str(value[k]) for k in keep if value.get(k) is not None}
    if "dbname" in out:
        out.setdefault("name", out.pop("dbname"))
    cleaned: dict[str, Any] = scrub(out)
    return cleaned


def _row_counts(value: Any) -> dict[str, int]:
    if not isinstance(value, dict):
        return {}
    return {str(k): int(v) for k, v in value.items() if isinstance(v, int)}


def scrub(value: Any) -> Any:
    """Drop fields named like secrets and passwords inside URLs: events never hold secrets."""
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items() if not SECRET_KEY.search(str(k))}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    if isinstance(value, str):
        return URL_PASSWORD.sub(r"\1:***@", value)
    return value


def _first_time(doc: dict[str, Any], keys: tuple[str, ...], tz: tzinfo | None) -> datetime | None:
    for key in keys:
        moment = parse_time(doc.get(key), tz)
        if moment is not None:
            return moment
    return None


def parse_time(value: Any, tz: tzinfo | None) -> datetime | None:
    """ISO-8601 (an offset is honoured; without one it is `tz`), YYYYMMDD_HHMMSS in `tz`,
    or seconds since the epoch. None when `value` is none of them."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    text = str(value).strip()
    stamp = NAME_STAMP.fullmatch(text)
    if stamp:
        return _stamp_time(stamp, tz)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else localize(moment, tz)


def name_time(name: str, tz: tzinfo | None) -> datetime | None:
    """The YYYYMMDD_HHMMSS in a backup name (the last one), read in `tz`."""
    stamps = list(NAME_STAMP.finditer(name))
    return _stamp_time(stamps[-1], tz) if stamps else None


def _stamp_time(match: re.Match[str], tz: tzinfo | None) -> datetime | None:
    try:
        local = datetime.strptime(match.group(1) + match.group(2), "%Y%m%d%H%M%S")
    except ValueError:
        return None
    return localize(local, tz)


def localize(naive: datetime, tz: tzinfo | None) -> datetime:
    """A wall-clock time in `tz` (None: this machine's zone, with its DST rules) -> UTC."""
    return (naive.replace(tzinfo=tz) if tz else naive).astimezone(UTC)


def legacy_type(name: str, meta_type: str | None) -> str:
    """auto_<slot>_* -> the slot, emergency-* / pre-* -> emergency / pre, else manual; for an
    auto_ name with an unknown slot, the metadata's type when it is a known one."""
    klass = classify(name)
    if klass == "auto":
        slot = name.split("_")[1] if name.count("_") >= 1 else ""
        if slot in (*SCHEDULED_TYPES, "test"):
            return slot
        return meta_type if meta_type in BACKUP_TYPES else "manual"
    return klass

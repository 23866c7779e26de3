"""`dumpledger metrics`: Prometheus text-format gauges, from the catalog (and the store's size).

``render`` is pure (facts + now -> text); ``collect`` reads the catalog; ``write_textfile``
puts the text where node_exporter's textfile collector reads it, atomically.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from catalog.canonical import parse_utc
from catalog.queries import blob_rows, list_backups
from catalog.read import BackupFilter
from usecases.backup.names import classify
from usecases.context import App
from usecases.errors import BadInput
from usecases.files import atomic_write

TEXTFILE_MODE = 0o644  # node_exporter runs as another user; metrics hold no secret


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsFacts:
    by_type_status: dict[tuple[str, str], int] = field(default_factory=dict)
    stored_bytes: int = 0  # logical: each artifact's compressed size, as if stored alone
    store_bytes: int | None = None  # deduplicated: what the store's files take
    last_backup_at: dict[str, datetime] = field(default_factory=dict)  # class (auto, any) -> time
    last_verified_at: datetime | None = None
    last_drill_at: datetime | None = None
    last_backup: dict[str, Any] | None = None  # stored_size, raw_size, duration_seconds


def collect(app: App) -> MetricsFacts:
    rows = list_backups(app.catalog.engine, BackupFilter(include_deleted=True))
    done = [r for r in rows if r["status"] == "completed"]  # newest first
    finished = [(classify(r["name"]), parse_utc(r["finished_at"])) for r in done]
    last_at = {
        cls: max(t for c, t in finished if cls in ("any", c))
        for cls in ("any", "auto")
        if any(cls in ("any", c) for c, _ in finished)
    }
    verified = [parse_utc(r["last_verified_at"]) for r in done if r["last_verify_ok"]]
    drilled = [parse_utc(r["last_drill_at"]) for r in done if r["last_drill_ok"]]
    return MetricsFacts(
        by_type_status=dict(Counter((r["backup_type"], r["status"]) for r in rows)),
        stored_bytes=sum(int(b["stored_size"]) for b in blob_rows(app.catalog.engine)),
        store_bytes=app.store.disk_usage(),
        last_backup_at=last_at,
        last_verified_at=max(verified, default=None),
        last_drill_at=max(drilled, default=None),
        last_backup=done[0] if done else None,
    )


def render(facts: MetricsFacts, now: datetime) -> str:
    """The exposition text: HELP and TYPE before each family, one sample a line."""
    lines: list[str] = []

    def family(name: str, help_text: str, samples: list[tuple[dict[str, str], float]]) -> None:
        lines.append(f"# HELP dumpledger_{name} {help_text}")
        lines.append(f"# TYPE dumpledger_{name} gauge")
        for labels, value in samples:
            lines.append(f"dumpledger_{name}{_labels(labels)} {_number(value)}")

    def since(at: datetime | None) -> float:
        return math.inf if at is None else max((now - at).total_seconds(), 0.0)

    family(
        "seconds_since_last_backup",
        "Seconds since the newest completed backup finished (+Inf when there is none).",
        [({"class": c}, since(facts.last_backup_at.get(c))) for c in ("any", "auto")],
    )
    family(
        "seconds_since_last_verified",
        "Seconds since the newest successful verification of a backup (+Inf: never).",
        [({}, since(facts.last_verified_at))],
    )
    family(
        "seconds_since_last_drill",
        "Seconds since the newest passed restore drill (+Inf: never).",
        [({}, since(facts.last_drill_at))],
    )
    family(
        "backups",
        "Backups in the catalog by type and status.",
        [
            ({"type": t, "status": s}, float(n))
            for (t, s), n in sorted(facts.by_type_status.items())
        ],
    )
    family(
        "stored_bytes",
        "Compressed bytes of the catalog's artifacts, each counted whole (logical: chunks "
        "shared between artifacts counted once per artifact).",
        [({}, float(facts.stored_bytes))],
    )
    if facts.store_bytes is not None:
        family(
            "store_bytes",
            "Bytes the store's files take on disk (deduplicated: each chunk once; shared "
            "with any other catalog that uses the store).",
            [({}, float(facts.store_bytes))],
        )
    last = facts.last_backup or {}
    family(
        "last_backup_stored_bytes",
        "Compressed size of the newest completed backup.",
        [({}, float(last.get("stored_size") or 0))],
    )
    family(
        "last_backup_raw_bytes",
        "Uncompressed size of the newest completed backup.",
        [({}, float(last.get("raw_size") or 0))],
    )
    family(
        "last_backup_duration_seconds",
        "How long the newest completed backup took.",
        [({}, float(last.get("duration_seconds") or 0.0))],
    )
    return "\n".join(lines) + "\n"


def write_textfile(path: Path, text: str) -> None:
    """Atomically, for node_exporter's textfile collector (it reads *.prom files only)."""
    if path.suffix != ".prom":
        raise BadInput(
            f"{path}: node_exporter's textfile collector reads only *.prom files; "
            "name it like dumpledger.prom"
        )
    if not path.parent.is_dir():
        raise BadInput(f"{path.parent} is not a directory; create it or pass another --textfile")
    atomic_write(path, text.encode("utf-8"), mode=TEXTFILE_MODE, private=False)


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    body = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
    return "{" + body + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value):
        return str(int(value))
    return repr(value)

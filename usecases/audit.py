"""Audit: who backed up, verified, restored, drilled or deleted what, and when."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from catalog.read import ACTIONS, AuditFilter
from catalog.recorded import Recorded
from usecases.errors import BadInput

if TYPE_CHECKING:
    from usecases.context import App

OUTCOMES = {
    "BackupStarted": "started",
    "BackupCompleted": "completed",
    "BackupFailed": "failed",
    "RestoreStarted": "started",
    "RestoreCompleted": "completed",
    "RestoreFailed": "failed",
    "BackupDeleted": "deleted",
    "BlobCollected": "collected",
    "BackupImported": "imported",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditLine:
    seq: int
    when: str
    actor: str
    action: str
    event: str
    backup: str
    target: str
    outcome: str
    detail: str
    payload: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "when": self.when,
            "actor": self.actor,
            "action": self.action,
            "event": self.event,
            "backup": self.backup,
            "target": self.target,
            "outcome": self.outcome,
            "detail": self.detail,
            "payload": self.payload,
        }


def audit(app: App, flt: AuditFilter) -> list[AuditLine]:
    unknown = [a for a in flt.actions if a not in ACTIONS]
    if unknown:
        raise BadInput(f"unknown action {unknown[0]!r}: choose from {', '.join(sorted(ACTIONS))}")
    from catalog.queries import audit_events  # here: `report` describes lines without SQLAlchemy

    return [describe(rec) for rec in audit_events(app.catalog.engine, flt)]


def _action_of(event_type: str) -> str:
    for action, types in ACTIONS.items():
        if event_type in types:
            return action
    return event_type


def _target(p: dict[str, Any]) -> str:
    t = p.get("target") or p.get("database")
    if not isinstance(t, dict):
        return ""
    return f"{t.get('host')}:{t.get('port')}/{t.get('name')}"


def describe(rec: Recorded) -> AuditLine:
    p = dict(rec.payload)
    outcome = OUTCOMES.get(rec.type, "")
    detail = ""
    if rec.type in ("BackupVerified", "RestoreTested"):
        outcome = "ok" if p.get("ok") else "failed"
    if rec.type == "RestoreTested":
        detail = f"{p.get('total_seconds')}s, {p.get('tables_checked')} tables"
        if p.get("reason"):
            detail += f"; {p['reason']}"
    elif rec.type in ("BackupFailed", "RestoreFailed", "BackupDeleted"):
        detail = str(p.get("reason") or "")
    elif rec.type == "RestoreCompleted":
        detail = f"{p.get('duration_seconds')}s"
        if p.get("safety_backup"):
            detail += f"; safety backup {p['safety_backup']}"
        if p.get("replaced_database"):
            detail += f"; old database kept as {p['replaced_database']}"
    elif rec.type == "RestoreStarted" and p.get("safety_backup"):
        detail = f"safety backup {p['safety_backup']}"
    elif rec.type == "BackupVerified" and not p.get("ok"):
        bad = [a for a in p.get("artifacts", []) if not a.get("ok")]
        detail = "; ".join(f"{a.get('kind')}: {a.get('error')}" for a in bad)
    return AuditLine(
        seq=rec.seq,
        when=rec.occurred_at,
        actor=rec.actor,
        action=_action_of(rec.type),
        event=rec.type,
        backup=rec.subject,
        target=_target(p),
        outcome=outcome,
        detail=detail,
        payload=p,
    )

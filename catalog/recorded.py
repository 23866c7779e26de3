"""The stored envelope of an event: what the events table holds for one row."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from catalog.canonical import chain_hash
from catalog.events import JSON, Event, decode


@dataclass(frozen=True, slots=True, kw_only=True)
class Recorded:
    seq: int
    id: str
    type: str
    occurred_at: str
    actor: str
    subject: str
    payload: JSON
    prev_hash: str
    hash: str

    def body(self) -> JSON:
        """Everything the hash covers besides the previous hash."""
        return {
            "seq": self.seq,
            "id": self.id,
            "type": self.type,
            "occurred_at": self.occurred_at,
            "actor": self.actor,
            "subject": self.subject,
            "payload": self.payload,
        }

    def expected_hash(self) -> str:
        return chain_hash(self.prev_hash, self.body())

    def event(self) -> Event:
        return decode(self.type, dict(self.payload))

    def to_json(self) -> JSON:
        return {**self.body(), "prev_hash": self.prev_hash, "hash": self.hash}

    @classmethod
    def from_row(cls, row: Any) -> Recorded:
        m = row._mapping
        return cls(
            seq=int(m["seq"]),
            id=m["id"],
            type=m["type"],
            occurred_at=m["occurred_at"],
            actor=m["actor"],
            subject=m["subject"],
            payload=json.loads(m["payload"]),
            prev_hash=m["prev_hash"],
            hash=m["hash"],
        )

"""Who decrypts each encrypted artifact (artifacts.recipients), so that a BlobMigrated that
seals a blob's chunks to other recipients can say so in its backups' metadata.

Filled from the backups' own events, as the projection fills it (catalog.projections
.artifact_recipients): the fold of the log and the upgraded table agree.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("artifacts") as batch:
        batch.add_column(sa.Column("recipients", sa.Text))
    conn = op.get_bind()
    events = sa.table("events", sa.column("seq"), sa.column("type"), sa.column("payload", sa.Text))
    artifacts = sa.table(
        "artifacts",
        sa.column("backup_name"),
        sa.column("kind"),
        sa.column("recipients", sa.Text),
    )
    found = conn.execute(
        sa.select(events.c.payload)
        .where(events.c.type.in_(["BackupCompleted", "BackupImported"]))
        .order_by(events.c.seq)
    )
    for (payload,) in found:
        body = json.loads(payload)
        for art in body.get("artifacts") or []:
            enc = art.get("encryption")
            if not enc:
                continue
            conn.execute(
                sa.update(artifacts)
                .where(artifacts.c.backup_name == body["backup"], artifacts.c.kind == art["kind"])
                .values(recipients=_canonical(list(enc.get("recipients") or [])))
            )


def _canonical(value: object) -> str:
    """catalog.canonical.canonical_json, as of this revision."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def downgrade() -> None:
    with op.batch_alter_table("artifacts") as batch:
        batch.drop_column("recipients")

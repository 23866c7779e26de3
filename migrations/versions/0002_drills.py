"""Restore drills on the backups projection: when last drilled, whether it passed, how long.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("backups") as batch:
        batch.add_column(sa.Column("last_drill_at", sa.String(32)))
        batch.add_column(sa.Column("last_drill_ok", sa.Boolean))
        batch.add_column(sa.Column("last_drill_seconds", sa.Float))


def downgrade() -> None:
    with op.batch_alter_table("backups") as batch:
        batch.drop_column("last_drill_seconds")
        batch.drop_column("last_drill_ok")
        batch.drop_column("last_drill_at")

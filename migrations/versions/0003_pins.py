"""Pins and deletion rules on the backups projection.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("backups") as batch:
        batch.add_column(sa.Column("pinned", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("pin_reason", sa.Text))
        batch.add_column(sa.Column("deleted_rule", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("backups") as batch:
        batch.drop_column("deleted_rule")
        batch.drop_column("pin_reason")
        batch.drop_column("pinned")

"""Offsite copies: which backups are complete on which target.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "offsite_copies",
        sa.Column("target", sa.String(255), primary_key=True),
        sa.Column("backup_name", sa.String(255), primary_key=True),
        sa.Column("location", sa.Text, nullable=False),
        sa.Column("pushed_seq", sa.BigInteger, nullable=False),
        sa.Column("pushed_at", sa.String(32), nullable=False),
    )
    op.create_index("ix_offsite_copies_backup_name", "offsite_copies", ["backup_name"])


def downgrade() -> None:
    op.drop_index("ix_offsite_copies_backup_name", "offsite_copies")
    op.drop_table("offsite_copies")

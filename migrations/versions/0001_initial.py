"""Initial catalog: hash-chained events, backup/artifact/blob projections, checkpoints.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("seq", BIG, primary_key=True, autoincrement=False),
        sa.Column("id", sa.String(36), nullable=False, unique=True),
        sa.Column("type", sa.String(64), nullable=False, index=True),
        sa.Column("occurred_at", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False, index=True),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "backups",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("backup_type", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_seq", sa.BigInteger, nullable=False),
        sa.Column("started_at", sa.String(32), nullable=False),
        sa.Column("finished_at", sa.String(32)),
        sa.Column("duration_seconds", sa.Float),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("hostname", sa.String(255)),
        sa.Column("pid", sa.Integer),
        sa.Column("database_name", sa.String(255)),
        sa.Column("database_host", sa.String(255)),
        sa.Column("verified", sa.Boolean, nullable=False),
        sa.Column("last_verified_at", sa.String(32)),
        sa.Column("last_verify_ok", sa.Boolean),
        sa.Column("git_commit", sa.String(64)),
        sa.Column("git_branch", sa.String(255)),
        sa.Column("raw_size", sa.BigInteger, nullable=False),
        sa.Column("stored_size", sa.BigInteger, nullable=False),
        sa.Column("failure_reason", sa.Text),
        sa.Column("metadata", sa.Text, nullable=False),
    )
    op.create_index("ix_backups_started_at", "backups", ["started_at"])
    op.create_table(
        "artifacts",
        sa.Column("backup_name", sa.String(255), primary_key=True),
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("digest", sa.String(64), nullable=False, index=True),
        sa.Column("codec", sa.String(16), nullable=False),
        sa.Column("raw_size", sa.BigInteger, nullable=False),
        sa.Column("stored_size", sa.BigInteger, nullable=False),
        sa.Column("stored_sha256", sa.String(64), nullable=False),
    )
    op.create_table(
        "blobs",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("codec", sa.String(16), primary_key=True),
        sa.Column("raw_size", sa.BigInteger, nullable=False),
        sa.Column("stored_size", sa.BigInteger, nullable=False),
        sa.Column("stored_sha256", sa.String(64), nullable=False),
        sa.Column("refcount", sa.Integer, nullable=False),
        sa.Column("first_seq", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "checkpoints",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    for name in ("checkpoints", "blobs", "artifacts", "backups", "events"):
        op.drop_table(name)

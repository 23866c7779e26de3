"""Table definitions of the catalog. Alembic migrations create them; this is the code's view."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

events = Table(
    "events",
    metadata,
    Column(
        "seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    ),
    Column("id", String(36), nullable=False, unique=True),
    Column("type", String(64), nullable=False, index=True),
    Column("occurred_at", String(32), nullable=False),
    Column("actor", String(255), nullable=False),
    Column("subject", String(255), nullable=False, index=True),
    Column("payload", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

backups = Table(
    "backups",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("backup_type", String(32), nullable=False),
    Column("status", String(16), nullable=False, index=True),
    Column("started_seq", BigInteger, nullable=False),
    Column("started_at", String(32), nullable=False, index=True),
    Column("finished_at", String(32)),
    Column("duration_seconds", Float),
    Column("actor", String(255), nullable=False),
    Column("hostname", String(255)),
    Column("pid", Integer),
    Column("database_name", String(255)),
    Column("database_host", String(255)),
    Column("verified", Boolean, nullable=False, default=False),
    Column("last_verified_at", String(32)),
    Column("last_verify_ok", Boolean),
    Column("git_commit", String(64)),
    Column("git_branch", String(255)),
    Column("raw_size", BigInteger, nullable=False, default=0),
    Column("stored_size", BigInteger, nullable=False, default=0),
    Column("failure_reason", Text),
    Column("metadata", Text, nullable=False, default="{}"),
    Column("last_drill_at", String(32)),
    Column("last_drill_ok", Boolean),
    Column("last_drill_seconds", Float),
    Column("pinned", Boolean, nullable=False, default=False),
    Column("pin_reason", Text),
    Column("deleted_rule", String(64)),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("backup_name", String(255), primary_key=True),
    Column("kind", String(32), primary_key=True),
    Column("digest", String(64), nullable=False, index=True),
    Column("codec", String(16), nullable=False),
    Column("raw_size", BigInteger, nullable=False),
    Column("stored_size", BigInteger, nullable=False),
    Column("stored_sha256", String(64), nullable=False),
    # An encrypted artifact: who decrypts it (a JSON list), as its backup recorded it or as
    # the BlobMigrated of its blob changed it; NULL when not encrypted.
    Column("recipients", Text),
)

blobs = Table(
    "blobs",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("codec", String(16), primary_key=True),
    Column("raw_size", BigInteger, nullable=False),
    Column("stored_size", BigInteger, nullable=False),
    Column("stored_sha256", String(64), nullable=False),
    Column("refcount", Integer, nullable=False),
    Column("first_seq", BigInteger, nullable=False),
)

# Which backups are complete (every artifact's blob) on which offsite target.
offsite_copies = Table(
    "offsite_copies",
    metadata,
    Column("target", String(255), primary_key=True),
    Column("backup_name", String(255), primary_key=True, index=True),
    Column("location", Text, nullable=False),
    Column("pushed_seq", BigInteger, nullable=False),
    Column("pushed_at", String(32), nullable=False),
)

# One row per projection: the last event folded in, and the chain head it had then.
checkpoints = Table(
    "checkpoints",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("last_seq", BigInteger, nullable=False),
    Column("head_hash", String(64), nullable=False),
)

PROJECTION_TABLES = (backups, artifacts, blobs, offsite_copies)

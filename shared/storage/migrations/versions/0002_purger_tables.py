"""Purger tables: consumed events, subject facts, retention clocks, erasure proofs

The API stops keeping event payloads (the purger's facts take their place) and deletes outbox
rows once published instead of marking them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 06:12:51.739216
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import shared.storage.tables.types

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("stored_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stored_event_subject_pseudonym"))
    op.drop_table("stored_event")
    op.execute("DELETE FROM outbox_message WHERE published_at IS NOT NULL")
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_message_unpublished")
        batch_op.drop_column("published_at")

    op.create_table(
        "consumed_event",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column(
            "consumed_at", shared.storage.tables.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_consumed_event")),
    )
    op.create_table(
        "erasure",
        sa.Column("erasure_id", sa.Uuid(), nullable=False),
        sa.Column("subject_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("category", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("rule", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("legal_basis", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("due_at", shared.storage.tables.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column(
            "executed_at", shared.storage.tables.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("erasure_id", name=op.f("pk_erasure")),
    )
    op.create_index(op.f("ix_erasure_category"), "erasure", ["category"], unique=False)
    op.create_index(op.f("ix_erasure_executed_at"), "erasure", ["executed_at"], unique=False)
    op.create_index(op.f("ix_erasure_subject_hash"), "erasure", ["subject_hash"], unique=False)
    op.create_table(
        "retention_clock",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("erasure_id", sa.Uuid(), nullable=False),
        sa.Column("subject_pseudonym", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("category", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("scope_key", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("scope_value", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("due_at", shared.storage.tables.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("rule", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("legal_basis", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column(
            "updated_at", shared.storage.tables.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retention_clock")),
        sa.UniqueConstraint("erasure_id", name=op.f("uq_retention_clock_erasure_id")),
        sa.UniqueConstraint(
            "subject_pseudonym",
            "category",
            "scope_key",
            "scope_value",
            name="uq_retention_clock_key",
        ),
    )
    op.create_index(
        op.f("ix_retention_clock_category"), "retention_clock", ["category"], unique=False
    )
    op.create_index(
        "ix_retention_clock_sweep",
        "retention_clock",
        ["due_at"],
        unique=False,
        postgresql_where=sa.text("state IN ('pending', 'due', 'erase_now')"),
        sqlite_where=sa.text("state IN ('pending', 'due', 'erase_now')"),
    )
    op.create_table(
        "subject_fact",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("subject_pseudonym", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_subject_fact")),
    )
    op.create_index(
        op.f("ix_subject_fact_subject_pseudonym"),
        "subject_fact",
        ["subject_pseudonym"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_subject_fact_subject_pseudonym"), table_name="subject_fact")
    op.drop_table("subject_fact")
    op.drop_index(
        "ix_retention_clock_sweep",
        table_name="retention_clock",
        postgresql_where=sa.text("state IN ('pending', 'due', 'erase_now')"),
        sqlite_where=sa.text("state IN ('pending', 'due', 'erase_now')"),
    )
    op.drop_index(op.f("ix_retention_clock_category"), table_name="retention_clock")
    op.drop_table("retention_clock")
    op.drop_index(op.f("ix_erasure_subject_hash"), table_name="erasure")
    op.drop_index(op.f("ix_erasure_executed_at"), table_name="erasure")
    op.drop_index(op.f("ix_erasure_category"), table_name="erasure")
    op.drop_table("erasure")
    op.drop_table("consumed_event")
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "published_at",
                shared.storage.tables.types.UtcDateTime(timezone=True),
                nullable=True,
            )
        )
        batch_op.create_index("ix_outbox_message_unpublished", ["published_at", "id"], unique=False)
    op.create_table(
        "stored_event",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("subject_pseudonym", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("type", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column(
            "occurred_at", shared.storage.tables.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column(
            "received_at", shared.storage.tables.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_stored_event")),
    )
    with op.batch_alter_table("stored_event", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_stored_event_subject_pseudonym"), ["subject_pseudonym"], unique=False
        )

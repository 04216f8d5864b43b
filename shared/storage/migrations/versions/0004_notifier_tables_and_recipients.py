"""Notifier tables and recipients

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 20:39:49.173238
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import shared.storage.tables.types

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "delivery_attempt",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("notification_id", sa.Uuid(), nullable=False),
        sa.Column(
            "attempted_at", shared.storage.tables.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(length=300), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_attempt")),
    )
    with op.batch_alter_table("delivery_attempt", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_delivery_attempt_notification_id"), ["notification_id"], unique=False
        )

    op.create_table(
        "disclosure",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("subject_pseudonym", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("recipient_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("category", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("scope_key", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("scope_value", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("recipient_ref", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column(
            "disclosed_at", shared.storage.tables.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_disclosure")),
    )
    with op.batch_alter_table("disclosure", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_disclosure_subject_pseudonym"), ["subject_pseudonym"], unique=False
        )

    op.create_table(
        "heard_erasure",
        sa.Column("erasure_id", sa.Uuid(), nullable=False),
        sa.Column("subject_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("category", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("scope_key", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("scope_value", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("legal_basis", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column(
            "executed_at", shared.storage.tables.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "forget_after", shared.storage.tables.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("erasure_id", name=op.f("pk_heard_erasure")),
    )
    with op.batch_alter_table("heard_erasure", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_heard_erasure_forget_after"), ["forget_after"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_heard_erasure_subject_hash"), ["subject_hash"], unique=False
        )

    op.create_table(
        "notification",
        sa.Column("notification_id", sa.Uuid(), nullable=False),
        sa.Column("erasure_id", sa.Uuid(), nullable=True),
        sa.Column("event_id", sa.Uuid(), nullable=True),
        sa.Column("recipient_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("type", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("category", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("scope", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("recipient_ref", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("legal_basis", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column(
            "respond_by", shared.storage.tables.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column(
            "next_attempt_at",
            shared.storage.tables.types.UtcDateTime(timezone=True),
            nullable=False,
        ),
        sa.Column(
            "lease_until", shared.storage.tables.types.UtcDateTime(timezone=True), nullable=True
        ),
        sa.Column(
            "give_up_at", shared.storage.tables.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "created_at", shared.storage.tables.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "delivered_at", shared.storage.tables.types.UtcDateTime(timezone=True), nullable=True
        ),
        sa.Column(
            "failed_at", shared.storage.tables.types.UtcDateTime(timezone=True), nullable=True
        ),
        sa.Column(
            "confirmed_at", shared.storage.tables.types.UtcDateTime(timezone=True), nullable=True
        ),
        sa.PrimaryKeyConstraint("notification_id", name=op.f("pk_notification")),
        sa.UniqueConstraint(
            "erasure_id",
            "recipient_id",
            "recipient_ref",
            name=op.f("uq_notification_erasure_id_recipient_id_recipient_ref"),
        ),
    )
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.create_index(
            "ix_notification_due",
            ["next_attempt_at"],
            unique=False,
            postgresql_where=sa.text("state IN ('pending', 'delivering')"),
            sqlite_where=sa.text("state IN ('pending', 'delivering')"),
        )
        batch_op.create_index(
            batch_op.f("ix_notification_erasure_id"), ["erasure_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_notification_recipient_id"), ["recipient_id"], unique=False
        )

    op.create_table(
        "recipient",
        sa.Column("recipient_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("country", sqlmodel.sql.sqltypes.AutoString(length=2), nullable=False),
        sa.Column("webhook_url", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
        sa.Column("categories", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("secret", sa.String(length=500), nullable=False),
        sa.Column("previous_secret", sa.String(length=500), nullable=True),
        sa.Column(
            "previous_secret_expires_at",
            shared.storage.tables.types.UtcDateTime(timezone=True),
            nullable=True,
        ),
        sa.Column(
            "created_at", shared.storage.tables.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "updated_at", shared.storage.tables.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("recipient_id", name=op.f("pk_recipient")),
    )
    op.create_table(
        "recipient_health",
        sa.Column("recipient_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column(
            "failing_since", shared.storage.tables.types.UtcDateTime(timezone=True), nullable=True
        ),
        sa.Column(
            "last_success_at", shared.storage.tables.types.UtcDateTime(timezone=True), nullable=True
        ),
        sa.Column(
            "last_failure_at", shared.storage.tables.types.UtcDateTime(timezone=True), nullable=True
        ),
        sa.PrimaryKeyConstraint("recipient_id", name=op.f("pk_recipient_health")),
    )


def downgrade() -> None:
    op.drop_table("recipient_health")
    op.drop_table("recipient")
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notification_recipient_id"))
        batch_op.drop_index(batch_op.f("ix_notification_erasure_id"))
        batch_op.drop_index(
            "ix_notification_due",
            postgresql_where=sa.text("state IN ('pending', 'delivering')"),
            sqlite_where=sa.text("state IN ('pending', 'delivering')"),
        )

    op.drop_table("notification")
    with op.batch_alter_table("heard_erasure", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_heard_erasure_subject_hash"))
        batch_op.drop_index(batch_op.f("ix_heard_erasure_forget_after"))

    op.drop_table("heard_erasure")
    with op.batch_alter_table("disclosure", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_disclosure_subject_pseudonym"))

    op.drop_table("disclosure")
    with op.batch_alter_table("delivery_attempt", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_delivery_attempt_notification_id"))

    op.drop_table("delivery_attempt")

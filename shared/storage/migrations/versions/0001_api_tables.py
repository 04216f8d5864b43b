"""API tables: events, idempotency, outbox, keys, audit, relay lease

Revision ID: 0001
Revises:
Create Date: 2026-11-25 03:11:00.086684
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import shared.storage.tables.types

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_key",
        sa.Column("key_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("scopes", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("secret_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column(
            "created_at", shared.storage.tables.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "revoked_at", shared.storage.tables.types.UtcDateTime(timezone=True), nullable=True
        ),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_api_key")),
    )
    with op.batch_alter_table("api_key", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_key_name"), ["name"], unique=False)

    op.create_table(
        "audit_entry",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("at", shared.storage.tables.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("detail", sa.String(length=2000), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_entry")),
    )
    with op.batch_alter_table("audit_entry", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_entry_at"), ["at"], unique=False)

    op.create_table(
        "idempotency_record",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("body_digest", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column(
            "accepted_at", shared.storage.tables.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_idempotency_record")),
    )
    op.create_table(
        "outbox_message",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("topic", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("message_key", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("headers", sa.Text(), nullable=False),
        sa.Column(
            "created_at", shared.storage.tables.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "published_at", shared.storage.tables.types.UtcDateTime(timezone=True), nullable=True
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_message")),
    )
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_message_unpublished", ["published_at", "id"], unique=False)

    op.create_table(
        "relay_lease",
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
        sa.Column("holder", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column(
            "expires_at", shared.storage.tables.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_relay_lease")),
    )
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


def downgrade() -> None:
    with op.batch_alter_table("stored_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stored_event_subject_pseudonym"))

    op.drop_table("stored_event")
    op.drop_table("relay_lease")
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_message_unpublished")

    op.drop_table("outbox_message")
    op.drop_table("idempotency_record")
    with op.batch_alter_table("audit_entry", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_entry_at"))

    op.drop_table("audit_entry")
    with op.batch_alter_table("api_key", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_key_name"))

    op.drop_table("api_key")

"""Published outbox messages are kept for a while, and the offset of a message the broker
acknowledged is recorded per partition.

A broker can lose messages it acknowledged (the embedded broker keeps nothing on disk; a real
cluster after an unclean leader election): the relay then sees a partition end at or before the
recorded offset, and moves the kept messages of that topic back into the outbox, under their
own ids: on SQLite the outbox's ids are therefore never used again (AUTOINCREMENT).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 16:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import shared.storage.tables.types

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # SQLite gives an emptied table's next row id 1 again unless AUTOINCREMENT says
        # otherwise; a kept message moves back into the outbox under its own id.
        with op.batch_alter_table(
            "outbox_message", recreate="always", table_kwargs={"sqlite_autoincrement": True}
        ):
            pass
    op.create_table(
        "published_message",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("topic", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("message_key", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("headers", sa.Text(), nullable=False),
        sa.Column(
            "created_at", shared.storage.tables.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "published_at", shared.storage.tables.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_published_message")),
    )
    with op.batch_alter_table("published_message", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_published_message_published_at"), ["published_at"], unique=False
        )
    op.create_table(
        "relay_watermark",
        sa.Column("topic", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("kafka_partition", sa.Integer(), nullable=False),
        sa.Column("acknowledged_offset", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("topic", "kafka_partition", name=op.f("pk_relay_watermark")),
    )


def downgrade() -> None:
    op.drop_table("relay_watermark")
    with op.batch_alter_table("published_message", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_published_message_published_at"))
    op.drop_table("published_message")

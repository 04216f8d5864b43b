"""Published outbox rows are kept for a while, with the partition they went to, and the end of
what the broker acknowledged per partition is recorded.

A broker can lose messages it acknowledged (the embedded broker keeps nothing on disk; a real
cluster after an unclean leader election): the relay then sees a partition end at or before the
offset of a message it had acknowledged there, and publishes the kept rows of that partition
again.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 16:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import shared.tables.types

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UNPUBLISHED = sa.text("published_at IS NULL")
_PUBLISHED = sa.text("published_at IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("published_at", shared.tables.types.UtcDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("kafka_partition", sa.Integer(), nullable=True))
        batch_op.create_index(
            "ix_outbox_message_unpublished",
            ["id"],
            postgresql_where=_UNPUBLISHED,
            sqlite_where=_UNPUBLISHED,
        )
        batch_op.create_index(
            "ix_outbox_message_published_at",
            ["published_at"],
            postgresql_where=_PUBLISHED,
            sqlite_where=_PUBLISHED,
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
    # Before this revision a published row was deleted at once.
    op.execute("DELETE FROM outbox_message WHERE published_at IS NOT NULL")
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_message_published_at")
        batch_op.drop_index("ix_outbox_message_unpublished")
        batch_op.drop_column("kafka_partition")
        batch_op.drop_column("published_at")

"""Retention: the indexes the prunes choose their batches by (idempotency records by
``accepted_at``, consumed events by ``consumed_at``), and a notification's
``particulars_erased_at`` with a partial index on the finished notifications that still hold
their scope's values and recipient's reference.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 14:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.storage.tables.types

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PARTICULARS_KEPT = sa.text("state IN ('delivered', 'failed') AND particulars_erased_at IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("idempotency_record", schema=None) as batch_op:
        batch_op.create_index("ix_idempotency_record_accepted_at", ["accepted_at"])
    with op.batch_alter_table("consumed_event", schema=None) as batch_op:
        batch_op.create_index("ix_consumed_event_consumed_at", ["consumed_at"])
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "particulars_erased_at",
                shared.storage.tables.types.UtcDateTime(timezone=True),
                nullable=True,
            )
        )
    op.create_index(
        "ix_notification_particulars_kept",
        "notification",
        ["notification_id"],
        postgresql_where=_PARTICULARS_KEPT,
        sqlite_where=_PARTICULARS_KEPT,
    )


def downgrade() -> None:
    op.drop_index("ix_notification_particulars_kept", table_name="notification")
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.drop_column("particulars_erased_at")
    with op.batch_alter_table("consumed_event", schema=None) as batch_op:
        batch_op.drop_index("ix_consumed_event_consumed_at")
    with op.batch_alter_table("idempotency_record", schema=None) as batch_op:
        batch_op.drop_index("ix_idempotency_record_accepted_at")

"""Notifications: no index of their own on erasure_id. The unique (erasure_id, recipient_id,
recipient_ref) index begins with it and finds an erasure's notifications as well, and every
claim and every recorded attempt rewrote both (a notification's updates are not HOT).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 11:15:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.drop_index("ix_notification_erasure_id")


def downgrade() -> None:
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.create_index("ix_notification_erasure_id", ["erasure_id"])

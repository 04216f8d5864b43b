"""Notifications: an index on erasure_id instead of the unique (erasure_id, recipient_id,
recipient_ref) constraint. A confirmed notification gives up its recipient_ref, so a recipient
that knew one erasure's data under two references could not confirm the second notification;
the primary key, derived from the same three, keeps a notification from being made twice. The
erasure view finds an erasure's notifications through the new, narrower index (0009 had dropped
an erasure_id index of the same name because the three-column one served too).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26 12:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UNIQUE = "uq_notification_erasure_id_recipient_id_recipient_ref"


def upgrade() -> None:
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.drop_constraint(_UNIQUE, type_="unique")
        batch_op.create_index("ix_notification_erasure_id", ["erasure_id"])


def downgrade() -> None:
    # Confirmed notifications gave up their reference, so two of one erasure and recipient may
    # share the empty one, which the constraint refuses: each gets its own id as reference.
    notification = sa.table(
        "notification",
        sa.column("notification_id"),
        sa.column("recipient_ref", sa.String),
        sa.column("confirmed_at"),
    )
    op.execute(
        notification.update()
        .where(notification.c.confirmed_at.is_not(None), notification.c.recipient_ref == "")
        .values(recipient_ref=sa.cast(notification.c.notification_id, sa.String))
    )
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.drop_index("ix_notification_erasure_id")
        batch_op.create_unique_constraint(_UNIQUE, ["erasure_id", "recipient_id", "recipient_ref"])

"""Notifications wait for an inactive recipient and an admin may close them; disclosures are
found by recipient.

A notification for a recipient that is inactive when the erasure is executed is kept, in state
awaiting_recipient, until the recipient is active again or an admin closes it with a reason
(closed_at, closed_by, close_reason). A partial index finds the few that wait. The unregistered
recipients' listing groups disclosures by recipient_id, which now has an index.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 14:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import shared.storage.tables.types

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_AWAITING = sa.text("state = 'awaiting_recipient'")


def upgrade() -> None:
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "closed_at", shared.storage.tables.types.UtcDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column("closed_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True)
        )
        batch_op.add_column(sa.Column("close_reason", sa.String(length=500), nullable=True))
        batch_op.create_index(
            "ix_notification_awaiting",
            ["recipient_id"],
            postgresql_where=_AWAITING,
            sqlite_where=_AWAITING,
        )
    with op.batch_alter_table("disclosure", schema=None) as batch_op:
        batch_op.create_index("ix_disclosure_recipient_id", ["recipient_id"])


def downgrade() -> None:
    with op.batch_alter_table("disclosure", schema=None) as batch_op:
        batch_op.drop_index("ix_disclosure_recipient_id")
    # Without the state, what waits or was closed is pending or failed as before.
    notification = sa.table("notification", sa.column("state", sa.String))
    op.execute(
        notification.update()
        .where(notification.c.state == "awaiting_recipient")
        .values(state="pending")
    )
    op.execute(notification.update().where(notification.c.state == "closed").values(state="failed"))
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.drop_index("ix_notification_awaiting")
        batch_op.drop_column("close_reason")
        batch_op.drop_column("closed_by")
        batch_op.drop_column("closed_at")

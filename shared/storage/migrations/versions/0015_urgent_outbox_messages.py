"""Urgent outbox messages: the relay publishes them first, ahead of any backlog.

``outbox_message.urgent`` is true for the messages of the immediate lane
(``gallring.lifecycle-immediate.v1``: an unsubscribe, an objection, a hold): the relay reads them
through a partial index that holds only them, before the oldest others, so that an unsubscribe
accepted behind a back-fill's hundreds of thousands of unpublished rows is published in the next
round, not after all of them. The immediate lane's rows already waiting are marked urgent too:
left behind, they would be overtaken by their subjects' newer ones. (The index is built without
``CONCURRENTLY``: outbox writes wait while it reads the table, a moment for an outbox the relay
keeps short; deploy it between back-fills.)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-08 01:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_URGENT = sa.text("urgent")


def upgrade() -> None:
    # Not in batch mode: on SQLite it would copy the table without its AUTOINCREMENT (0013).
    op.add_column(
        "outbox_message",
        sa.Column("urgent", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.execute(
        "UPDATE outbox_message SET urgent = true WHERE topic = 'gallring.lifecycle-immediate.v1'"
    )
    op.create_index(
        "ix_outbox_message_urgent",
        "outbox_message",
        ["id"],
        unique=False,
        postgresql_where=_URGENT,
        sqlite_where=_URGENT,
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_message_urgent", table_name="outbox_message")
    if op.get_bind().dialect.name != "sqlite":
        op.drop_column("outbox_message", "urgent")
        return
    with op.batch_alter_table(  # a copy of the table, which must keep its AUTOINCREMENT
        "outbox_message", recreate="always", table_kwargs={"sqlite_autoincrement": True}
    ) as batch_op:
        batch_op.drop_column("urgent")

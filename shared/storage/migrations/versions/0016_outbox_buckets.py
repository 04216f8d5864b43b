"""The outbox's buckets: relays that share the publishing read each bucket they hold oldest first.

A key's bucket is ``hashtext(message_key) & 63`` (``shared.storage.tables.outbox.bucket_of``);
with ``GALLRING_RELAY_SHARDED`` each relay holds the leases of some buckets and reads each of
them through this index, in id order. PostgreSQL only: SQLite has a single relay. (Built without
``CONCURRENTLY``, as 0015: outbox writes wait while it reads a table the relay keeps short.)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-08 04:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE INDEX ix_outbox_message_bucket "
            "ON outbox_message ((hashtext(message_key) & 63), id)"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_outbox_message_bucket", table_name="outbox_message")

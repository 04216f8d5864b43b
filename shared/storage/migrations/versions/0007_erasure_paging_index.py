"""Erasure proofs get an index for the API's paging in due order, and lose the one on their
execution time, which no query reads

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 04:50:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("erasure", schema=None) as batch_op:
        batch_op.create_index("ix_erasure_due_at_erasure_id", ["due_at", "erasure_id"])
        batch_op.drop_index("ix_erasure_executed_at")


def downgrade() -> None:
    with op.batch_alter_table("erasure", schema=None) as batch_op:
        batch_op.create_index("ix_erasure_executed_at", ["executed_at"])
        batch_op.drop_index("ix_erasure_due_at_erasure_id")

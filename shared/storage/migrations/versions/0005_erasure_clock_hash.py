"""Erasure proofs keep a hash of the erased clock

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 21:23:25.485155
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("erasure", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("clock_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
        batch_op.create_index(batch_op.f("ix_erasure_clock_hash"), ["clock_hash"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("erasure", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_erasure_clock_hash"))
        batch_op.drop_column("clock_hash")

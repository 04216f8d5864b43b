"""Erasure confirmations

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 06:22:41.824003
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import shared.storage.tables.types

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "erasure_confirmation",
        sa.Column("erasure_id", sa.Uuid(), nullable=False),
        sa.Column("system", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column(
            "confirmed_at", shared.storage.tables.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("erasure_id", "system", name=op.f("pk_erasure_confirmation")),
    )


def downgrade() -> None:
    op.drop_table("erasure_confirmation")

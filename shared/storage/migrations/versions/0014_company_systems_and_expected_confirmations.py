"""The register of the company's systems, and the systems each erasure expects a confirmation from.

``company_system`` (the API's): a system, the categories it holds, how long it has to confirm an
erasure (``confirm_within_seconds``), whether it is active. ``erasure_expected_system`` (the
purger's): the active systems that held an erasure's category when it was executed, with the time
their confirmation is due by and, once it came, when. Erasures executed before this migration
expect no system, and keep the state they had (``confirmed`` by any system's confirmation).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 19:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import shared.storage.tables.types

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UNCONFIRMED = sa.text("confirmed_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "company_system",
        sa.Column("system_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("categories", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("confirm_within_seconds", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column(
            "created_at", shared.storage.tables.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "updated_at", shared.storage.tables.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("system_id", name=op.f("pk_company_system")),
    )
    op.create_table(
        "erasure_expected_system",
        sa.Column("erasure_id", sa.Uuid(), nullable=False),
        sa.Column("system", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("due_by", shared.storage.tables.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column(
            "confirmed_at", shared.storage.tables.types.UtcDateTime(timezone=True), nullable=True
        ),
        sa.PrimaryKeyConstraint("erasure_id", "system", name=op.f("pk_erasure_expected_system")),
    )
    with op.batch_alter_table("erasure_expected_system", schema=None) as batch_op:
        batch_op.create_index(
            "ix_erasure_expected_system_unconfirmed",
            ["system", "due_by"],
            postgresql_where=_UNCONFIRMED,
            sqlite_where=_UNCONFIRMED,
        )


def downgrade() -> None:
    with op.batch_alter_table("erasure_expected_system", schema=None) as batch_op:
        batch_op.drop_index("ix_erasure_expected_system_unconfirmed")
    op.drop_table("erasure_expected_system")
    op.drop_table("company_system")

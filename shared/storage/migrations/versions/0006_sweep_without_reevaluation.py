"""Facts name their event type and clocks the policy they were evaluated under, so that the sweep
can erase a subject's last clocks in SQL without evaluating the subject again

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 03:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("subject_fact", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("event_type", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=True)
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("UPDATE subject_fact SET event_type = message::json->>'type'")
    else:
        op.execute("UPDATE subject_fact SET event_type = json_extract(message, '$.type')")
    holds = sa.text("event_type IN ('legal_hold.placed', 'legal_hold.released')")
    with op.batch_alter_table("subject_fact", schema=None) as batch_op:
        batch_op.alter_column(
            "event_type", existing_type=sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False
        )
        batch_op.create_index(
            "ix_subject_fact_holds",
            ["subject_pseudonym"],
            unique=False,
            postgresql_where=holds,
            sqlite_where=holds,
        )
    # Clocks stored before have no digest: the sweep evaluates them again, as it always did.
    with op.batch_alter_table("retention_clock", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("policy_digest", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("retention_clock", schema=None) as batch_op:
        batch_op.drop_column("policy_digest")
    with op.batch_alter_table("subject_fact", schema=None) as batch_op:
        batch_op.drop_index("ix_subject_fact_holds")
        batch_op.drop_column("event_type")

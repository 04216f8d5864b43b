"""Policy changes through disposition review: a policy (or engine revision) that makes more of a
category's clocks due at once than its ``max_per_day`` opens a review (cause ``policy_change``)
instead of being applied by the hourly refresh.

``disposition_review.policy_digest`` and ``previous_policy_digest``: the policy that made the
review's clocks due, and the one their stored verdicts were reached under. A partial unique
index on (category, policy_digest) of the reviews still ``gathering`` clocks (not yet opened):
purgers refreshing together make one.
A downgrade makes these reviews what the release before knows: ``policy_change`` becomes
``max_per_day`` (past the limit), a gathering review an ``open`` one (its clocks wait for a
DPO's decision: none is erased by mistake), a released one ``approved`` (its clocks were being
made due anyway).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-10 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_GATHERING = sa.text("state = 'gathering'")


def upgrade() -> None:
    # Nullable, no default: PostgreSQL and SQLite add them without rewriting the table.
    with op.batch_alter_table("disposition_review", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("policy_digest", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
        batch_op.add_column(
            sa.Column(
                "previous_policy_digest",
                sqlmodel.sql.sqltypes.AutoString(length=64),
                nullable=True,
            )
        )
    op.create_index(
        "uq_disposition_review_gathering",
        "disposition_review",
        ["category", "policy_digest"],
        unique=True,
        postgresql_where=_GATHERING,
        sqlite_where=_GATHERING,
    )


def downgrade() -> None:
    op.execute(
        "UPDATE disposition_review SET state = CASE state WHEN 'gathering' THEN 'open' "
        "WHEN 'released' THEN 'approved' ELSE state END, cause = 'max_per_day' "
        "WHERE cause = 'policy_change'"
    )
    op.drop_index("uq_disposition_review_gathering", table_name="disposition_review")
    with op.batch_alter_table("disposition_review", schema=None) as batch_op:
        batch_op.drop_column("previous_policy_digest")
        batch_op.drop_column("policy_digest")

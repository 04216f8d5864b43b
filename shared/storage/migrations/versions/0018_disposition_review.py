"""Disposition review: a brake on sweeps that would erase more of a category than its policy's
``review:`` allows.

``disposition_review`` (the purger's): the clocks a sweep stopped, per category, UTC day and
cause, with their counts and the decision once applied. ``disposition_count`` (the purger's):
how many erasures of a category a day has executed against its ``max_per_day``.
``review_decision`` (the API's): a DPO's decision on a review. ``retention_clock.review_id``:
the review a clock waits in (state ``awaiting_review``, which the sweep's partial index leaves
out as it does ``held``), or was approved by; a partial index on (review_id, id) finds a
review's clocks, in id order.
A downgrade leaves clocks awaiting a review in that state, which a release before this one
does not know: its sweep does not take them, but once an event about their subject (or a policy
refresh) evaluates them again, the engine's verdict makes them due and that release erases them
at its next sweep, unreviewed. Decide the open reviews (or hold their clocks) before a
downgrade.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-09 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import shared.storage.tables.types

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_IN_A_REVIEW = sa.text("review_id IS NOT NULL")
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _utc(name: str, *, nullable: bool) -> sa.Column:
    return sa.Column(
        name, shared.storage.tables.types.UtcDateTime(timezone=True), nullable=nullable
    )


def upgrade() -> None:
    op.create_table(
        "disposition_review",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("category", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("cause", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("opened_date", sa.Date(), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("clocks", sa.Integer(), nullable=False),
        sa.Column("counts", sa.Text(), nullable=False),
        _utc("created_at", nullable=False),
        _utc("decided_at", nullable=True),
        sa.Column("decided_by", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disposition_review")),
    )
    with op.batch_alter_table("disposition_review", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_disposition_review_state"), ["state"], unique=False)
    op.create_table(
        "disposition_count",
        sa.Column("category", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("utc_date", sa.Date(), nullable=False),
        sa.Column("erased", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("category", "utc_date", name=op.f("pk_disposition_count")),
    )
    op.create_table(
        "review_decision",
        sa.Column("review_id", _ID, autoincrement=False, nullable=False),
        sa.Column("decision", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("key_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("ground", sa.String(length=300), nullable=True),
        sa.Column("until_date", sa.Date(), nullable=True),
        sa.Column("hold_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("events", sa.Integer(), nullable=False),
        _utc("decided_at", nullable=False),
        sa.PrimaryKeyConstraint("review_id", name=op.f("pk_review_decision")),
    )
    # Nullable, no default: PostgreSQL and SQLite add it without rewriting the table.
    with op.batch_alter_table("retention_clock", schema=None) as batch_op:
        batch_op.add_column(sa.Column("review_id", _ID, nullable=True))
    op.create_index(
        "ix_retention_clock_review",
        "retention_clock",
        ["review_id", "id"],
        postgresql_where=_IN_A_REVIEW,
        sqlite_where=_IN_A_REVIEW,
    )


def downgrade() -> None:
    op.drop_index("ix_retention_clock_review", table_name="retention_clock")
    with op.batch_alter_table("retention_clock", schema=None) as batch_op:
        batch_op.drop_column("review_id")
    op.drop_table("review_decision")
    op.drop_table("disposition_count")
    with op.batch_alter_table("disposition_review", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_disposition_review_state"))
    op.drop_table("disposition_review")

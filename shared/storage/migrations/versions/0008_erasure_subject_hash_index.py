"""Erasure proofs: one hash index on subject_hash (on PostgreSQL) instead of B-trees on
subject_hash and clock_hash, so that an erasure writes one index fewer, and a small one.

Built while writes to ``erasure`` wait: at millions of proofs, run it in a quiet hour.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 06:10:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("erasure", schema=None) as batch_op:
        batch_op.drop_index("ix_erasure_clock_hash")
        batch_op.drop_index("ix_erasure_subject_hash")
        batch_op.create_index("ix_erasure_subject_hash", ["subject_hash"], postgresql_using="hash")


def downgrade() -> None:
    with op.batch_alter_table("erasure", schema=None) as batch_op:
        batch_op.drop_index("ix_erasure_subject_hash")
        batch_op.create_index("ix_erasure_subject_hash", ["subject_hash"])
        batch_op.create_index("ix_erasure_clock_hash", ["clock_hash"])

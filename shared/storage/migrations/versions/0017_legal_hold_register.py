"""The register of legal holds (the API's): ``legal_hold``, each hold with its matter, reason,
owner team, review date, what it covers and its release (requested by one key, approved by
another); ``legal_hold_subject``, the subjects (pseudonyms) a hold was placed on, under which of
the engine's hold ids, deleted at the release.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-09 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import shared.storage.tables.types

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UTC = shared.storage.tables.types.UtcDateTime(timezone=True)


def _text(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    op.create_table(
        "legal_hold",
        sa.Column("hold_id", _text(64), nullable=False),
        sa.Column("matter", _text(100), nullable=False),
        sa.Column("reason", _text(30), nullable=False),
        sa.Column("reason_text", _text(500), nullable=True),
        sa.Column("owner_team", _text(100), nullable=False),
        sa.Column("review_by", sa.Date(), nullable=False),
        sa.Column("coverage", _text(20), nullable=False),
        sa.Column("category", _text(40), nullable=True),
        sa.Column("client_id", _text(128), nullable=True),
        sa.Column("case_ids", sa.Text(), nullable=True),
        sa.Column("subjects", sa.Integer(), nullable=False),
        sa.Column("state", _text(20), nullable=False),
        sa.Column("placed_at", _UTC, nullable=False),
        sa.Column("placed_by", _text(100), nullable=False),
        sa.Column("release_requested_at", _UTC, nullable=True),
        sa.Column("release_requested_by", _text(100), nullable=True),
        sa.Column("release_requested_key", _text(32), nullable=True),
        sa.Column("released_at", _UTC, nullable=True),
        sa.Column("released_by", _text(100), nullable=True),
        sa.Column("reminded_days", sa.Integer(), nullable=True),
        sa.Column("updated_at", _UTC, nullable=False),
        sa.PrimaryKeyConstraint("hold_id", name=op.f("pk_legal_hold")),
    )
    op.create_table(
        "legal_hold_subject",
        sa.Column("hold_id", _text(64), nullable=False),
        sa.Column("subject_pseudonym", _text(64), nullable=False),
        sa.Column("placement", _text(128), nullable=False),
        sa.PrimaryKeyConstraint(
            "hold_id", "subject_pseudonym", "placement", name=op.f("pk_legal_hold_subject")
        ),
    )


def downgrade() -> None:
    op.drop_table("legal_hold_subject")
    op.drop_table("legal_hold")

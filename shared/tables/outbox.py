"""The transactional outbox every service writes in the same transaction as its own changes,
the lease that lets one relay at a time publish it (so each key keeps its order), and what the
broker acknowledged, so that messages a broker loses after acknowledging them are sent again."""

from datetime import datetime
from uuid import UUID

from sqlalchemy import BigInteger, Column, Index, Integer, Text, text
from sqlmodel import Field, SQLModel

from shared.tables.types import UtcDateTime

_UNPUBLISHED = text("published_at IS NULL")
_PUBLISHED = text("published_at IS NOT NULL")


class OutboxMessage(SQLModel, table=True):
    """A message to publish, written in the same transaction as the change it reports. Once the
    broker acknowledged it, it is kept for ``GALLRING_RELAY_KEEP_PUBLISHED_SECONDS`` (with the
    partition it went to), in case the broker loses it, and then deleted."""

    __tablename__ = "outbox_message"
    __table_args__ = (
        # The relay's next batch: the unpublished rows in order, however many are kept.
        Index(
            "ix_outbox_message_unpublished",
            "id",
            postgresql_where=_UNPUBLISHED,
            sqlite_where=_UNPUBLISHED,
        ),
        # The prune: the published rows, oldest first.
        Index(
            "ix_outbox_message_published_at",
            "published_at",
            postgresql_where=_PUBLISHED,
            sqlite_where=_PUBLISHED,
        ),
    )

    id: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
        ),
    )
    event_id: UUID
    topic: str = Field(max_length=200)
    message_key: str = Field(max_length=200)
    value: str = Field(sa_column=Column(Text, nullable=False))
    headers: str = Field(sa_column=Column(Text, nullable=False), description="JSON object")
    created_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))
    published_at: datetime | None = Field(
        default=None,
        sa_column=Column(UtcDateTime(), nullable=True),
        description="when the broker acknowledged it; None: still to publish",
    )
    kafka_partition: int | None = Field(
        default=None, description="the partition it was published to"
    )


class RelayLease(SQLModel, table=True):
    """Who may publish the outbox now: one relay at a time keeps each key's order."""

    __tablename__ = "relay_lease"

    name: str = Field(primary_key=True, max_length=50)
    holder: str = Field(max_length=100)
    expires_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))


class RelayWatermark(SQLModel, table=True):
    """Per topic partition, the offset of a message the broker acknowledged to a relay: the
    first of the last batch. A partition that now ends at or before it has lost messages.

    (The first of the batch rather than the end of the batch: the embedded broker tells a
    partition's end as its last batch's first offset plus one.)"""

    __tablename__ = "relay_watermark"

    topic: str = Field(primary_key=True, max_length=200)
    kafka_partition: int = Field(primary_key=True)
    acknowledged_offset: int = Field(sa_column=Column(BigInteger(), nullable=False))

"""The transactional outbox every service writes in the same transaction as its own changes,
the lease that lets one relay at a time publish it (so each key keeps its order), and what the
broker acknowledged, so that messages a broker loses after acknowledging them are sent again."""

from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    Text,
    false,
    func,
    literal_column,
    text,
)
from sqlmodel import Field, SQLModel

from shared.storage.tables.table import table_of
from shared.storage.tables.types import UtcDateTime

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement

#: The partial index's condition, as the relay asks it.
URGENT = text("urgent")
#: How many buckets the outbox's keys fall into, for relays that share the publishing
#: (``GALLRING_RELAY_SHARDED``): each holds a lease on some buckets. Fixed for good: a key's
#: bucket must not change while its messages wait, so that one relay at a time publishes them.
BUCKETS = 64


class OutboxMessage(SQLModel, table=True):
    """A message to publish, written in the same transaction as the change it reports; moved to
    :class:`PublishedMessage` once the broker acknowledged it."""

    __tablename__ = "outbox_message"
    # Ids never used again, on SQLite too (which would otherwise give an emptied table's next
    # row id 1): a published message keeps its id, and may come back under it. The urgent
    # messages in an index of their own, which holds only them: the relay reads them first.
    __table_args__ = (
        Index("ix_outbox_message_urgent", "id", postgresql_where=URGENT, sqlite_where=URGENT),
        {"sqlite_autoincrement": True},
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
    urgent: bool = Field(
        default=False,
        sa_column=Column(Boolean, nullable=False, server_default=false()),
        description="published ahead of any backlog (the immediate lane)",
    )


def bucket_of(key: "ColumnElement[str]") -> "ColumnElement[int]":
    """A message key's bucket, in SQL (PostgreSQL: ``hashtext``, stable across its releases
    and platforms; an expression rather than a column, so that every writer of the outbox,
    including an ``INSERT … SELECT``, puts a key in its bucket without knowing of buckets)."""
    # The mask as a literal, not a parameter, so that the index on this expression serves.
    return func.hashtext(key).op("&")(literal_column(str(BUCKETS - 1)))


# The sharing relays read each of their buckets oldest first through this index (PostgreSQL
# only: sharing needs its advisory locks; SQLite has one relay).
_outbox = table_of(OutboxMessage)
Index("ix_outbox_message_bucket", bucket_of(_outbox.c.message_key), _outbox.c.id).ddl_if(
    dialect="postgresql"
)


class PublishedMessage(SQLModel, table=True):
    """An outbox message the broker acknowledged, kept ``GALLRING_RELAY_KEEP_PUBLISHED_SECONDS``
    in case the broker loses it: then it moves back into the outbox under its own id, so it is
    published again ahead of newer messages. (A table of its own: the outbox stays a queue whose
    rows are all to publish, read in id order at no cost.)"""

    __tablename__ = "published_message"

    id: int = Field(
        sa_column=Column(
            BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
        ),
        description="its id in the outbox",
    )
    event_id: UUID
    topic: str = Field(max_length=200)
    message_key: str = Field(max_length=200)
    value: str = Field(sa_column=Column(Text, nullable=False))
    headers: str = Field(sa_column=Column(Text, nullable=False), description="JSON object")
    created_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))
    published_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False, index=True))


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

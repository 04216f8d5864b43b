"""The transactional outbox every service writes in the same transaction as its own changes,
and the lease that lets one relay at a time publish it (so each key keeps its order)."""

from datetime import datetime
from uuid import UUID

from sqlalchemy import BigInteger, Column, Integer, Text
from sqlmodel import Field, SQLModel

from shared.tables.types import UtcDateTime


class OutboxMessage(SQLModel, table=True):
    """A message to publish, written in the same transaction as the change it reports; deleted
    once the broker acknowledged it."""

    __tablename__ = "outbox_message"

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


class RelayLease(SQLModel, table=True):
    """Who may publish the outbox now: one relay at a time keeps each key's order."""

    __tablename__ = "relay_lease"

    name: str = Field(primary_key=True, max_length=50)
    holder: str = Field(max_length=100)
    expires_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))

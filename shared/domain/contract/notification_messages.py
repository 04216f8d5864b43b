"""What the API tells the notifier on ``gallring.notification-commands.v1``: a recipient confirmed
a notification, an operator asked for a failed one to be delivered again, or closed one that
cannot be delivered (its recipient inactive, or failed) with a reason.

The notifier owns notifications; the API records what it learns about them here, through its
outbox, and the notifier applies it. Keyed by notification id; no personal data.
"""

from datetime import datetime
from typing import Annotated, Final, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

SCHEMA_VERSION: Final = 1
NOTIFICATION_CONFIRMED: Final = "notification.confirmed"
REDELIVERY_REQUESTED: Final = "notification.redelivery_requested"
NOTIFICATION_CLOSED: Final = "notification.closed"
#: The longest reason an admin may give for closing a notification (the column's width).
CLOSE_REASON_LENGTH = 500


class _NotificationCommand(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: UUID
    notification_id: UUID
    at: datetime


class NotificationConfirmed(_NotificationCommand):
    """The recipient says it erased what the notification asked (signed with its secret)."""

    type: Literal["notification.confirmed"] = NOTIFICATION_CONFIRMED


class RedeliveryRequested(_NotificationCommand):
    """An operator (``by``: the API key's name) wants a failed notification tried again."""

    type: Literal["notification.redelivery_requested"] = REDELIVERY_REQUESTED
    by: str


class NotificationClosed(_NotificationCommand):
    """An operator (``by``: the API key's name) ends a notification that waits for an inactive
    recipient, or failed, without delivering it; ``reason`` says why, for the record."""

    type: Literal["notification.closed"] = NOTIFICATION_CLOSED
    by: str
    reason: str = Field(min_length=1, max_length=CLOSE_REASON_LENGTH)


NotificationCommand = Annotated[
    NotificationConfirmed | RedeliveryRequested | NotificationClosed, Field(discriminator="type")
]
NOTIFICATION_COMMAND: TypeAdapter[NotificationCommand] = TypeAdapter(NotificationCommand)

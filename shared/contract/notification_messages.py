"""What the API tells the notifier on ``gallring.notification-commands.v1``: a recipient confirmed
a notification, or an operator asked for a failed one to be delivered again.

The notifier owns notifications; the API records what it learns about them here, through its
outbox, and the notifier applies it. Keyed by notification id; no personal data.
"""

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

SCHEMA_VERSION = 1
NOTIFICATION_CONFIRMED = "notification.confirmed"
REDELIVERY_REQUESTED = "notification.redelivery_requested"


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


NotificationCommand = Annotated[
    NotificationConfirmed | RedeliveryRequested, Field(discriminator="type")
]
NOTIFICATION_COMMAND: TypeAdapter[NotificationCommand] = TypeAdapter(NotificationCommand)

"""What the notification endpoints answer. No recipient reference or subject in them: the views
are the proof a DPO shows, and need neither."""

from datetime import datetime
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, StringConstraints

from shared.domain.contract.notification_messages import CLOSE_REASON_LENGTH
from shared.domain.contract.vocabulary import NoNationalId


class NotificationState(StrEnum):
    PENDING = "pending"  # not tried yet, or waiting for its next attempt
    DELIVERING = "delivering"  # tried, not answered with 2xx yet
    DELIVERED = "delivered"  # the recipient answered 2xx
    CONFIRMED = "confirmed"  # and later confirmed it erased the data
    FAILED = "failed"  # no 2xx within the retry horizon; redeliverable, or an admin closes it
    AWAITING_RECIPIENT = "awaiting_recipient"  # its recipient is inactive: waits for it
    CLOSED = "closed"  # an admin ended it undelivered, with a reason


class AttemptView(BaseModel):
    attempted_at: datetime
    status_code: int | None  # None: no answer (refused, timed out…)
    latency_ms: int
    error: str | None


class NotificationView(BaseModel):
    notification_id: UUID
    erasure_id: UUID | None  # for erasure.requested
    event_id: UUID | None  # for rectification.requested and restriction.requested
    recipient_id: str
    type: str
    category: str
    scope: dict[str, str]
    state: NotificationState
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None  # None once delivered or failed
    give_up_at: datetime
    respond_by: datetime
    delivered_at: datetime | None
    failed_at: datetime | None
    confirmed_at: datetime | None
    # Once confirmed, or delivered or failed longer than GALLRING_NOTIFIER_KEEP_PARTICULARS_DAYS
    # ago, the scope keeps its keys only (``{"case_id": ""}``) and it cannot be redelivered.
    particulars_erased_at: datetime | None
    closed_at: datetime | None
    closed_by: str | None  # the admin key's name
    close_reason: str | None
    attempt_log: list[AttemptView]  # every attempt, oldest first: what an auditor asks for


class NotificationPage(BaseModel):
    notifications: list[NotificationView]
    next_cursor: str | None


class NotificationAccepted(BaseModel):
    notification_id: UUID
    status: str


class Closing(BaseModel):
    """Why an admin closes a notification undelivered: kept with it as the record. Say why in
    words about the recipient or the contract, never about the person."""

    model_config = ConfigDict(extra="forbid")

    reason: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=CLOSE_REASON_LENGTH),
        *NoNationalId,
    ]

"""What the erasure endpoints take and answer."""

from datetime import datetime
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.api.notifications.schemas import NotificationView
from shared.domain.contract.vocabulary import IDENTIFIER_PATTERN, NoNationalId


class ErasureState(StrEnum):
    SCHEDULED = "scheduled"  # a clock with a due time, not held
    HELD = "held"  # a legal hold keeps it, whatever its due time
    EXECUTED = "executed"  # command published, Gallring's traces reduced to a proof
    CONFIRMED = "confirmed"  # and at least one of the company's systems confirmed it


class ErasureView(BaseModel):
    erasure_id: UUID
    state: ErasureState
    category: str
    scope: dict[str, str] | None  # None once executed: the proof keeps no scope
    rule: str
    legal_basis: str
    due_at: datetime | None
    executed_at: datetime | None = None
    confirmed_by: list[str] = []
    notifications: list[NotificationView] | None = None  # per recipient, in the view of one


class ErasurePage(BaseModel):
    erasures: list[ErasureView]
    next_cursor: str | None  # pass as ?cursor= for the next page; None: this was the last


class Confirmation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    system: Annotated[
        str,
        StringConstraints(pattern=IDENTIFIER_PATTERN, min_length=1, max_length=100),
        *NoNationalId,
        Field(description="which of the company's systems erased its copy"),
    ]


class Confirmed(BaseModel):
    erasure_id: UUID
    system: str
    status: str  # "reported": passed on to the purger; "confirmed": recorded before
    confirmed_at: datetime | None  # when it was recorded; None while reported


class ForecastRow(BaseModel):
    month: str  # "2027-03", in the policy's time zone
    category: str
    erasures: int

"""What the erasure endpoints take and answer."""

from datetime import datetime
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from services.api.notifications.schemas import NotificationView
from shared.domain.contract.vocabulary import SystemId


class ErasureState(StrEnum):
    """An executed erasure waits for the systems of the register that held its category when it
    was executed (``expected_systems``). With none (no system registered for the category), the
    first confirmation of any system confirms it, as before the register."""

    SCHEDULED = "scheduled"  # a clock with a due time, not held
    HELD = "held"  # a legal hold keeps it, whatever its due time
    AWAITING_REVIEW = "awaiting_review"  # due, but past the review limits: waits for a DPO
    EXECUTED = "executed"  # command published, Gallring's traces reduced to a proof
    PARTIALLY_CONFIRMED = "partially_confirmed"  # some expected systems confirmed, in time
    CONFIRMED = "confirmed"  # every expected system confirmed (none expected: any one did)
    OVERDUE = "overdue"  # an expected system has not confirmed by its due time


class ExpectedSystem(BaseModel):
    system: str
    due_by: datetime  # its confirmation is due by then: execution + its confirm_within
    confirmed_at: datetime | None  # None: not yet


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
    expected_systems: list[ExpectedSystem] = Field(
        default=[],
        description="the systems of the register that held the category when it was executed",
    )
    unregistered_confirmations: list[str] = Field(
        default=[],
        description="systems in confirmed_by that the register does not know: recorded, and "
        "flagged here (a typo upstream, or a system to register)",
    )
    notifications: list[NotificationView] | None = None  # per recipient, in the view of one


class ErasurePage(BaseModel):
    erasures: list[ErasureView]
    next_cursor: str | None  # pass as ?cursor= for the next page; None: this was the last


class Confirmation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    system: Annotated[SystemId, Field(description="which of the company's systems erased its copy")]


class Confirmed(BaseModel):
    erasure_id: UUID
    system: str
    status: str  # "reported": passed on to the purger; "confirmed": recorded before
    confirmed_at: datetime | None  # when it was recorded; None while reported


class ForecastRow(BaseModel):
    month: str  # "2027-03", in the policy's time zone
    category: str
    erasures: int


class CommandRequestAccepted(BaseModel):
    erasure_id: UUID
    system: str
    status: str  # "requested": passed on to the purger, which publishes the command


class ErasureProofView(BaseModel):
    """An executed erasure as its proof keeps it: no scope, no pseudonym; the hashes by which a
    system that holds the data finds its rows again (after restoring a backup)."""

    erasure_id: UUID
    category: str
    subject_hash: str = Field(description="SHA-256 of the subject's pseudonym")
    clock_hash: str | None = Field(
        description="SHA-256 of pseudonym, category and scope; None on proofs older than it"
    )
    executed_at: datetime


class ErasureProofPage(BaseModel):
    proofs: list[ErasureProofView]
    next_cursor: str | None  # pass as ?cursor= for the next page; None: this was the last

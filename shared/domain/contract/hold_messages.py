"""What the API publishes about the register of legal holds on ``gallring.holds.v1``, keyed by the
hold id: a hold placed, its release requested, its release approved (only then is it released),
and reminders that its review is due. For ops, to alert on and to follow; no personal data: hold
ids, reasons from a list, teams, counts, dates, and the ids of the API keys that acted (never
their names, which the audit log keeps: ``gallring keys list`` tells a key's name by its id).

The holds themselves reach the purger as ``legal_hold.placed`` and ``legal_hold.released`` events
on the lifecycle topics, as upstream systems send them: these messages only tell about them.
"""

from datetime import date
from typing import Annotated, Final, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from shared.domain.contract.vocabulary import Category, HoldReason

SCHEMA_VERSION: Final = 1
HOLD_PLACED: Final = "hold.placed"
HOLD_RELEASE_REQUESTED: Final = "hold.release_requested"
HOLD_RELEASED: Final = "hold.released"
HOLD_REVIEW_DUE: Final = "hold.review_due"

#: How close a hold's review is: within 30, 7 or 1 days of ``review_by``, or past it.
ReviewThreshold = Literal["30d", "7d", "1d", "past"]
#: Each threshold's days to the review date: a hold is at the most urgent threshold whose days
#: it is within (``past``: the day after ``review_by`` and later).
THRESHOLD_DAYS: dict[ReviewThreshold, int] = {"30d": 30, "7d": 7, "1d": 1, "past": -1}


class _HoldMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: UUID
    hold_id: str
    at: AwareDatetime


class HoldPlaced(_HoldMessage):
    """A hold entered the register (``by_key``: the id of the key that placed it) and its
    ``legal_hold.placed`` events went to the purger, one per subject it covers (``subjects``)."""

    type: Literal["hold.placed"] = HOLD_PLACED
    reason: HoldReason
    owner_team: str
    review_by: date
    coverage: str
    category: Category | None = None
    subjects: int
    by_key: str


class HoldReleaseRequested(_HoldMessage):
    """A key (``by_key``, its id) asked for the hold's release: it stands until another key
    approves."""

    type: Literal["hold.release_requested"] = HOLD_RELEASE_REQUESTED
    by_key: str


class HoldReleased(_HoldMessage):
    """Another key (``approved_by_key``, its id) approved the release the key
    ``requested_by_key`` asked for: its ``legal_hold.released`` events went to the purger, one
    per subject it stood over."""

    type: Literal["hold.released"] = HOLD_RELEASED
    requested_by_key: str
    approved_by_key: str
    subjects: int


class HoldReviewDue(_HoldMessage):
    """The hold's review is near (``threshold``: within 30, 7 or 1 days) or past: published once
    per threshold (again after ``review_by`` is changed), so that its owner team reviews it."""

    type: Literal["hold.review_due"] = HOLD_REVIEW_DUE
    review_by: date
    days_left: Annotated[
        int, Field(description="days to review_by, in the policy's time zone; below 0: past")
    ]
    threshold: ReviewThreshold
    reason: HoldReason
    owner_team: str


HoldMessage = Annotated[
    HoldPlaced | HoldReleaseRequested | HoldReleased | HoldReviewDue, Field(discriminator="type")
]
HOLD_MESSAGE: TypeAdapter[HoldMessage] = TypeAdapter(HoldMessage)


def review_threshold(days_left: int) -> ReviewThreshold | None:
    """The most urgent threshold a review ``days_left`` days away is within; None: not near."""
    for threshold, days in reversed(THRESHOLD_DAYS.items()):
        if days_left <= days:
            return threshold
    return None

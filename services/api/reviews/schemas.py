"""What the review endpoints take and answer."""

from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from shared.domain.contract.dates import RANGE_TEXT, ContractDate
from shared.domain.contract.errors import FieldError
from shared.domain.contract.review_messages import Cause
from shared.domain.contract.vocabulary import Category, Identifier, NoNationalId

#: How many of a review's erasure ids a view shows: enough to look a few up, no more.
SAMPLE_SIZE = 10


class ReviewState(StrEnum):
    OPEN = "open"  # waiting for a decision
    APPROVED = "approved"  # its clocks are erased at the purger's next sweep
    EXTENDED = "extended"  # its clocks are kept until a new date, on a retention ground
    HELD = "held"  # a legal hold keeps its clocks


Reason = Annotated[
    str,
    Field(
        min_length=1,
        max_length=500,
        description="Why: kept with the review and in the audit log. About the data and the "
        "sweep, never a person.",
    ),
    *NoNationalId,
]


#: How many days after today (the policy's time zone) an extension's ``until`` is at the
#: earliest: its 00:00 is then a full day away at least.
EXTEND_DAYS_AHEAD = 2
#: The fields only one decision takes.
_ONLY_WITH = {"ground": "extend", "until": "extend", "hold_id": "hold"}


class DecisionRequest(BaseModel):
    """``approve``: the review's clocks are erased at the purger's next sweep, not counted
    against the day's ``max_per_day`` again. ``extend``: they are kept until ``until`` on the
    retention ground ``ground`` (a ``retention.extended`` event per clock, which the subject's
    lookup then gives as the reason). ``hold``: a legal hold keeps them (a
    ``legal_hold.placed`` event per subject and case, as an upstream system would send it; for
    clocks kept per client or relationship the hold covers the subject's category), released as
    any hold is."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "extend", "hold"]
    reason: Reason
    ground: (
        Annotated[
            str,
            Field(
                min_length=1,
                max_length=300,
                description="extend: the retention ground, finishing 'kept until <until> "
                "because …', e.g. 'the claims are disputed in court (GDPR art. 17(3)(e))'. About "
                "the data, never a person.",
            ),
            *NoNationalId,
        ]
        | None
    ) = None
    until: Annotated[
        ContractDate | None,
        Field(
            description="extend: kept until this day (policy time zone), at least two days "
            "after today; "
            f"YYYY-MM-DD, {RANGE_TEXT}."
        ),
    ] = None
    hold_id: Annotated[
        Identifier | None, Field(description="hold: the hold's id; review-<id> if not given")
    ] = None

    def problems(self, today: date) -> list[FieldError]:
        """What the decision lacks, or has that another decision takes: checked after the
        fields, so that each problem names its field. ``today`` is the day in the policy's time
        zone, where the engine starts ``until`` (at 00:00): ``until`` must be at least a full day
        ahead of now, or the extension could end before the purger applies it (its clocks would
        be due again the moment they are kept)."""
        problems = [
            FieldError(name, f"only with decision {only}; remove it")
            for name, only in _ONLY_WITH.items()
            if getattr(self, name) is not None and self.decision != only
        ]
        if self.decision == "extend":
            problems += [
                FieldError(name, "needed with decision extend")
                for name in ("ground", "until")
                if getattr(self, name) is None
            ]
        if self.until is not None and self.until < today + timedelta(days=EXTEND_DAYS_AHEAD):
            problems.append(
                FieldError(
                    "until",
                    f"must be at least {EXTEND_DAYS_AHEAD} days after today in the policy's time "
                    f"zone ({today.isoformat()}): the clocks are due already, and an extension "
                    "must reach the purger before it ends",
                )
            )
        return problems


class ReviewCount(BaseModel):
    month: str = Field(description="the clocks' due month, YYYY-MM (UTC)")
    rule: str = Field(description="the rule that made them due, e.g. collection_case.retention")
    clocks: int


class DecisionView(BaseModel):
    decision: Literal["approve", "extend", "hold"]
    decided_by: str | None = Field(
        description="the deciding API key's id; null: approved automatically "
        "(auto_approve_after_days)"
    )
    reason: str
    decided_at: datetime
    applied: bool = Field(
        description="whether the purger has applied it (it does at its next sweep)"
    )
    ground: str | None = None
    until: date | None = None
    hold_id: str | None = None
    events: int = Field(
        default=0, description="the retention.extended or legal_hold.placed events it sent"
    )


class ReviewView(BaseModel):
    review_id: int
    category: Category
    cause: Cause = Field(
        description="first_erasure (the category's first erasure ever), max_per_day (more in a "
        "UTC day than allowed) or policy_change (a new policy made more of its clocks due at "
        "once than max_per_day: all of them wait)"
    )
    state: ReviewState = Field(description="what was decided, as soon as it was; else open")
    opened_date: date = Field(description="the UTC day its clocks were stopped")
    created_at: datetime
    clocks: int = Field(description="how many clocks the sweep stopped into it")
    awaiting: int = Field(
        description="of those, how many still await it (the others were erased after an "
        "approval, or an event about their subject kept them: a hold, an extension, a reopening)"
    )
    counts: list[ReviewCount] = Field(description="the stopped clocks by due month and rule")
    sample_erasure_ids: list[UUID] = Field(
        description=f"up to {SAMPLE_SIZE} of the awaiting clocks' erasure ids, the first "
        "stopped first: GET /v1/erasures/{id} shows each (never a subject)"
    )
    decision: DecisionView | None
    policy_digest: str | None = Field(
        default=None,
        description="policy_change: the digest of the policy (and engine revision) that made "
        "its clocks due, as /health and the purger's log give it",
    )
    previous_policy_digest: str | None = Field(
        default=None,
        description="policy_change: the digest their stored verdicts were reached under",
    )

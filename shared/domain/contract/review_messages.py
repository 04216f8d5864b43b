"""What the purger tells ops of disposition reviews, on ``gallring.reviews.v1``, keyed by the
review id: a review opened (a sweep stopped erasures past its category's review limits, which
now wait for a DPO's decision) and a review decided (by a DPO through the API, or automatically
after the policy's ``auto_approve_after_days``). No personal data: ids, a category, counts,
times, policy digests and the deciding API key's id."""

from typing import Final, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.domain.contract.vocabulary import Category

SCHEMA_VERSION: Final = 1
REVIEW_OPENED: Final = "review.opened"
REVIEW_DECIDED: Final = "review.decided"
#: Why a review was opened: the category's first erasure ever, more in a day than allowed, or a
#: new policy (or engine revision) that made more of its clocks due at once than allowed in a day.
Cause = Literal["first_erasure", "max_per_day", "policy_change"]
#: What a decision made of a review.
DecidedState = Literal["approved", "extended", "held"]


class ReviewOpened(BaseModel):
    """A sweep stopped erasures of a category: its first ever (``first_erasure``), or more in a
    UTC day than ``max_per_day``. Clocks stopped later that day join the review while it is open;
    ``GET /v1/reviews`` has its running counts. Or (``policy_change``) the policy running now made
    more of the category's clocks due at once than ``max_per_day``: all of them wait, from
    ``previous_policy_digest`` to ``policy_digest``, and clocks the same change makes due later
    join the review while it is open."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    type: Literal["review.opened"] = REVIEW_OPENED
    event_id: UUID
    review_id: int
    category: Category
    cause: Cause
    max_per_day: int | None = Field(description="the limit the policy set, if any")
    clocks: int = Field(
        description="the clocks the sweep that opened it stopped; policy_change: all the "
        "clocks the change made due"
    )
    opened_at: AwareDatetime
    policy_digest: str | None = Field(
        default=None,
        description="policy_change: the digest of the policy (and engine revision) that made "
        "the clocks due; null for the other causes",
    )
    previous_policy_digest: str | None = Field(
        default=None,
        description="policy_change: the digest the clocks' stored verdicts were reached under",
    )


class ReviewDecided(BaseModel):
    """The purger applied a decision on a review: ``approved`` (its clocks are erased in the
    sweep that follows), ``extended`` or ``held`` (its clocks are kept, by the events the
    decision sent)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    type: Literal["review.decided"] = REVIEW_DECIDED
    event_id: UUID
    review_id: int
    category: Category
    state: DecidedState
    clocks: int = Field(description="the clocks the review stopped")
    decided_by: str | None = Field(
        description="the deciding API key's id; null when approved automatically"
    )
    decided_at: AwareDatetime

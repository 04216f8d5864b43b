"""What the hold register's endpoints take and answer.

A hold covers one of: a subject (all its data, or one category of it, or some of its cases),
cases whoever they concern, a whole category, or a whole client. What it covers is answered
without the subject: the register names no one.
"""

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from shared.domain.contract import Subject
from shared.domain.contract.dates import ContractDate
from shared.domain.contract.hold_messages import ReviewThreshold
from shared.domain.contract.vocabulary import (
    IDENTIFIER_PATTERN,
    Category,
    HoldReason,
    Identifier,
    NoNationalId,
    NoPersonalData,
)

_HOLD_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"


def _plain_hold_id(value: Any) -> Any:
    """Say why an id with ``/``, ``#`` or ``~`` is refused, before the pattern does."""
    if isinstance(value, str) and (found := sorted({"/", "#", "~"} & set(value))):
        raise ValueError(
            f"must not contain {' or '.join(repr(c) for c in found)}: a register's hold id goes "
            "in URL paths as it is (/v1/holds/{hold_id}), and '~' separates the ids of its "
            "placements; use letters, digits and . _ : -"
        )
    return value


#: A register's hold id: an :data:`Identifier` of up to 64 characters, so that it and a case id
#: fit in the contract's 128 with :data:`PLACEMENT_SEPARATOR` between them; without ``/`` and
#: ``#``, which a URL path would not carry as they are.
HoldId = Annotated[
    str,
    StringConstraints(pattern=_HOLD_ID_PATTERN, min_length=1, max_length=64),
    *NoNationalId,
    BeforeValidator(_plain_hold_id),  # last: it runs first
]
CaseId = Annotated[
    str,
    StringConstraints(pattern=IDENTIFIER_PATTERN, min_length=1, max_length=63),
    *NoNationalId,
]
Matter = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    Field(description="the matter's reference: a court's or Kronofogden's case number, a ticket"),
    *NoPersonalData,
]
Team = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    Field(description="the team that owns the hold and reviews it"),
    *NoPersonalData,
]
ReasonText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=500),
    Field(description="with reason 'other' (only then): what the matter is, never about whom"),
    *NoPersonalData,
]


class HoldState(StrEnum):
    STANDING = "standing"
    RELEASE_REQUESTED = "release_requested"  # still standing: another key must approve
    RELEASED = "released"


class HoldCoverage(StrEnum):
    """What a hold covers: the shape of its ``covers``."""

    SUBJECT = "subject"
    SUBJECT_CATEGORY = "subject_category"
    SUBJECT_CASES = "subject_cases"
    CASES = "cases"
    CATEGORY = "category"
    CLIENT = "client"


_SHAPES = {
    frozenset({"subject"}): HoldCoverage.SUBJECT,
    frozenset({"subject", "category"}): HoldCoverage.SUBJECT_CATEGORY,
    frozenset({"subject", "case_ids"}): HoldCoverage.SUBJECT_CASES,
    frozenset({"case_ids"}): HoldCoverage.CASES,
    frozenset({"category"}): HoldCoverage.CATEGORY,
    frozenset({"client_id"}): HoldCoverage.CLIENT,
}


class Covers(BaseModel):
    """One of: ``subject`` (all of its data), ``subject`` and ``category``, ``subject`` and
    ``case_ids``, ``case_ids`` (of whichever subjects Gallring holds them for), ``category``
    (every subject's), ``client_id`` (every subject's data kept for that client).

    With a subject, the hold also covers the subject's data that arrives later. Without one, it
    covers the subjects Gallring holds clocks of when it is placed."""

    model_config = ConfigDict(extra="forbid")

    subject: Annotated[
        Subject | None, Field(description="pseudonymised at once; the register keeps no one")
    ] = None
    case_ids: Annotated[list[CaseId] | None, Field(min_length=1, max_length=100)] = None
    category: Category | None = None
    client_id: Identifier | None = None

    @model_validator(mode="after")
    def _a_known_shape(self) -> Self:
        if self._given() not in _SHAPES:
            raise ValueError(
                "give one of: subject; subject and category; subject and case_ids; case_ids; "
                "category; client_id"
            )
        return self

    def _given(self) -> frozenset[str]:
        names = ("subject", "case_ids", "category", "client_id")
        return frozenset(name for name in names if getattr(self, name) is not None)

    @property
    def kind(self) -> HoldCoverage:
        return _SHAPES[self._given()]


class NewHold(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hold_id: Annotated[
        HoldId,
        Field(description="as the lookup and the events name it, e.g. H-2026-17; no '/' or '#'"),
    ]
    matter: Matter
    reason: HoldReason
    reason_text: ReasonText | None = None
    owner_team: Team
    review_by: Annotated[
        ContractDate, Field(description="when the hold is to be reviewed: today or later")
    ]
    covers: Covers

    @model_validator(mode="after")
    def _text_with_other(self) -> Self:
        if (self.reason is HoldReason.OTHER) != (self.reason_text is not None):
            raise ValueError("reason_text goes with reason 'other', and only with it")
        return self


class HoldChange(BaseModel):
    """After a review: a new review date (its reminders start again), or a new owner team."""

    model_config = ConfigDict(extra="forbid")

    review_by: ContractDate | None = None
    owner_team: Team | None = None

    @model_validator(mode="after")
    def _something(self) -> Self:
        if self.review_by is None and self.owner_team is None:
            raise ValueError("give review_by, owner_team or both")
        return self


class CoversView(BaseModel):
    kind: HoldCoverage
    category: Category | None = None
    case_ids: list[str] | None = Field(
        default=None, description="blanked when the hold is released"
    )
    client_id: str | None = Field(default=None, description="blanked when the hold is released")


class HoldView(BaseModel):
    hold_id: str
    registered: bool = Field(
        description="false: a hold upstream systems placed by legal_hold.placed events alone, "
        "known from the events the purger keeps; it has none of the register's fields"
    )
    state: HoldState
    matter: str | None = None
    reason: HoldReason | None = None
    reason_text: str | None = None
    owner_team: str | None = None
    review_by: date | None = None
    review_due: ReviewThreshold | None = Field(
        default=None,
        description="how close the review is: within 30d, 7d, 1d, or past; null: further off",
    )
    covers: CoversView | None = None
    subjects: int = Field(
        description="registered: the subjects it was placed on; else: those it stands over now"
    )
    placed_at: datetime | None = None
    placed_by: str | None = None
    release_requested_at: datetime | None = None
    release_requested_by: str | None = None
    released_at: datetime | None = None
    released_by: str | None = Field(default=None, description="the key that approved it")


class HeldClock(BaseModel):
    """A clock the hold covers now, as the purger keeps it; the subject only as the hash of its
    pseudonym (what the proofs keep)."""

    subject_hash: str
    category: Category
    scope: dict[str, str]
    due_at: datetime | None = Field(description="when it falls due without any hold")
    also_held_by: list[str] = Field(description="other holds that cover it too")


class HoldDetail(HoldView):
    evaluated_at: datetime
    clocks_total: int = Field(description="the clocks it covers now")
    clocks: list[HeldClock] = Field(description="up to `limit` of them, by due time")


class CategoryClocks(BaseModel):
    category: Category
    clocks: int


class MonthClocks(BaseModel):
    month: str = Field(description="YYYY-MM in the policy's time zone")
    category: Category
    clocks: int


class HoldImpact(BaseModel):
    """What the hold's release would do to the clocks it covers now, as the erasure forecast
    counts them."""

    hold_id: str
    evaluated_at: datetime
    clocks: int = Field(description="the clocks it covers now")
    at_once: list[CategoryClocks] = Field(description="due already: erased at the next sweep")
    later: list[MonthClocks] = Field(description="falling due later, by month")
    still_held: list[CategoryClocks] = Field(description="another hold covers them too")
    not_scheduled: list[CategoryClocks] = Field(
        description="kept until a trigger starts their clock (a case still open)"
    )
